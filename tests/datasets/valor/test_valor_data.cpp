// The valor training pipeline on a sample generated at test time: data-options parsing, stage-1 and
// stage-2 batches, DistributedSampler sharding over 2 ranks, resume from a saved state, and bad data
// (corrupt, empty, missing media; broken annotation lines) skipped and counted; the same for loader
// groups of webdataset tar shards (data_format webdataset), which must batch like their files.
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <sstream>

#include "datasets/processors/text_processors.h"
#include "datasets/train_source.h"
#include "datasets/valor/distributed_sampler.h"
#include "datasets/valor/task_conversation.h"
#include "framework/error.h"
#include "tests/datasets/webdataset/write_tar.h"
#include "tests/support/make_media.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int64_t kResolution = 32, kTargetLength = 64, kMelbins = 64;

using cb::test::encode_wav_tone;
using cb::test::write_file;
using cb::test::write_text;

std::vector<uint8_t> image_jpeg(int64_t t, int64_t h = 24, int64_t w = 32) {
  return cb::test::encode_jpeg(cb::test::pattern_frame(t, h, w));
}

// A sample of every modality: n_images images, 3 videos of 5 frames, 3 audio clips; stage-1
// captions and stage-2 records.
struct Sample {
  cb::test::TempDir dir;
  fs::path root = dir.path;
  int n_images;
  explicit Sample(int images = 7) : n_images(images) {
    json captions = json::array(), videos = json::array(), audios = json::array();
    for (int i = 0; i < n_images; ++i) {
      write_file(root / "images" / fmt::format("img{}.jpg", i), image_jpeg(i));
      captions.push_back(
          {{"video_id", fmt::format("img{}", i)}, {"caption", fmt::format("A Photo-of thing/{}  here.", i)}});
    }
    for (int v = 0; v < 3; ++v) {
      for (int f = 1; f <= 5; ++f)
        write_file(root / "videos" / fmt::format("vid{}/img_{:04d}.jpg", v, f), image_jpeg(10 * v + f));
      videos.push_back({{"video_id", fmt::format("vid{}", v)}, {"caption", fmt::format("video {}", v)}});
      write_file(root / "audios" / fmt::format("vid{}.wav", v), encode_wav_tone(16000, 8000, 220.0 * (v + 1)));
      write_file(root / "audios" / fmt::format("aud{}.wav", v), encode_wav_tone(22050, 11025, 330.0 * (v + 1)));
      audios.push_back({{"video_id", fmt::format("aud{}", v)}, {"caption", fmt::format("sound {}", v)}});
    }
    write_text(root / "ann/images.json", captions.dump());
    write_text(root / "ann/videos.json", videos.dump());
    write_text(root / "ann/audios.json", audios.dump());
    json detail = json::array();
    for (int v = 0; v < 3; ++v)
      detail.push_back({{"video_id", fmt::format("vid{}", v)},
                        {"conversations",
                         {{{"from", "human"}, {"value", "<video>\nWhat happens?"}},
                          {{"from", "gpt"}, {"value", fmt::format("Clip {} plays.", v)}}}}});
    write_text(root / "ann/detail.json", detail.dump());
    write_text(root / "prompts.json", json({{"ti-cap", {"Describe it."}}}).dump());
  }

  json group(const std::string& task, const std::string& name, const std::string& txt, const json& media,
             const std::string& datatype, int batch, int workers, int steps = 1) const {
    json ds = {{"name", name}, {"txt", (root / txt).string()}, {"datatype", datatype}};
    for (const auto& [k, v] : media.items()) ds[k] = (root / v.get<std::string>()).string();
    return {{"datasets", {ds}},      {"task", task},   {"data_format", "frame"}, {"video_sample_num", 4},
            {"audio_sample_num", 1}, {"steps", steps}, {"batch_size", batch},    {"n_workers", workers}};
  }

  // A data_format webdataset group of one dataset named `name` reading `pattern` (under root), in shard
  // order (shuffle_buffer 0: the buffer is tested in tests/datasets/webdataset/test_webdataset.cpp).
  json shard_group(const std::string& name, const std::string& pattern, int batch, int workers, int steps = 1) const {
    json ds = {{"name", name}, {"shards", (root / pattern).string()}, {"datatype", "image"}};
    return {{"datasets", {ds}},    {"task", "ti"},         {"data_format", "webdataset"}, {"steps", steps},
            {"batch_size", batch}, {"n_workers", workers}, {"shuffle_buffer", 0}};
  }

  // A config for `groups`; extra run options appended.
  cb::Config config(const json& groups, const std::string& task = "tri_pretrain", std::vector<std::string> extra = {},
                    const json& mix = json::object()) const {
    json opts = {{"video_resolution", kResolution},      {"video_encoder_type", "clip_vit"},
                 {"audio_encoder_type", "beat"},         {"gradient_accumulation_steps", 1},
                 {"dataset_mix_type", "random"},         {"audio_melbins", kMelbins},
                 {"audio_target_length", kTargetLength}, {"data_cfg", {{"train", groups}}}};
    opts.update(mix);
    const fs::path path = root / fmt::format("opts{}.json", std::hash<std::string>()(opts.dump()));
    write_text(path, opts.dump());
    std::vector<std::string> options = {"run.task=" + task, "run.seed=7", "run.valor_data_opts_path=" + path.string(),
                                        "run.prompt_path=" + (root / "prompts.json").string()};
    options.insert(options.end(), extra.begin(), extra.end());
    return cb::Config(cb::options_to_node(options), "test");
  }
};

