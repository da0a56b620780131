// The lm_pretrain text source (datasets/text/lm_corpus.h): stage-1 captions as ChatBridge's caption
// targets, stage-2 conversations with their <query> markers (or, filled, their media's caption),
// malformed records left out, ranks disjoint within an epoch, a restored state continuing with the
// same batches.
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "datasets/text/lm_corpus.h"
#include "framework/error.h"
#include "tests/support/make_media.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void write(const fs::path& p, const json& j) { std::ofstream(p) << j.dump(); }

// 10 captions (one record malformed) and 4 conversations (two about captioned items); the data-options
// JSON naming both.
struct Corpus {
  cb::test::TempDir dir;
  fs::path opts = dir.path / "data.json";
  Corpus() {
    json caps = json::array(), convs = json::array();
    for (int i = 0; i < 10; ++i)
      caps.push_back({{"video_id", std::to_string(i)}, {"caption", "A Dog/" + std::to_string(i) + "  runs."}});
    caps.push_back({{"video_id", "bad"}, {"caption", 7}});
    for (int i = 0; i < 4; ++i)
      convs.push_back({{"video_id", i < 2 ? std::to_string(i + 1) + ".jpg" : fmt::format("v{}", i)},
                       {"conversations",
                        {{{"from", "human"}, {"value", "<image>\nWhat is it?"}},
                         {{"from", "gpt"}, {"value", "Thing " + std::to_string(i) + "."}}}}});
    write(dir.path / "caps.json", caps);
    write(dir.path / "convs.json", convs);
    write(dir.path / "prompts.json", {{"ti-cap", {"Describe it."}}});
    auto group = [&](const char* task, const char* txt) {
      return json{
          {"datasets",
           {{{"name", txt}, {"txt", (dir.path / txt).string()}, {"video", dir.path.string()}, {"datatype", "image"}}}},
          {"task", task},
          {"data_format", "frame"},
          {"steps", 1},
          {"batch_size", 2},
          {"n_workers", 0}};
    };
    write(opts, {{"video_resolution", 224},
                 {"video_encoder_type", "clip_vit"},
                 {"audio_encoder_type", "beat"},
                 {"data_cfg", {{"train", {group("ti", "caps.json"), group("ti-conv", "convs.json")}}}}});
  }
  cb::LmCorpusOptions options(int rank, int world, int64_t batch) const {
    cb::LmCorpusOptions o;
    o.data_opts = {opts};
    o.prompt_path = dir.path / "prompts.json";
    o.batch_size = batch;
    o.seed = 3;
    o.rank = rank;
    o.world_size = world;
    return o;
  }
};

}  // namespace

TEST_CASE("lm corpus: caption targets and conversations, malformed records left out", "[data]") {
  Corpus c;
  auto src = cb::make_lm_corpus_source(c.options(0, 1, 14));  // 14 good texts: one batch is an epoch
  auto b = src->next();
  REQUIRE(b.text_input.size() == 14);
  std::set<std::string> texts(b.text_input.begin(), b.text_input.end());
  CHECK(texts.size() == 14);
  CHECK(texts.count("a dog 3 runs.\n"));  // valor_pre_caption + caption_end_sym
  int conversations = 0;
  for (const auto& t : b.text_input) {
    CHECK(t.find("<image>") == std::string::npos);
    if (t.find("###Assistant:Thing") != std::string::npos) {
      ++conversations;
      CHECK(t.find("<query>") != std::string::npos);  // kept: lm_pretrain tokenises by piece
    }
  }
  CHECK(conversations == 4);
  for (const auto& id : b.ids) CHECK(id.find("caps.json:10") == std::string::npos);
}

