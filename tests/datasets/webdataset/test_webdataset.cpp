// Webdataset shards written at test time with libarchive: members grouped into samples by key,
// truncated and random-byte shards reported as cb::Error naming the shard; brace patterns of shards;
// webdataset's shuffle buffer (datasets/webdataset/shuffle_buffer.h) against the original's pick rule,
// and in a data_format webdataset loader group: mixed across shards, and resumed exactly with its
// buffer (datasets/valor/webdataset_images.h).
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <random>
#include <set>

#include "datasets/train_source.h"
#include "datasets/webdataset/shard_pattern.h"
#include "datasets/webdataset/shuffle_buffer.h"
#include "datasets/webdataset/tar_shard.h"
#include "framework/error.h"
#include "tests/datasets/webdataset/write_tar.h"
#include "tests/support/make_media.h"
#include "tests/support/scratch_dir.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using cb::test::write_tar;

fs::path temp_file(const std::string& name) {
  static const auto dir = cb::test::fresh_dir("wds");
  return dir / fmt::format("{}-{}", std::random_device()(), name);
}

}  // namespace

TEST_CASE("webdataset shard: consecutive members with one key form a sample", "[data]") {
  const fs::path shard = temp_file("a.tar");
  std::string big(100000, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  write_tar(shard, {{"000000.jpg", big},
                    {"000000.json", "{\"caption\": \"a\"}"},
                    {"sub/000001.jpg", "jpeg1"},
                    {"sub/000001.txt", "caption one"},
                    {"sub/000001.seg.png", "png"},
                    {"noext", "ignored"},
                    {"000002.json", "{}"}});
  cb::WebdatasetShardReader reader(shard);
  auto s0 = reader.next();
  REQUIRE(s0);
  REQUIRE(s0->key == "000000");
  REQUIRE(s0->members.size() == 2);
  REQUIRE(std::string(s0->members["jpg"].begin(), s0->members["jpg"].end()) == big);
  auto s1 = reader.next();
  REQUIRE(s1);
  REQUIRE(s1->key == "sub/000001");
  REQUIRE(s1->members.size() == 3);
  REQUIRE(s1->members.count("seg.png") == 1);
  auto s2 = reader.next();
  REQUIRE(s2);
  REQUIRE(s2->key == "000002");
  REQUIRE_FALSE(reader.next());
  fs::remove(shard);
}

TEST_CASE("webdataset shard: truncated, random and missing shards are errors naming the shard", "[data]") {
  const fs::path shard = temp_file("b.tar");
  write_tar(shard, {{"000000.jpg", std::string(5000, 'a')}, {"000000.json", "{}"}});
  const auto full = fs::file_size(shard);
  fs::resize_file(shard, 2000);  // inside the first member's data
  {
    cb::WebdatasetShardReader reader(shard);
    REQUIRE_THROWS_WITH(reader.next(), Catch::Contains(shard.string()));
  }
  REQUIRE(full > 2000);
  std::mt19937 gen(5);
  std::string noise(3000, '\0');
  for (auto& c : noise) c = static_cast<char>(gen());
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << noise;
  auto read_all = [&] {
    cb::WebdatasetShardReader reader(shard);
    while (reader.next()) {
    }
  };
  REQUIRE_THROWS_AS(read_all(), cb::Error);
  fs::remove(shard);
  REQUIRE_THROWS_AS(cb::WebdatasetShardReader(shard), cb::Error);
}

TEST_CASE("shard patterns: numeric ranges padded like their bounds, alternatives, left to right", "[data]") {
  using V = std::vector<std::string>;
  REQUIRE(cb::expand_braces("/d/{00008..00010}.tar") == V{"/d/00008.tar", "/d/00009.tar", "/d/00010.tar"});
  REQUIRE(cb::expand_braces("{8..10}") == V{"8", "9", "10"});
  REQUIRE(cb::expand_braces("{a,b}-{1..0}") == V{"a-1", "a-0", "b-1", "b-0"});
  REQUIRE(cb::expand_braces("plain.tar") == V{"plain.tar"});
  REQUIRE_THROWS_WITH(cb::expand_braces("x{1..2"), Catch::Contains("x{1..2") && Catch::Contains("unbalanced"));
  REQUIRE_THROWS_WITH(cb::expand_braces("{a..b}"), Catch::Contains("not a numeric range"));
}

namespace {

// The first `n` outputs of a ShuffleBuffer(size, initial) over the stream 0, 1, 2, ... whose picks draw
// `draws` in turn (cycled); also returns how many were read.
std::vector<int> shuffled(size_t size, size_t initial, const std::vector<uint64_t>& draws, size_t n,
                          cb::ShuffleBuffer<int>* keep = nullptr) {
  cb::ShuffleBuffer<int> buffer(size, initial);
  int next = 0;
  size_t d = 0;
  std::vector<int> out;
  for (size_t i = 0; i < n; ++i)
    out.push_back(buffer.next([&] { return next++; }, [&] { return draws[d++ % draws.size()]; }));
  if (keep) *keep = buffer;
  return out;
}

}  // namespace

TEST_CASE("shuffle buffer: webdataset's pick rule", "[data]") {
  using V = std::vector<int>;
  // webdataset/filters.py's _shuffle run over itertools.count() with rng.randint(0, len(buf) - 1)
  // replaced by the next of these numbers mod len(buf) (gave the same lists); by hand for the first:
  // reads 0 1 | 2 3 -> buf 0 1 2 3, k = 7 % 4 = 3 -> 3 (buf 0 1 2) | 4 -> k = 2 -> 2 (buf 0 1 4) |
  // 5 -> k = 0 -> 0 (buf 5 1 4: the last moved into the hole) | 6 -> k = 3 -> 6 | 7 -> k = 1 -> 1 ...
  REQUIRE(shuffled(4, 3, {7, 2, 0, 11, 5, 3, 9, 1, 4, 6, 8, 10}, 12) == V{3, 2, 0, 6, 1, 8, 7, 9, 5, 4, 11, 12});
  // initial is min(100, size): nothing comes out before the buffer holds `size`; picking index 0 keeps
  // 1, 2, 3 in the buffer for ever.
  REQUIRE(shuffled(5, 100, {0}, 10) == V{0, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  // Size 1 passes the stream through.
  REQUIRE(shuffled(1, 100, {5, 8, 13}, 6) == V{0, 1, 2, 3, 4, 5});

  // Whatever the numbers drawn: every output is a sample read and not yet given out, outputs and
  // buffer together are exactly the samples read, and after the first pick (two reads a step until
  // `initial`, so initial - 1 or, odd, initial) the buffer grows by one per pick up to size - 1.
  std::mt19937_64 gen(3);
  for (const auto& [size, initial] : {std::pair<size_t, size_t>{10, 100}, {250, 100}, {7, 3}}) {
    INFO("size " << size << ", initial " << initial);
    std::vector<uint64_t> draws(64);
    for (auto& d : draws) d = gen();
    for (size_t n : {1, 5, 200}) {
      cb::ShuffleBuffer<int> buffer;
      const V out = shuffled(size, initial, draws, n, &buffer);
      std::vector<int> all = out;
      all.insert(all.end(), buffer.contents().begin(), buffer.contents().end());
      std::sort(all.begin(), all.end());
      for (size_t i = 0; i < all.size(); ++i) REQUIRE(all[i] == static_cast<int>(i));
      const size_t first = std::min(initial, size) % 2 ? std::min(initial, size) : std::min(initial, size) - 1;
      REQUIRE(buffer.contents().size() == std::min(first + n - 1, size - 1));
    }
  }
}

namespace {

// A stage-1 config of one webdataset group over `pattern` (under root); shuffle_buffer left out when null.
cb::Config shard_config(const fs::path& root, const std::string& pattern, int batch, int workers,
                        const json& shuffle_buffer) {
  json group = {{"datasets", {{{"name", "wds"}, {"shards", (root / pattern).string()}}}},
                {"task", "ti"},
                {"data_format", "webdataset"},
                {"steps", 1},
                {"batch_size", batch},
                {"n_workers", workers}};
  if (!shuffle_buffer.is_null()) group["shuffle_buffer"] = shuffle_buffer;
  const json opts = {{"video_resolution", 16}, {"video_encoder_type", "clip_vit"}, {"data_cfg", {{"train", {group}}}}};
  const fs::path path = root / fmt::format("opts-{}.json", std::hash<std::string>()(opts.dump()));
  cb::test::write_text(path, opts.dump());
  return cb::Config(
      cb::options_to_node({"run.task=tri_pretrain", "run.seed=11", "run.valor_data_opts_path=" + path.string()}),
      "test");
}

std::vector<std::string> ids_of(cb::BatchSource& s, int batches) {
  std::vector<std::string> ids;
  for (int i = 0; i < batches; ++i) {
    const cb::Batch b = s.next();
    ids.insert(ids.end(), b.ids.begin(), b.ids.end());
  }
  return ids;
}

}  // namespace

TEST_CASE("webdataset group: the shuffle buffer mixes samples across shards, each taken once per read",
          "[data][webdataset]") {
  const fs::path root = cb::test::fresh_dir("wds_shuffle");
  cb::test::write_image_shards(root / "shards", 3, 6);  // 18 samples a pass
  // The stream in shard order (same seed, so the same shard order in every pass).
  auto plain = cb::build_train_source(shard_config(root, "shards/{00000..00002}.tar", 1, 0, 0), 0, 1);
  const std::vector<std::string> stream = ids_of(*plain, 72);
  // Buffer 8 (initial min(100, 8)): the first pick after 8 reads, then one read per pick, so 65 picks
  // read exactly 4 passes.
  auto mixed = cb::build_train_source(shard_config(root, "shards/{00000..00002}.tar", 1, 0, 8), 0, 1);
  const std::vector<std::string> out = ids_of(*mixed, 65);
  REQUIRE(out != std::vector<std::string>(stream.begin(), stream.begin() + 65));
  const json state = mixed->state().at("shard_cursors").at(0).at(0);
  INFO(state.dump());
  REQUIRE(state.at("shuffle_buffer") == 8);
  REQUIRE(state.at("picks") == 65);
  REQUIRE(state.at("pass").get<int64_t>() * 18 + state.at("shard").get<int64_t>() * 6 +
              state.at("sample").get<int64_t>() ==
          72);
  // Picks and buffer together are the samples read: each id 4 times (once per pass).
  std::map<std::string, int> count;
  for (const auto& id : out) ++count[id];
  for (const auto& b : state.at("buffer"))
    ++count[stream.at(static_cast<size_t>(b[0].get<int64_t>() * 18 + b[1].get<int64_t>() * 6 + b[2].get<int64_t>()))];
  REQUIRE(state.at("buffer").size() == 7);
  REQUIRE(count.size() == 18);
  for (const auto& [id, n] : count) {
    INFO(id);
    REQUIRE(n == 4);
  }
  // Mixed across shard boundaries: within the first pass's picks a shard comes back after another.
  bool interleaved = false;
  for (size_t i = 0; i < 18; ++i)
    for (size_t j = i + 1; j < 18; ++j)
      for (size_t k = j + 1; k < 18; ++k) interleaved |= out[i][1] == out[k][1] && out[j][1] != out[i][1];
  REQUIRE(interleaved);
  // Left out, the key means webdataset's 1000.
  auto dflt = cb::build_train_source(shard_config(root, "shards/{00000..00002}.tar", 1, 0, nullptr), 0, 1);
  dflt->next();
  REQUIRE(dflt->state().at("shard_cursors").at(0).at(0).at("shuffle_buffer") == 1000);
}

TEST_CASE("webdataset group: a restored source continues with the saved shuffle buffer", "[data][webdataset]") {
  const fs::path root = cb::test::fresh_dir("wds_resume");
  cb::test::write_image_shards(root / "shards", 4, 7);
  // Two readers (2 shards, 14 samples a pass each), 3 samples a batch; buffer 150 (initial 100), so at
  // the save each reader's buffer holds samples of several passes and shards and is not yet full.
  const cb::Config cfg = shard_config(root, "shards/{00000..00003}.tar", 3, 2, 150);
  auto unbroken = cb::build_train_source(cfg, 0, 1);
  const std::vector<std::string> reference = ids_of(*unbroken, 14);

  json saved;
  {
    auto first = cb::build_train_source(cfg, 0, 1);
    REQUIRE(ids_of(*first, 5) == std::vector<std::string>(reference.begin(), reference.begin() + 15));
    saved = json::parse(first->state().dump());
  }  // the workers had built batches beyond the fifth
  const json readers = saved.at("shard_cursors").at(0);
  REQUIRE(readers.size() == 2);
  for (const auto& r : readers) {
    INFO(r.dump());
    REQUIRE(r.at("buffer").size() > 90);
    REQUIRE(r.at("buffer").size() < 149);
    std::set<std::pair<int64_t, int64_t>> shards;
    for (const auto& b : r.at("buffer")) shards.insert({b[0].get<int64_t>(), b[1].get<int64_t>()});
    REQUIRE(shards.size() > 2);
  }
  const std::vector<std::string> rest(reference.begin() + 15, reference.end());
  auto resumed = cb::build_train_source(cfg, 0, 1);
  resumed->restore(saved);
  REQUIRE(ids_of(*resumed, 9) == rest);
  resumed->restore(saved);  // rewinds a source that has gone on
  REQUIRE(ids_of(*resumed, 9) == rest);

  // The buffer is needed: the same positions with the buffer's samples dropped give other batches.
  json dropped = saved;
  for (auto& r : dropped["shard_cursors"][0]) r["buffer"] = json::array();
  auto without = cb::build_train_source(cfg, 0, 1);
  without->restore(dropped);
  REQUIRE(ids_of(*without, 9) != rest);

  // A state saved without a buffer (shuffle_buffer 0, or before the key existed) resumes only so.
  json old = saved;
  for (auto& r : old["shard_cursors"][0]) r = {{"pass", 0}, {"shard", 1}, {"sample", 2}};
  auto other = cb::build_train_source(cfg, 0, 1);
  REQUIRE_THROWS_WITH(other->restore(old), Catch::Contains("ti--wds") &&
                                               Catch::Contains("saved with shuffle_buffer 0 (or before the key") &&
                                               Catch::Contains("this run has 150"));
  auto unbuffered = cb::build_train_source(shard_config(root, "shards/{00000..00003}.tar", 3, 2, 0), 0, 1);
  unbuffered->restore(old);
  REQUIRE(ids_of(*unbuffered, 1).size() == 3);
  // A buffered sample that is not in the shards any more.
  json gone = saved;
  gone["shard_cursors"][0][0]["buffer"][0] = {0, 0, 7};
  REQUIRE_THROWS_WITH(resumed->restore(gone), Catch::Contains("ti--wds") && Catch::Contains("cannot be read again") &&
                                                  Catch::Contains("the shard ends after 7 samples"));
}

TEST_CASE("webdataset group: shards that give no sample at all stop the reader", "[data][webdataset]") {
  const fs::path root = cb::test::fresh_dir("wds_unreadable");
  fs::create_directories(root / "shards");
  for (const char* name : {"00000.tar", "00001.tar"}) std::ofstream(root / "shards" / name) << std::string(100, 'x');
  for (int buffer : {0, 1000}) {
    auto source = cb::build_train_source(shard_config(root, "shards/{00000..00001}.tar", 1, 0, buffer), 0, 1);
    REQUIRE_THROWS_WITH(source->next(), Catch::Contains("ti--wds") && Catch::Contains("no sample in 2 shards"));
  }
}

TEST_CASE("webdataset group: shuffle_buffer is checked like the other keys", "[data][webdataset]") {
  const fs::path root = cb::test::fresh_dir("wds_options");
  cb::test::write_image_shards(root / "shards", 1, 2);
  REQUIRE_THROWS_WITH(cb::build_train_source(shard_config(root, "shards/00000.tar", 1, 0, -5), 0, 1),
                      Catch::Contains("data_cfg.train[0]") && Catch::Contains("'shuffle_buffer' must be >= 0"));
  json group = {{"datasets", {{{"name", "w"}, {"shards", (root / "shards/00000.tar").string()}}}},
                {"task", "ti"},
                {"data_format", "webdataset"},
                {"steps", 1},
                {"batch_size", 1},
                {"n_workers", 0},
                {"shuffle_bufer", 10}};
  json file_group = {{"datasets", {{{"name", "f"}, {"txt", "a.json"}, {"video", "v"}, {"datatype", "image"}}}},
                     {"task", "ti"},
                     {"data_format", "frame"},
                     {"steps", 1},
                     {"batch_size", 1},
                     {"n_workers", 0},
                     {"shuffle_buffer", 10}};
  for (const auto& [g, message] : {std::pair<json, std::string>{group, "unknown key 'shuffle_bufer'"},
                                   {file_group, "'shuffle_buffer' applies to data_format webdataset groups only"}}) {
    const fs::path path = root / fmt::format("opts-{}.json", message.size());
    cb::test::write_text(path, json({{"data_cfg", {{"train", {g}}}}}).dump());
    const cb::Config cfg(
        cb::options_to_node({"run.task=tri_pretrain", "run.seed=11", "run.valor_data_opts_path=" + path.string()}),
        "test");
    REQUIRE_THROWS_WITH(cb::build_train_source(cfg, 0, 1), Catch::Contains(message));
  }
}
