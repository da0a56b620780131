// The tiny dataset's evaluation splits (scripts/make-tiny-data) through the eval configs
// eval_configs/tiny_caption_eval.yaml and tiny_vqa_eval.yaml: resolve_config merges the builders'
// default yamls, build_datasets reads every sample without a skip, with the references and answers
// the script wrote. Needs python3, ffmpeg, espeak-ng and the Debian media (scripts/setup --with-tiny-data).
#include <catch2/catch.hpp>

#include <fstream>
#include <random>
#include <sstream>

#include "datasets/builders/dataset.h"
#include "framework/error.h"
#include "tests/support/tiny_data.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kSource = CHATBRIDGE_SOURCE_DIR;

// The tiny dataset built once per process into <tmp>/tiny_data; the tmp dir is the cache root.
struct TinyDir {
  fs::path root = fs::temp_directory_path() / fmt::format("cb-tiny-eval-{}", std::random_device()());
  TinyDir() {
    fs::create_directories(root);
    cb::test::make_tiny_data(root / "tiny_data");
  }
  ~TinyDir() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};

const fs::path& tiny_root() {
  static const TinyDir dir;
  return dir.root;
}

json annotations(const std::string& file) {
  return json::parse(std::ifstream(tiny_root() / "tiny_data/annotations" / file));
}

// The eval yaml resolved as an experiment config; a placeholder model section is added when it has
// none (the evaluation harness owns that section).
cb::Config resolve(const std::string& yaml) {
  std::ifstream in(kSource / "eval_configs" / yaml);
  std::stringstream text;
  text << in.rdbuf();
  std::string body = text.str();
  if (body.find("\nmodel:") == std::string::npos && !body.starts_with("model:"))
    body += "model:\n  arch: chatbridge\n  model_type: pretrain_vicuna\n";
  const fs::path path = tiny_root() / yaml;
  std::ofstream(path) << body;
  return cb::resolve_config(path, {});
}

std::vector<cb::Sample> all(const cb::Dataset& ds) {
  std::vector<int64_t> idx(static_cast<size_t>(ds.size()));
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
  std::vector<cb::BadSample> bad;
  auto out = cb::load_samples(ds, idx, bad);
  for (const auto& b : bad) FAIL_CHECK(b.file << ": " << b.reason);
  REQUIRE(bad.empty());
  return out;
}

}  // namespace

TEST_CASE("tiny caption eval: coco_caption val split, two references per image", "[builders][tiny]") {
  auto built = cb::build_datasets(resolve("tiny_caption_eval.yaml"), tiny_root());
  REQUIRE(built.size() == 1);
  REQUIRE(built.at("coco_caption").size() == 1);
  const cb::Dataset& val = *built.at("coco_caption").at("val");
  REQUIRE(val.malformed().empty());
  const json expected = annotations("caption_val.json");
  REQUIRE(val.size() == static_cast<int64_t>(expected.size()));
  auto samples = all(val);
  for (size_t i = 0; i < samples.size(); ++i) {
    INFO(i);
    CHECK(samples[i].id == expected[i].at("image_id").get<std::string>());
    CHECK(samples[i].answers == expected[i].at("caption").get<std::vector<std::string>>());
    CHECK(samples[i].answers.size() >= 2);
    CHECK(samples[i].image.sizes().vec() == std::vector<int64_t>{3, 224, 224});
  }
  cb::SampleBatch b = cb::collate(std::vector<cb::Sample>(samples.begin(), samples.begin() + 2), val.info());
  CHECK(b.batch.image.sizes().vec() == std::vector<int64_t>{2, 3, 224, 224});
  CHECK(b.batch.task == "ti");
}

TEST_CASE("tiny VQA eval: coco_vqa eval default, questions with answer lists", "[builders][tiny]") {
  auto built = cb::build_datasets(resolve("tiny_vqa_eval.yaml"), tiny_root());
  REQUIRE(built.at("coco_vqa").size() == 1);  // the `eval` default type has a val split only
  const cb::Dataset& val = *built.at("coco_vqa").at("val");
  REQUIRE(val.malformed().empty());
  const json expected = annotations("vqa_val.json");
  REQUIRE(val.size() == static_cast<int64_t>(expected.size()));
  auto samples = all(val);
  const auto answer_list = annotations("vqa_answer_list.json").get<std::vector<std::string>>();
  for (size_t i = 0; i < samples.size(); ++i) {
    INFO(i);
    CHECK(samples[i].id == std::to_string(expected[i].at("question_id").get<int64_t>()));
    CHECK(samples[i].text_input == expected[i].at("question").get<std::string>());  // already blip_question-clean
    CHECK(samples[i].answers == expected[i].at("answer").get<std::vector<std::string>>());  // all ten, as VQAEval
    for (const auto& a : samples[i].answers)
      CHECK(std::find(answer_list.begin(), answer_list.end(), a) != answer_list.end());
    CHECK(samples[i].image.sizes().vec() == std::vector<int64_t>{3, 224, 224});
  }
}
