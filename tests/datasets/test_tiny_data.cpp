// scripts/make-tiny-data builds the embedded tiny dataset, and the committed data-options files
// (train_configs/tiny_pretrain_data.json, instructiontuning_configs/tiny_instruct_data.json with
// instructiontuning_configs/task_prompt.json) load every sample of it without a skip.
// Needs python3, ffmpeg, espeak-ng and the Debian media (scripts/setup --with-tiny-data).
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <set>

#include "datasets/processors/text_processors.h"
#include "datasets/train_source.h"
#include "datasets/webdataset/tar_shard.h"
#include "tests/support/tiny_data.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kSource = CHATBRIDGE_SOURCE_DIR;

// The tiny dataset, built once per process into a temp dir that becomes the working directory (its
// data-options paths are relative, as in the original); removed at exit.
struct TinyDir {
  fs::path root = fs::temp_directory_path() / fmt::format("cb-tiny-{}", std::random_device()());
  TinyDir() {
    fs::create_directories(root);
    cb::test::make_tiny_data(root / "tiny_data");
    fs::current_path(root);
  }
  ~TinyDir() {
    std::error_code ec;
    fs::current_path(fs::temp_directory_path(), ec);
    fs::remove_all(root, ec);
  }
};

const fs::path& tiny_root() {
  static const TinyDir dir;
  return dir.root;
}

cb::Config config(const std::string& task, const std::string& opts) {
  return cb::Config(
      cb::options_to_node({"run.task=" + task, "run.seed=42", "run.valor_data_opts_path=" + (kSource / opts).string(),
                           "run.prompt_path=" + (kSource / "instructiontuning_configs/task_prompt.json").string()}),
      "test");
}

void require_no_skips(const cb::BatchSource& s) {
  for (const auto& [key, c] : s.state().at("skipped").items()) {
    INFO(key);
    REQUIRE(c.at("bad").get<int64_t>() == 0);
  }
}

std::map<std::string, std::string> captions(const std::string& file) {
  std::map<std::string, std::string> out;
  for (const auto& r : json::parse(std::ifstream(tiny_root() / "tiny_data/annotations" / file)))
    out[r.at("video_id").get<std::string>()] = r.at("caption").get<std::string>();
  return out;
}

}  // namespace

TEST_CASE("tiny dataset: stage-1 mixture of images, videos and audio", "[data][tiny]") {
  tiny_root();
  auto source = cb::build_train_source(config("tri_pretrain", "train_configs/tiny_pretrain_data.json"), 0, 1);
  auto images = captions("pretrain_image.json"), videos = captions("pretrain_video.json"),
       audios = captions("pretrain_audio.json");
  std::set<std::string> kinds;
  for (int i = 0; i < 24; ++i) {
    cb::Batch b = source->next();
    REQUIRE(b.size() == 2);
    const std::string& id = b.ids[0];
    if (images.count(id)) {
      kinds.insert("image");
      REQUIRE(b.image.sizes() == torch::IntArrayRef{2, 1, 3, 224, 224});
      REQUIRE(b.text_input[0] == cb::valor_pre_caption(images[id]));
    } else if (videos.count(id)) {
      kinds.insert("video");
      REQUIRE(b.image.sizes() == torch::IntArrayRef{2, 4, 3, 224, 224});
      REQUIRE(b.text_input[0] == cb::valor_pre_caption(videos[id]));
    } else {
      kinds.insert("audio");
      REQUIRE(audios.count(id) == 1);
      REQUIRE(b.task == "ta");
      REQUIRE(b.audio.sizes() == torch::IntArrayRef{2, 1, 1024, 64});
    }
  }
  REQUIRE(kinds.size() == 3);
  require_no_skips(*source);
}

TEST_CASE("tiny dataset: stage-2 instruction mixture", "[data][tiny]") {
  tiny_root();
  auto source =
      cb::build_train_source(config("tri_instruct", "instructiontuning_configs/tiny_instruct_data.json"), 0, 1);
  const std::map<std::string, std::string> prefix = {
      {"ti", "###Human: Given following image: <query>.###Human: "},
      {"tv", "###Human: Given following video: <query>.###Human: "},
      {"ta", "###Human: Given following audio: <query>.###Human: "},
      {"tva", "###Human: Given following video: <query> and its background audio: <query>.###Human: "}};
  std::set<std::string> tasks;
  for (int i = 0; i < 40; ++i) {
    cb::Batch b = source->next();
    tasks.insert(b.task);
    REQUIRE(b.conversation.size() == 2);
    const std::string modality = b.task.substr(0, b.task.find('-'));
    for (const auto& c : b.conversation) {
      REQUIRE(c.rfind(prefix.at(modality), 0) == 0);
      REQUIRE(c.find("###Assistant:") != std::string::npos);
      REQUIRE(c.find("<image>") == std::string::npos);
    }
    REQUIRE(b.image.defined() == (modality != "ta"));
    REQUIRE(b.audio.defined() == (modality == "ta" || modality == "tva"));
  }
  REQUIRE(tasks == std::set<std::string>{"ti-cap", "ti-shortqa", "ti-conv", "tv-cap", "ta-cap", "tva-det"});
  require_no_skips(*source);
}

TEST_CASE("make-tiny-data is idempotent", "[data][tiny]") {
  const fs::path data = tiny_root() / "tiny_data";
  const auto stamp = fs::last_write_time(data / ".stamp");
  cb::test::make_tiny_data(data);
  REQUIRE(fs::last_write_time(data / ".stamp") == stamp);
}

TEST_CASE("tiny dataset: the webdataset shard holds the image set", "[data][tiny]") {
  auto images = captions("pretrain_image.json");
  cb::WebdatasetShardReader reader(tiny_root() / "tiny_data/webdataset/images-00000.tar");
  size_t n = 0;
  while (auto s = reader.next()) {
    ++n;
    REQUIRE(s->members.size() == 2);
    const auto& meta = s->members.at("json");
    const json j = json::parse(meta.begin(), meta.end());
    REQUIRE(images.at(j.at("key").get<std::string>()) == j.at("caption").get<std::string>());
    REQUIRE(s->members.at("jpg").size() > 100);
  }
  REQUIRE(n == images.size());
}