TEST_CASE("lm corpus: broken JSON Lines and malformed records are skipped and logged, as in stages 1 and 2", "[data]") {
  Corpus c;
  // The stage-1 file as JSON Lines with a line that is not JSON; a conversation with no 'gpt' turn.
  std::ofstream lines(c.dir.path / "caps.json");
  for (int i = 0; i < 4; ++i) lines << json({{"video_id", std::to_string(i)}, {"caption", "cap"}}).dump() << "\n";
  lines << "{\"video_id\": \"cut\n";
  lines.close();
  json convs = json::array();
  for (const char* from : {"gpt", "user"})
    convs.push_back({{"video_id", "v"},
                     {"conversations", {{{"from", "human"}, {"value", "q"}}, {{"from", from}, {"value", "a"}}}}});
  write(c.dir.path / "convs.json", convs);
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  std::unique_ptr<cb::BatchSource> src;
  CHECK_NOTHROW(src = cb::make_lm_corpus_source(c.options(0, 1, 5)));  // 4 captions + 1 conversation
  spdlog::default_logger()->sinks().pop_back();
  REQUIRE(src);
  CHECK(src->next().text_input.size() == 5);
  CHECK_THAT(log.str(), Catch::Contains("1 malformed records of " + (c.dir.path / "caps.json").string()) &&
                            Catch::Contains("line 5: ") && Catch::Contains("record 1: no 'gpt' turn"));
}

TEST_CASE("lm corpus: ranks see disjoint texts per epoch and a restored state continues exactly", "[data]") {
  Corpus c;
  auto r0 = cb::make_lm_corpus_source(c.options(0, 2, 3)), r1 = cb::make_lm_corpus_source(c.options(1, 2, 3));
  std::multiset<std::string> seen;  // 14 texts / (3 x 2) = 2 batches per rank and epoch
  for (int i = 0; i < 2; ++i)
    for (auto* s : {r0.get(), r1.get()})
      for (const auto& id : s->next().ids) seen.insert(id);
  CHECK(seen.size() == 12);
  CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 12);

  const auto state = r0->state();
  std::vector<std::vector<std::string>> expected;
  for (int i = 0; i < 5; ++i) expected.push_back(r0->next().text_input);  // crosses into epochs 1 and 2
  auto resumed = cb::make_lm_corpus_source(c.options(0, 2, 3));
  resumed->restore(state);
  for (int i = 0; i < 5; ++i) CHECK(resumed->next().text_input == expected[i]);
}

TEST_CASE("lm corpus: fewer texts than one batch per rank is an error", "[data]") {
  Corpus c;
  REQUIRE_THROWS_AS(cb::make_lm_corpus_source(c.options(0, 2, 8)), cb::Error);
}

TEST_CASE("lm corpus: filled query slots hold the stage-1 caption of the same media item", "[data]") {
  Corpus c;
  auto o = c.options(0, 1, 14);
  o.fill_query_slots = true;
  auto b = cb::make_lm_corpus_source(o)->next();
  int with_caption = 0, empty = 0;
  for (const auto& t : b.text_input) {
    CHECK(t.find("<query>") == std::string::npos);
    if (t.find("###Assistant:Thing") == std::string::npos) {
      CHECK(t.find("###") == std::string::npos);  // stage-1 captions stay plain
      continue;
    }
    const bool one = t.find("Thing 0.") != std::string::npos, two = t.find("Thing 1.") != std::string::npos;
    if (one) CHECK(t.find("Given following image: a dog 1 runs..") != std::string::npos);  // "1.jpg" is item "1"
    if (two) CHECK(t.find("Given following image: a dog 2 runs..") != std::string::npos);
    if (one || two) ++with_caption;
    else if (t.find("Given following image: .") != std::string::npos) ++empty;  // no stage-1 caption: empty
  }
  CHECK(with_caption == 2);
  CHECK(empty == 2);
}

TEST_CASE("lm corpus: webdataset groups (captions inside tar shards) are left out", "[data]") {
  Corpus c;
  json opts = json::parse(std::ifstream(c.opts));
  opts["data_cfg"]["train"].push_back({{"datasets", {{{"name", "laion"}, {"shards", "/no/such/{0..9}.tar"}}}},
                                       {"task", "ti"},
                                       {"data_format", "webdataset"},
                                       {"steps", 1},
                                       {"batch_size", 2},
                                       {"n_workers", 0}});
  write(c.opts, opts);
  auto src = cb::make_lm_corpus_source(c.options(0, 1, 14));  // the same 14 texts as without the group
  REQUIRE(src->next().text_input.size() == 14);
}