std::vector<cb::Batch> take(cb::BatchSource& s, int n) {
  std::vector<cb::Batch> out;
  for (int i = 0; i < n; ++i) out.push_back(s.next());
  return out;
}

void require_same(const cb::Batch& a, const cb::Batch& b) {
  REQUIRE(a.task == b.task);
  REQUIRE(a.ids == b.ids);
  REQUIRE(a.text_input == b.text_input);
  REQUIRE(a.conversation == b.conversation);
  REQUIRE(a.image.defined() == b.image.defined());
  if (a.image.defined()) REQUIRE(torch::equal(a.image, b.image));
  REQUIRE(a.audio.defined() == b.audio.defined());
  if (a.audio.defined()) REQUIRE(torch::equal(a.audio, b.audio));
}

// Resuming `cfg` on rank 0 of 1: a source stopped after `n` batches (each checked against `reference`)
// saves a state; a new source restored from it gives reference[n...], and restoring again rewinds it.
// Returns the saved state.
json require_resumes(const cb::Config& cfg, const std::vector<cb::Batch>& reference, int n) {
  json saved;
  {
    auto first = cb::build_train_source(cfg, 0, 1);
    auto head = take(*first, n);
    for (int i = 0; i < n; ++i) require_same(head[i], reference[i]);
    saved = json::parse(first->state().dump());
  }  // workers may have prefetched beyond batch n: that must not matter
  auto resumed = cb::build_train_source(cfg, 0, 1);
  resumed->restore(saved);
  for (size_t i = n; i < reference.size(); ++i) require_same(resumed->next(), reference[i]);
  resumed->restore(saved);
  require_same(resumed->next(), reference[n]);
  return saved;
}

}  // namespace

TEST_CASE("stage-1 loaders give the original's batches for images, videos and audio", "[data]") {
  Sample s;
  json groups = {s.group("ti", "imgs", "ann/images.json", {{"video", "images"}}, "image", 2, 0),
                 s.group("ti", "vids", "ann/videos.json", {{"video", "videos"}}, "video", 2, 0),
                 s.group("ta", "auds", "ann/audios.json", {{"audio", "audios"}}, "audio", 2, 0)};
  auto source = cb::build_train_source(s.config(groups), 0, 1);
  std::set<std::string> seen_kinds;
  for (const cb::Batch& b : take(*source, 12)) {
    REQUIRE(b.size() == 2);
    REQUIRE(b.ids.size() == 2);
    REQUIRE(b.text_input.size() == 2);
    REQUIRE(b.conversation.empty());
    const std::string kind = b.ids[0].substr(0, 3);
    seen_kinds.insert(kind);
    if (kind == "img") {
      REQUIRE(b.task == "ti");
      REQUIRE(b.image.sizes() == torch::IntArrayRef{2, 1, 3, kResolution, kResolution});
      REQUIRE_FALSE(b.audio.defined());
      const int i = std::stoi(b.ids[0].substr(3));
      REQUIRE(b.text_input[0] == cb::valor_pre_caption(fmt::format("A Photo-of thing/{}  here.", i)));
    } else if (kind == "vid") {
      REQUIRE(b.task == "ti");
      REQUIRE(b.image.sizes() == torch::IntArrayRef{2, 4, 3, kResolution, kResolution});
      REQUIRE(b.text_input[0] == "video " + b.ids[0].substr(3));
    } else {
      REQUIRE(kind == "aud");
      REQUIRE(b.task == "ta");
      REQUIRE_FALSE(b.image.defined());
      REQUIRE(b.audio.sizes() == torch::IntArrayRef{2, 1, kTargetLength, kMelbins});
      REQUIRE(b.audio.abs().sum().item<double>() > 0);  // a real clip, not the original's silence fallback
    }
  }
  REQUIRE(seen_kinds == std::set<std::string>{"img", "vid", "aud"});
}

TEST_CASE("mixing: weights, gradient_accumulation_steps and round-robin", "[data]") {
  Sample s;
  json groups = {s.group("ti", "imgs", "ann/images.json", {{"video", "images"}}, "image", 1, 0, 3),
                 s.group("ta", "auds", "ann/audios.json", {{"audio", "audios"}}, "audio", 1, 0, 1),
                 s.group("ti", "never", "ann/videos.json", {{"video", "videos"}}, "video", 1, 0, 0)};
  auto tasks = [](cb::BatchSource& src, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) {
      cb::Batch b = src.next();
      REQUIRE(b.ids[0].substr(0, 3) != "vid");  // weight 0: never drawn
      out += b.task == "ti" ? 'i' : 'a';
    }
    return out;
  };
  // Weighted: about 3:1 over 200 draws (binomial sd ~6).
  auto weighted = cb::build_train_source(s.config(groups), 0, 1);
  const std::string w = tasks(*weighted, 200);
  const auto images = std::count(w.begin(), w.end(), 'i');
  REQUIRE(images > 120);
  REQUIRE(images < 180);
  // Accumulation: the loader only changes at multiples of 3 steps.
  auto accum = cb::build_train_source(s.config(groups, "tri_pretrain", {}, {{"gradient_accumulation_steps", 3}}), 0, 1);
  const std::string a = tasks(*accum, 60);
  for (size_t i = 0; i < a.size(); ++i)
    if (i % 3) REQUIRE(a[i] == a[i - 1]);
  // Round-robin cycles the loaders in order, weights aside (the weight-0 loader is skipped here by
  // leaving it out: the original would cycle through it too).
  groups.erase(2);
  auto rr = cb::build_train_source(s.config(groups, "tri_pretrain", {}, {{"dataset_mix_type", "round-robin"}}), 0, 1);
  REQUIRE(tasks(*rr, 6) == "iaiaia");
}

TEST_CASE("stage-2 loaders build MULTIS conversations", "[data]") {
  Sample s;
  json groups = {
      s.group("ti-cap", "imgs", "ann/images.json", {{"video", "images"}}, "image", 1, 0),
      s.group("tva-det", "valor", "ann/detail.json", {{"video", "videos"}, {"audio", "audios"}}, "video", 1, 0)};
  auto source = cb::build_train_source(s.config(groups, "tri_instruct"), 0, 1);
  bool saw_cap = false, saw_det = false;
  for (const cb::Batch& b : take(*source, 10)) {
    REQUIRE(b.text_input.empty());
    REQUIRE(b.conversation.size() == 1);
    if (b.task == "ti-cap") {
      saw_cap = true;
      const int i = std::stoi(b.ids[0].substr(3));
      REQUIRE(b.conversation[0] ==
              fmt::format("###Human: Given following image: <query>.###Human: Describe it.###Assistant:"
                          "A Photo-of thing/{}  here.\n###",
                          i));
    } else {
      saw_det = true;
      REQUIRE(b.task == "tva-det");
      REQUIRE(b.audio.sizes() == torch::IntArrayRef{1, 1, kTargetLength, kMelbins});
      REQUIRE(b.image.sizes() == torch::IntArrayRef{1, 4, 3, kResolution, kResolution});
      REQUIRE(b.conversation[0] == fmt::format("###Human: Given following video: <query> and its background audio: "
                                               "<query>.###Human: What happens?###Assistant:Clip {} plays.\n###",
                                               b.ids[0].substr(3)));
    }
  }
  REQUIRE((saw_cap && saw_det));
}

TEST_CASE("conversation turns: up to 8, media tags cleaned, zh variant", "[data]") {
  cb::TaskPrompts prompts;
  std::mt19937_64 rng(1);
  json turns = json::array();
  for (int i = 0; i < 10; ++i)
    turns.push_back({{"from", i % 2 ? "gpt" : "human"}, {"value", i == 0 ? "<image>\nq0" : fmt::format("t{}", i)}});
  json record = {{"image_id", 5}, {"conversations", turns}};
  cb::TaskConversation conv("ti-conv", prompts, false);
  REQUIRE(conv.check(record).empty());
  REQUIRE(conv.build(record, rng) ==
          "###Human: Given following image: <query>.###Human: q0###Assistant:t1###Human: t2###Assistant:t3"
          "###Human: t4###Assistant:t5###Human: t6###Assistant:t7###");
  cb::TaskConversation zh("ta-det", prompts, true);
  json det = {
      {"video_id", "a"},
      {"conversations", {{{"from", "human"}, {"value", "hear?\n<audio>"}}, {{"from", "gpt"}, {"value", "rain"}}}}};
  REQUIRE(zh.build(det, rng) == "给定音频：<query>。\n###问题：hear?\n###答案：rain\n</s>###");
  REQUIRE_FALSE(conv.check({{"image_id", 1}}).empty());
  // No 'gpt' turn among those kept: nothing to learn (the loss would be NaN), so the record is refused.
  json user = {{{"from", "user"}, {"value", "<image>\nq"}}, {{"from", "assistant"}, {"value", "a"}}};
  REQUIRE_THAT(conv.check({{"image_id", 1}, {"conversations", user}}),
               Catch::Contains("no 'gpt' turn") && Catch::Contains("assistant, user"));
  REQUIRE_THAT(conv.check({{"image_id", 1}, {"conversations", json::array()}}), Catch::Contains("no 'gpt' turn"));
  json late = turns;  // the first 8 turns all from 'human', a 'gpt' one after them
  for (int i = 0; i < 8; ++i) late[i]["from"] = "human";
  REQUIRE_THAT(conv.check({{"image_id", 1}, {"conversations", late}}), Catch::Contains("no 'gpt' turn"));
  REQUIRE_THROWS_AS(cb::TaskConversation("ti-cap", prompts, false), cb::Error);  // no templates
  REQUIRE_THROWS_AS(cb::TaskConversation("xx-cap", prompts, false), cb::Error);  // no modality
}

TEST_CASE("DistributedSampler: disjoint, covering, padded from the head of the permutation", "[data]") {
  for (int64_t n : {1, 6, 7, 10}) {
    for (int world : {1, 2, 3}) {
      std::vector<int64_t> all;
      std::vector<std::vector<int64_t>> per_rank;
      for (int r = 0; r < world; ++r) per_rank.push_back(cb::distributed_sampler_indices(n, 3, r, world));
      const int64_t per = (n + world - 1) / world;
      for (int64_t i = 0; i < per * world; ++i) {
        REQUIRE(static_cast<int64_t>(per_rank[i % world].size()) == per);
        all.push_back(per_rank[i % world][i / world]);  // the padded permutation, interleaved back
      }
      std::set<int64_t> distinct(all.begin(), all.begin() + n);
      REQUIRE(static_cast<int64_t>(distinct.size()) == n);                      // the first n are a permutation
      for (int64_t i = n; i < per * world; ++i) REQUIRE(all[i] == all[i - n]);  // padding repeats the head
    }
  }
  REQUIRE(cb::distributed_sampler_indices(10, 0, 0, 1) != cb::distributed_sampler_indices(10, 1, 0, 1));
  REQUIRE(cb::distributed_sampler_indices(10, 4, 1, 2) == cb::distributed_sampler_indices(10, 4, 1, 2));
}

TEST_CASE("two ranks: each epoch's batches are disjoint shards covering the dataset", "[data]") {
  Sample s(7);
  json groups = {s.group("ti", "imgs", "ann/images.json", {{"video", "images"}}, "image", 2, 1)};
  auto r0 = cb::build_train_source(s.config(groups), 0, 2);
  auto r1 = cb::build_train_source(s.config(groups), 1, 2);
  // 7 samples, 2 ranks: 4 per rank (one padded), per-rank batch 1 -> 4 batches per epoch.
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::vector<std::string> ids0, ids1;
    for (int i = 0; i < 4; ++i) ids0.push_back(r0->next().ids.at(0)), ids1.push_back(r1->next().ids.at(0));
    std::multiset<std::string> all(ids0.begin(), ids0.end());
    all.insert(ids1.begin(), ids1.end());
    std::set<std::string> distinct(all.begin(), all.end());
    REQUIRE(distinct.size() == 7);  // covering
    REQUIRE(all.size() == 8);
    // The one repeat is the padding: the sampler's first index (rank 0's first sample).
    REQUIRE(all.count(ids0[0]) == 2);
    REQUIRE(ids1.back() == ids0[0]);
    // The order is the DistributedSampler's for the shared epoch counter (0, then 1 after exhaustion).
    for (int i = 0; i < 4; ++i) {
      REQUIRE(ids0[i] == fmt::format("img{}", cb::distributed_sampler_indices(7, epoch, 0, 2)[i]));
      REQUIRE(ids1[i] == fmt::format("img{}", cb::distributed_sampler_indices(7, epoch, 1, 2)[i]));
    }
  }
}

TEST_CASE("resume: a restored source continues with the next unseen batch", "[data]") {
  Sample s(5);
  json groups = {s.group("ti", "imgs", "ann/images.json", {{"video", "images"}}, "image", 2, 2, 3),
                 s.group("ta", "auds", "ann/audios.json", {{"audio", "audios"}}, "audio", 1, 2, 1)};
  const cb::Config cfg = s.config(groups);
  auto uninterrupted = cb::build_train_source(cfg, 0, 1);
  auto reference = take(*uninterrupted, 14);

  require_resumes(cfg, reference, 6);
}

TEST_CASE("bad data is skipped and counted, too much of it stops with an error", "[data]") {
  Sample s(6);
  const fs::path img = s.root / "images";
  auto good = cb::test::read_bytes(img / "img0.jpg");
  write_file(img / "img1.jpg", std::vector<uint8_t>(good.begin(), good.begin() + good.size() / 3));  // truncated JPEG
  auto png = cb::test::encode_png(cb::test::pattern_frame(0, 16, 16), 2);
  write_file(img / "img2.jpg", std::vector<uint8_t>(png.begin(), png.begin() + png.size() / 2));  // truncated PNG
  std::vector<uint8_t> noise(500);
  std::mt19937 gen(3);
  for (auto& b : noise) b = static_cast<uint8_t>(gen());
  write_file(img / "img3.jpg", noise);  // random bytes
  write_file(img / "img4.jpg", {});     // zero-length
  // Annotation in JSON Lines with broken lines and a missing file.
  std::string lines;
  for (int i = 0; i < 6; ++i) lines += json({{"video_id", fmt::format("img{}", i)}, {"caption", "c"}}).dump() + "\n";
  lines += "{\"video_id\": \"img0\", \"capt\n";                                    // broken JSON
  lines += "[1, 2]\n";                                                             // not a record
  lines += json({{"video_id", "img0"}, {"caption", {"a", "b"}}}).dump() + "\n";    // list caption
  lines += json({{"video_id", "nothere"}, {"caption", "missing"}}).dump() + "\n";  // missing file
  for (int i = 0; i < 12; ++i) lines += json({{"video_id", "img0"}, {"caption", "good"}}).dump() + "\n";
  write_text(s.root / "ann/bad_images.jsonl", lines);
  // Audio: truncated WAV, zero-length, random bytes; one good clip.
  auto wav = encode_wav_tone(16000, 4000, 440);
  write_file(s.root / "audios/aud0.wav", std::vector<uint8_t>(wav.begin(), wav.begin() + 30));
  write_file(s.root / "audios/aud1.wav", {});
  write_file(s.root / "audios/aud2.wav", noise);
  write_file(s.root / "audios/aud3.wav", wav);
  json auds = json::array();
  for (int i = 0; i < 4; ++i) auds.push_back({{"video_id", fmt::format("aud{}", i)}, {"caption", "x"}});
  for (int i = 0; i < 8; ++i) auds.push_back({{"video_id", "aud3"}, {"caption", "good"}});
  write_text(s.root / "ann/bad_audios.json", auds.dump());

  json groups = {s.group("ti", "imgs", "ann/bad_images.jsonl", {{"video", "images"}}, "image", 2, 2),
                 s.group("ta", "auds", "ann/bad_audios.json", {{"audio", "audios"}}, "audio", 2, 1)};
  {
    auto source = cb::build_train_source(s.config(groups, "tri_pretrain", {"run.max_bad_sample_fraction=0.95"}), 0, 1);
    for (int i = 0; i < 40; ++i) {
      cb::Batch b = source->next();
      REQUIRE(b.size() == 2);
      for (const auto& id : b.ids) REQUIRE((id == "img0" || id == "img5" || id == "aud3"));
    }
    const json skipped = source->state().at("skipped");
    // 5 bad images (4 corrupt + 1 missing) seen every epoch, 3 malformed lines counted once.
    REQUIRE(skipped.at("ti--imgs/imgs").at("bad").get<int64_t>() >= 3 + 5);
    REQUIRE(skipped.at("ta--auds/auds").at("bad").get<int64_t>() >= 3);
  }
  {
    auto source = cb::build_train_source(s.config(groups, "tri_pretrain", {"run.max_bad_sample_fraction=0.1"}), 0, 1);
    bool stopped = false;
    for (int i = 0; i < 40 && !stopped; ++i) {
      try {
        source->next();
      } catch (const cb::Error& e) {
        stopped = true;
        REQUIRE_THAT(e.what(), Catch::Contains("max_bad_sample_fraction"));
      }
    }
    REQUIRE(stopped);
  }
  // A fraction outside [0, 1] is refused at startup (-1 stopped the run with "0 of 12 bad").
  for (const char* f : {"-1", "1.5", ".nan"})
    REQUIRE_THROWS_WITH(cb::build_train_source(
                            s.config(groups, "tri_pretrain", {std::string("run.max_bad_sample_fraction=") + f}), 0, 1),
                        Catch::Contains("run.max_bad_sample_fraction must be between 0 and 1"));
  // A whole-file JSON list that does not parse is a configuration error naming the file.
  write_text(s.root / "ann/broken.json", "[{\"video_id\": ");
  json broken = json::array({s.group("ti", "b", "ann/broken.json", {{"video", "images"}}, "image", 1, 0)});
  REQUIRE_THROWS_WITH(cb::build_train_source(s.config(broken), 0, 1), Catch::Contains("broken.json"));
}

TEST_CASE("unreadable media are logged even when many annotation records were malformed", "[data]") {
  Sample s(4);
  write_file(s.root / "images/img1.jpg", {});  // zero-length
  std::string lines;
  for (int i = 0; i < 4; ++i) lines += json({{"video_id", fmt::format("img{}", i)}, {"caption", "c"}}).dump() + "\n";
  for (int i = 0; i < 15; ++i) lines += "[1, 2]\n";  // malformed records: more than the 10 logged warnings
  write_text(s.root / "ann/many_malformed.jsonl", lines);
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  {
    json groups = {s.group("ti", "imgs", "ann/many_malformed.jsonl", {{"video", "images"}}, "image", 2, 0)};
    auto source = cb::build_train_source(s.config(groups, "tri_pretrain", {"run.max_bad_sample_fraction=0.95"}), 0, 1);
    take(*source, 4);  // two epochs: img1 tried at least twice
    REQUIRE(source->state().at("skipped").at("ti--imgs/imgs").at("bad").get<int64_t>() >= 15 + 2);
  }
  spdlog::default_logger()->sinks().pop_back();
  INFO(log.str());
  CHECK_THAT(log.str(),
             Catch::Contains("skipped " + (s.root / "images/img1").string()) && Catch::Contains("the file is empty"));
}

TEST_CASE("absurd image headers, broken MP4 files and a corrupt frame are skipped and counted", "[data]") {
  Sample s(2);
  const fs::path img = s.root / "images", vid = s.root / "mp4";
  const auto png = cb::test::encode_png(cb::test::pattern_frame(0, 16, 16), 2);
  write_file(img / "huge.png", cb::test::with_huge_png_header(png));
  write_file(img / "huge.jpg", cb::test::with_huge_jpeg_header(cb::test::read_bytes(img / "img0.jpg")));
  json images = json::array();
  for (const char* id : {"img0", "huge.png", "huge.jpg", "img1"})
    images.push_back({{"video_id", id}, {"caption", "c"}});
  write_text(s.root / "ann/huge.json", images.dump());

  fs::create_directories(vid);
  cb::test::write_mp4(vid / "good.mp4", 8, 32, 32, 4, 8);
  const auto mp4 = cb::test::read_bytes(vid / "good.mp4");
  write_file(vid / "cut.mp4", std::vector<uint8_t>(mp4.begin(), mp4.begin() + mp4.size() / 2));
  std::vector<uint8_t> noise(2000);
  std::mt19937 gen(5);
  for (auto& b : noise) b = static_cast<uint8_t>(gen());
  write_file(vid / "noise.mp4", noise);
  write_file(vid / "empty.mp4", {});
  json clips = json::array();
  for (const char* id : {"good.mp4", "cut.mp4", "noise.mp4", "empty.mp4", "missing.mp4"})
    clips.push_back({{"video_id", id}, {"caption", "v"}});
  write_text(s.root / "ann/clips.json", clips.dump());
  write_file(s.root / "videos/vid1/img_0003.jpg", noise);  // one corrupt frame in a frame directory

  json raw = s.group("tv", "clips", "ann/clips.json", {{"video", "mp4"}}, "video", 2, 1);
  raw["data_format"] = "raw";
  json groups = {s.group("ti", "huge", "ann/huge.json", {{"video", "images"}}, "image", 2, 1), raw,
                 s.group("tv", "frames", "ann/videos.json", {{"video", "videos"}}, "video", 2, 1)};
  auto source = cb::build_train_source(s.config(groups, "tri_pretrain", {"run.max_bad_sample_fraction=0.95"}), 0, 1);
  for (int i = 0; i < 30; ++i) {
    cb::Batch b = source->next();
    REQUIRE(b.size() == 2);
    for (const auto& id : b.ids)
      REQUIRE((id == "img0" || id == "img1" || id == "good.mp4" || id == "vid0" || id == "vid2"));
  }
  const json skipped = source->state().at("skipped");
  INFO(skipped.dump());
  REQUIRE(skipped.at("ti--huge/huge").at("bad").get<int64_t>() >= 2);
  REQUIRE(skipped.at("tv--clips/clips").at("bad").get<int64_t>() >= 4);
  REQUIRE(skipped.at("tv--frames/frames").at("bad").get<int64_t>() >= 1);
}

TEST_CASE("a media root that is missing or not a directory is an error at startup naming it", "[data]") {
  Sample s;
  for (const std::string root : {"no_such_dir", "ann/images.json"}) {
    json groups = {s.group("ti", "imgs", "ann/images.json", {{"video", root}}, "image", 1, 0)};
    REQUIRE_THROWS_WITH(cb::build_train_source(s.config(groups), 0, 1),
                        Catch::Contains("dataset 'imgs': the video root") && Catch::Contains(root));
    groups = {s.group("ta", "auds", "ann/audios.json", {{"audio", root}}, "audio", 1, 0)};
    REQUIRE_THROWS_WITH(cb::build_train_source(s.config(groups), 0, 1),
                        Catch::Contains("dataset 'auds': the audio root") && Catch::Contains(root));
  }
}

TEST_CASE("an empty annotation file is an error at startup naming the file", "[data]") {
  Sample s;
  write_text(s.root / "ann/empty.json", "");
  json groups = {s.group("ti", "imgs", "ann/empty.json", {{"video", "images"}}, "image", 1, 0)};
  REQUIRE_THROWS_WITH(cb::build_train_source(s.config(groups), 0, 1),
                      Catch::Contains("fewer than one batch") &&
                          Catch::Contains((s.root / "ann/empty.json").string() + ": 0 usable, 0 malformed records"));
}

TEST_CASE("data options errors name the file and the key", "[data]") {
  Sample s;
  json g = s.group("ti", "imgs", "ann/images.json", {{"video", "images"}}, "image", 2, 0);
  g.erase("batch_size");
  REQUIRE_THROWS_WITH(cb::build_train_source(s.config(json::array({g})), 0, 1), Catch::Contains("batch_size"));
  json kv = s.group("ti", "imgs", "ann/images.json", {{"video", "images"}}, "image", 2, 0);
  kv.erase("data_format");
  REQUIRE_THROWS_WITH(cb::build_train_source(s.config(json::array({kv})), 0, 1), Catch::Contains("kvreader"));
  json big = s.group("ti", "imgs", "ann/images.json", {{"video", "images"}}, "image", 64, 0);
  REQUIRE_THROWS_WITH(cb::build_train_source(s.config(json::array({big})), 0, 1),
                      Catch::Contains("fewer than one batch"));

  // A typo'd key is an error, not the default: at the top level, in a loader group, in a dataset.
  json ok = s.group("ti", "imgs", "ann/images.json", {{"video", "images"}}, "image", 2, 0);
  REQUIRE_THROWS_WITH(cb::build_train_source(
                          s.config(json::array({ok}), "tri_pretrain", {}, {{"dataset_mix_typ", "round-robin"}}), 0, 1),
                      Catch::Contains("opts") && Catch::Contains("unknown key 'dataset_mix_typ'") &&
                          Catch::Contains("did you mean 'dataset_mix_type'"));
  json typo = ok;
  typo["batch_sise"] = 2;
  REQUIRE_THROWS_WITH(cb::build_train_source(s.config(json::array({typo})), 0, 1),
                      Catch::Contains("data_cfg.train[0]: unknown key 'batch_sise' (did you mean 'batch_size'?)"));
  json extra = ok;
  extra["datasets"][0]["extra_key"] = 1;
  REQUIRE_THROWS_WITH(cb::build_train_source(s.config(json::array({extra})), 0, 1),
                      Catch::Contains("data_cfg.train[0].datasets[0]: unknown key 'extra_key'"));
  // Media sizes out of range stop at startup (each sample failed to load before, reported as bad data).
  for (const auto& [key, value, message] : std::vector<std::tuple<std::string, int, std::string>>{
           {"video_resolution", 0, "video_resolution must be >= 1, got 0"},
           {"audio_melbins", 0, "audio_melbins must be > 3 (kaldi fbank), got 0"},
           {"audio_target_length", -5, "audio_target_length must be >= 1, got -5"}}) {
    INFO(key);
    REQUIRE_THROWS_WITH(cb::build_train_source(s.config(json::array({ok}), "tri_pretrain", {}, {{key, value}}), 0, 1),
                        Catch::Contains("opts") && Catch::Contains(message));
  }
}

namespace {

std::string as_string(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

std::vector<std::string> ids_of(cb::BatchSource& s, int batches) {
  std::vector<std::string> ids;
  for (const cb::Batch& b : take(s, batches)) ids.insert(ids.end(), b.ids.begin(), b.ids.end());
  return ids;
}

}  // namespace

TEST_CASE("webdataset group: batches equal those of the same images and captions as files", "[data][webdataset]") {
  Sample s(0);
  // Eight images of several sizes (one PNG) with captions that the text cleaning changes, as files
  // with an annotation file and as one shard (txt captions for some, json "caption" for the others).
  json captions = json::array();
  std::vector<std::pair<std::string, std::string>> members;
  for (int i = 0; i < 8; ++i) {
    const std::string id = fmt::format("img{}", i);
    const std::string caption = fmt::format("A  Photo-of THING/{}, here!", i);
    const auto bytes =
        i == 7 ? cb::test::encode_png(cb::test::pattern_frame(i, 20, 28), 2) : image_jpeg(i, 16 + 4 * i, 40 - 2 * i);
    write_file(s.root / "images" / id, bytes);  // no extension: the decoder sniffs the format
    captions.push_back({{"video_id", id}, {"caption", caption}});
    members.push_back({id + (i == 7 ? ".png" : ".jpg"), as_string(bytes)});
    if (i % 2) members.push_back({id + ".txt", caption});
    else members.push_back({id + ".json", json({{"caption", caption}, {"key", id}}).dump()});
  }
  write_text(s.root / "ann/images.json", captions.dump());
  cb::test::write_tar(s.root / "shards/00000.tar", members);

  auto files = cb::build_train_source(
      s.config(json::array({s.group("ti", "imgs", "ann/images.json", {{"video", "images"}}, "image", 2, 0)})), 0, 1);
  auto shards = cb::build_train_source(s.config(json::array({s.shard_group("imgs", "shards/00000.tar", 2, 0)})), 0, 1);
  std::map<std::string, std::pair<torch::Tensor, std::string>> from_files;
  for (const cb::Batch& b : take(*files, 4))
    for (size_t i = 0; i < b.ids.size(); ++i) from_files[b.ids[i]] = {b.image[i], b.text_input[i]};
  REQUIRE(from_files.size() == 8);
  std::vector<std::string> order;
  for (const cb::Batch& b : take(*shards, 4)) {
    REQUIRE(b.task == "ti");
    REQUIRE(b.image.sizes() == torch::IntArrayRef{2, 1, 3, kResolution, kResolution});
    REQUIRE_FALSE(b.audio.defined());
    REQUIRE(b.conversation.empty());
    for (size_t i = 0; i < b.ids.size(); ++i) {
      INFO(b.ids[i]);
      order.push_back(b.ids[i]);
      REQUIRE(torch::equal(b.image[i], from_files.at(b.ids[i]).first));
      REQUIRE(b.text_input[i] == from_files.at(b.ids[i]).second);
    }
  }
  // One shard: its samples in order, then again from the start (the stream is endless).
  REQUIRE(order == std::vector<std::string>{"img0", "img1", "img2", "img3", "img4", "img5", "img6", "img7"});
  REQUIRE(ids_of(*shards, 1) == std::vector<std::string>{"img0", "img1"});
  REQUIRE(shards->state().at("skipped").at("ti--imgs/imgs").at("bad") == 0);
}

TEST_CASE("webdataset group: ranks and workers read disjoint shards that cover the set", "[data][webdataset]") {
  Sample s(0);
  cb::test::write_image_shards(s.root / "shards", 5, 2);
  std::set<std::string> all;
  for (int k = 0; k < 5; ++k)
    for (int i = 0; i < 2; ++i) all.insert(fmt::format("s{}_{}", k, i));
  for (int workers : {0, 2}) {
    INFO("n_workers " << workers);
    const cb::Config cfg = s.config(json::array({s.shard_group("wds", "shards/{00000..00004}.tar", 2, workers)}));
    auto r0 = cb::build_train_source(cfg, 0, 2);
    auto r1 = cb::build_train_source(cfg, 1, 2);
    // Rank 0 reads shards 0, 2, 4 (6 samples), rank 1 shards 1, 3 (4 samples); batch 1 per rank. With
    // 2 workers rank 0's readers hold shards {0, 4} and {2} and take turns, so 8 batches cover them.
    const auto ids0 = ids_of(*r0, 8), ids1 = ids_of(*r1, 8);
    const std::set<std::string> set0(ids0.begin(), ids0.end()), set1(ids1.begin(), ids1.end());
    REQUIRE(set0.size() == 6);
    REQUIRE(set1.size() == 4);
    for (const auto& id : set0) REQUIRE((id[1] == '0' || id[1] == '2' || id[1] == '4'));
    for (const auto& id : set1) REQUIRE((id[1] == '1' || id[1] == '3'));
    std::set<std::string> both = set0;
    both.insert(set1.begin(), set1.end());
    REQUIRE(both == all);
    if (workers == 0) {
      // One reader: each pass takes every shard once, in a newly shuffled order.
      REQUIRE(std::set<std::string>(ids1.begin(), ids1.begin() + 4) == set1);
      REQUIRE(std::set<std::string>(ids1.begin() + 4, ids1.end()) == set1);
    } else {
      REQUIRE(std::count(ids0.begin(), ids0.end(), "s2_0") == 2);  // the 1-shard reader's second pass
    }
  }
  // Fewer shards than ranks; a pattern naming no file.
  const cb::Config two = s.config(json::array({s.shard_group("wds", "shards/{00000..00001}.tar", 3, 0)}));
  REQUIRE_THROWS_WITH(cb::build_train_source(two, 0, 3),
                      Catch::Contains("ti--wds") && Catch::Contains("2 shards for 3 ranks"));
  const cb::Config none = s.config(json::array({s.shard_group("wds", "missing/{0..3}.tar", 1, 0)}));
  REQUIRE_THROWS_WITH(cb::build_train_source(none, 0, 1),
                      Catch::Contains("ti--wds") && Catch::Contains((s.root / "missing/{0..3}.tar").string()) &&
                          Catch::Contains("matches no file"));
}

TEST_CASE("webdataset group: a restored source continues at the saved shard position", "[data][webdataset]") {
  Sample s(4);
  cb::test::write_image_shards(s.root / "shards", 3, 3);
  json groups = {s.shard_group("wds", "shards/{00000..00002}.tar", 2, 2, 3),
                 s.group("ti", "imgs", "ann/images.json", {{"video", "images"}}, "image", 1, 1, 1)};
  const cb::Config cfg = s.config(groups);
  auto uninterrupted = cb::build_train_source(cfg, 0, 1);
  auto reference = take(*uninterrupted, 20);

  const json saved = require_resumes(cfg, reference, 7);
  // Both readers had moved past the start of their first shard.
  const json cursors = saved.at("shard_cursors").at(0);
  REQUIRE(cursors.size() == 2);
  for (const auto& c : cursors) REQUIRE(c.at("shard").get<int64_t>() * 10 + c.at("sample").get<int64_t>() > 0);
  // Another reader count cannot continue these positions.
  groups[0]["n_workers"] = 1;
  auto other = cb::build_train_source(s.config(groups), 0, 1);
  REQUIRE_THROWS_WITH(other->restore(saved), Catch::Contains("saved with 2 shard readers"));
}

TEST_CASE("webdataset group: corrupt shards and undecodable members are skipped and reported", "[data][webdataset]") {
  Sample s(0);
  const auto good = [](int t) { return as_string(image_jpeg(t)); };
  cb::test::write_tar(s.root / "shards/00000.tar",
                      {{"a0.jpg", good(0)}, {"a0.txt", "first"}, {"a1.jpg", good(1)}, {"a1.txt", "second"}});
  // Truncated inside its second sample's image: the first sample is read, the rest skipped.
  const fs::path cut = s.root / "shards/00001.tar";
  cb::test::write_tar(cut, {{"b0.jpg", good(2)},
                            {"b0.txt", "third"},
                            {"b1.jpg", std::string(20000, 'x')},
                            {"b1.txt", "lost"},
                            {"b2.jpg", good(3)},
                            {"b2.txt", "lost too"}});
  fs::resize_file(cut, 512 + 8000);
  cb::test::write_tar(s.root / "shards/00002.tar", {{"c0.jpg", "not an image"},
                                                    {"c0.txt", "broken"},
                                                    {"c1.jpg", good(4)},
                                                    {"c1.json", "{\"text\": 1}"},
                                                    {"c2.txt", "no image"},
                                                    {"c3.jpg", good(5)},
                                                    {"c3.txt", "fine"}});
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  json groups = {s.shard_group("wds", "shards/{00000..00003}.tar", 1, 1)};  // 00003.tar does not exist
  {
    auto source = cb::build_train_source(s.config(groups, "tri_pretrain", {"run.max_bad_sample_fraction=0.95"}), 0, 1);
    std::set<std::string> ids;
    for (const auto& id : ids_of(*source, 30)) ids.insert(id);
    REQUIRE(ids == std::set<std::string>{"a0", "a1", "b0", "c3"});
    const json skipped = source->state().at("skipped").at("ti--wds/wds");
    REQUIRE(skipped.at("bad").get<int64_t>() >= 5);  // truncated, missing shard, c0, c1, c2
  }
  spdlog::default_logger()->sinks().pop_back();
  const std::string shards = (s.root / "shards").string();
  INFO(log.str());
  CHECK_THAT(log.str(), Catch::Contains("skipped " + shards + "/00001.tar (") &&
                            Catch::Contains("skipped " + shards + "/00003.tar (") &&
                            Catch::Contains("skipped " + shards + "/00002.tar:c0 (") &&
                            Catch::Contains("00002.tar:c0.jpg") && Catch::Contains("00002.tar:c1 (") &&
                            Catch::Contains("caption") && Catch::Contains("00002.tar:c2 (no image member"));
  // Too many bad samples stop the run, as for files.
  auto strict = cb::build_train_source(s.config(groups, "tri_pretrain", {"run.max_bad_sample_fraction=0.1"}), 0, 1);
  REQUIRE_THROWS_WITH(ids_of(*strict, 200), Catch::Contains("max_bad_sample_fraction"));
  // Shards of nothing usable at all are an error, not an endless search.
  cb::test::write_tar(s.root / "empty/00000.tar", {{"x.txt", "no image"}});
  auto empty = cb::build_train_source(s.config(json::array({s.shard_group("e", "empty/00000.tar", 1, 0)}),
                                               "tri_pretrain", {"run.max_bad_sample_fraction=1"}),
                                      0, 1);
  REQUIRE_THROWS_WITH(empty->next(), Catch::Contains("ti--e"));
}

TEST_CASE("webdataset group: options errors name the key", "[data][webdataset]") {
  Sample s(0);
  cb::test::write_image_shards(s.root / "shards", 1, 2);
  json g = s.shard_group("wds", "shards/00000.tar", 1, 0);
  g.erase("steps");
  g["epoch"] = 1.0;
  REQUIRE_THROWS_WITH(cb::build_train_source(s.config(json::array({g})), 0, 1),
                      Catch::Contains("data_cfg.train[0]") && Catch::Contains("needs 'steps'"));
  json txt = s.shard_group("wds", "shards/00000.tar", 1, 0);
  txt["datasets"][0]["txt"] = "ann.json";
  REQUIRE_THROWS_WITH(cb::build_train_source(s.config(json::array({txt})), 0, 1),
                      Catch::Contains("data_cfg.train[0].datasets[0]: unknown key 'txt'"));
  REQUIRE_THROWS_WITH(
      cb::build_train_source(s.config(json::array({s.shard_group("wds", "shards/00000.tar", 1, 0)}), "tri_instruct"), 0,
                             1),
      Catch::Contains("ti--wds") && Catch::Contains("tri_pretrain"));
}
