// Integration: chatbridge-eval on the tiny dataset's eval splits (scripts/make-tiny-data), through
// chatbridge-launch. The model is the golden chatbridge_stage2 case's tiny ChatBridge (its config and
// weights, saved as a checkpoint directory; --model-cfg gives the architecture), so predictions are
// noise but deterministic. Checks: every sample appears exactly once in the results, the metrics
// have their keys with values in range and agree with the results file, and 1 rank == 2 ranks.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "framework/checkpoint/safetensors.h"
#include "framework/distributed/launcher.h"
#include "runners/eval/evaluate.h"
#include "runners/eval/metrics/bleu.h"
#include "runners/eval/metrics/cider.h"
#include "runners/eval/metrics/ptb_tokenizer.h"
#include "runners/eval/metrics/rouge.h"
#include "runners/eval/metrics/vqa_accuracy.h"
#include "tests/support/golden.h"
#include "tests/support/process_util.h"
#include "tests/support/scratch_dir.h"
#include "tests/support/tiny_data.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace cb::test;

namespace {

const fs::path kSource = CHATBRIDGE_SOURCE_DIR;

json read_json(const fs::path& p) {
  std::ifstream in(p);
  REQUIRE(in.good());
  return json::parse(in);
}

// The cache root: tiny_data/, the model yaml and its checkpoint directory (built once per process).
const fs::path& root() {
  static const fs::path dir = [] {
    auto d = fresh_dir("eval_tiny");
    make_tiny_data(d / "tiny_data", d / "make-tiny-data.txt");
    Fixture f("chatbridge_stage2");
    fs::create_directories(d / "ckpt");
    cb::save_safetensors(d / "ckpt" / "model.safetensors", f.weights());
    auto model = f.config();
    model["llama_tokenizer"] = golden_tokenizer().string();
    model["vit_precision"] = "fp32";
    model["ckpt"] = (d / "ckpt").string();
    std::ofstream(d / "model.yaml") << json{{"model", model}, {"run", {{"task", "tri_pretrain"}}}}.dump(1);
    return d;
  }();
  return dir;
}

// Runs chatbridge-eval on eval_configs/<yaml> with `nproc` ranks; returns the output directory.
fs::path run_eval(const std::string& yaml, const std::string& dataset, int nproc, const std::string& name,
                  const std::vector<std::string>& extra = {}) {
  const auto out = fresh_dir(name);
  const auto image_size = Fixture("chatbridge_stage2").config().at("image_size").get<int64_t>();
  std::vector<std::string> argv = {
      CB_LAUNCH,
      "--standalone",
      "--nproc-per-node",
      std::to_string(nproc),
      "--master-port",
      std::to_string(cb::dist::free_tcp_port()),
      CB_EVAL,
      "--threads",
      "1",
      "--cfg-path",
      (kSource / "eval_configs" / yaml).string(),
      "--model-cfg",
      (root() / "model.yaml").string(),
      "--options",
      "run.output_dir=" + out.string(),
      "datasets." + dataset + ".vis_processor.eval.image_size=" + std::to_string(image_size)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const auto log = out / "log.txt";
  const int code = wait_exit(spawn(argv, {{"CHATBRIDGE_CACHE_ROOT", root().string()}}, log));
  if (code != 0) {
    std::ifstream in(log);
    FAIL("chatbridge-eval exited with " << code << ":\n" << std::string(std::istreambuf_iterator<char>(in), {}));
  }
  return out;
}

// Every annotation id once, and nothing else.
void check_each_once(const json& results, const char* key, const std::vector<std::string>& expected) {
  std::multiset<std::string> got;
  for (const auto& r : results) got.insert(r.at(key).get<std::string>());
  CHECK(got == std::multiset<std::string>(expected.begin(), expected.end()));
}

std::string id_string(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

}  // namespace

TEST_CASE("chatbridge-eval caption_eval with 2 ranks: each image once, COCO caption metrics in range", "[eval]") {
  const auto out = run_eval("tiny_caption_eval.yaml", "coco_caption", 2, "eval_caption_2");
  const auto ann = read_json(root() / "tiny_data/annotations/caption_val.json");
  std::vector<std::string> ids;
  std::map<std::string, std::vector<std::string>> refs;
  for (const auto& a : ann) {
    ids.push_back(id_string(a.at("image_id")));
    refs[ids.back()] = a.at("caption").get<std::vector<std::string>>();
  }
  const auto results = read_json(out / "result/val_results.json");
  check_each_once(results, "image_id", ids);

  const auto m = read_json(out / "val_metrics.json");
  for (const char* k : {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L"}) {
    INFO(k);
    REQUIRE(m.contains(k));
    CHECK(m[k].get<double>() >= 0);
    CHECK(m[k].get<double>() <= 1);
  }
  REQUIRE(m.contains("CIDEr"));
  CHECK(m["CIDEr"].get<double>() >= 0);
  CHECK(m["CIDEr"].get<double>() <= 10);
  CHECK(m["agg_metrics"].get<double>() == Approx(m["CIDEr"].get<double>() + m["Bleu_4"].get<double>()));
  CHECK(m["num_samples"].get<size_t>() == ids.size());

  // The metrics are those of the results file against the annotation's references.
  std::vector<std::vector<std::string>> r;
  std::vector<std::string> c;
  for (const auto& rec : results) {
    std::vector<std::string> tok;
    for (const auto& s : refs.at(rec["image_id"].get<std::string>())) tok.push_back(cb::metrics::ptb_tokenize(s));
    r.push_back(tok);
    c.push_back(cb::metrics::ptb_tokenize(rec["caption"].get<std::string>()));
  }
  CHECK(m["CIDEr"].get<double>() == Approx(cb::metrics::cider_d(r, c).score).epsilon(1e-12));
  CHECK(m["Bleu_1"].get<double>() == Approx(cb::metrics::bleu(r, c).corpus[0]).epsilon(1e-12));
  CHECK(m["ROUGE_L"].get<double>() == Approx(cb::metrics::rouge_l(r, c).score).epsilon(1e-12));
}

TEST_CASE("chatbridge-eval vqa_eval with 2 ranks: each question once, VQA accuracy and exact match in range",
          "[eval]") {
  const auto out = run_eval("tiny_vqa_eval.yaml", "coco_vqa", 2, "eval_vqa_2");
  const auto ann = read_json(root() / "tiny_data/annotations/vqa_val.json");
  std::vector<std::string> ids;
  std::map<std::string, std::vector<std::string>> answers;
  for (const auto& a : ann) {
    ids.push_back(id_string(a.at("question_id")));
    answers[ids.back()] = a.at("answer").get<std::vector<std::string>>();
  }
  const auto results = read_json(out / "result/val_results.json");
  check_each_once(results, "question_id", ids);

  const auto m = read_json(out / "val_metrics.json");
  for (const char* k : {"acc", "exact_match", "agg_metrics"}) {
    INFO(k);
    REQUIRE(m.contains(k));
    CHECK(m[k].get<double>() >= 0);
    CHECK(m[k].get<double>() <= 100);
  }
  double acc = 0;
  for (const auto& rec : results)
    acc +=
        cb::metrics::vqa_accuracy(rec["answer"].get<std::string>(), answers.at(rec["question_id"].get<std::string>()));
  CHECK(m["acc"].get<double>() == Approx(100 * acc / static_cast<double>(results.size())).margin(0.005));
  CHECK(m["num_samples"].get<size_t>() == ids.size());
}

TEST_CASE("chatbridge-eval: 1 rank and 2 ranks write the same results and metrics", "[eval]") {
  for (const auto& [yaml, dataset] :
       {std::pair{"tiny_caption_eval.yaml", "coco_caption"}, std::pair{"tiny_vqa_eval.yaml", "coco_vqa"}}) {
    INFO(yaml);
    // One sample per batch: no left padding, so each prompt's numbers do not depend on its batch.
    const auto one = run_eval(yaml, dataset, 1, std::string("eval_1rank_") + dataset, {"run.batch_size_eval=1"});
    const auto two = run_eval(yaml, dataset, 2, std::string("eval_2rank_") + dataset, {"run.batch_size_eval=1"});
    CHECK(read_json(one / "result/val_results.json") == read_json(two / "result/val_results.json"));
    CHECK(read_json(one / "val_metrics.json") == read_json(two / "val_metrics.json"));
    CHECK(read_json(one / "result/val_results.json").size() > 0);
  }
}

TEST_CASE("chatbridge-eval with a LLaMA training yaml as --model-cfg: it cannot evaluate that model", "[eval]") {
  const auto out = fresh_dir("eval_llama_model");
  const auto log = out / "log.txt";
  const int code = wait_exit(
      spawn({CB_EVAL, "--threads", "1", "--cfg-path", (kSource / "eval_configs" / "tiny_caption_eval.yaml").string(),
             "--model-cfg", (kSource / "train_configs" / "tiny_lm_pretrain.yaml").string(), "--options",
             "run.output_dir=" + out.string(),
             "model.llama_tokenizer=" + (kSource / "tests/golden/tokenizer.model").string()},
            {}, log));
  std::ifstream in(log);
  const std::string text(std::istreambuf_iterator<char>(in), {});
  INFO(text);
  CHECK(code != 0);
  CHECK(text.find("task 'caption_eval' cannot evaluate the model") != std::string::npos);
  CHECK(text.find("cannot train") == std::string::npos);
}

TEST_CASE("the warning that the metrics leave samples out counts samples, and malformed records apart", "[eval]") {
  // 11 annotation records, one malformed, grouped into 5 images' samples, 4 evaluated: it said
  // "the metrics cover 4 of 10 annotation records" (samples + malformed records).
  CHECK(cb::coverage_warning("coco_caption", 4, 5, 1) ==
        "coco_caption: the metrics cover 4 of 5 samples (1 with unreadable media); 1 malformed annotation record "
        "was dropped when the set was built, not among them");
  CHECK(cb::coverage_warning("coco_caption", 5, 5, 2) ==
        "coco_caption: the metrics cover 5 of 5 samples; 2 malformed annotation records were dropped when the set "
        "was built, not among them");
  CHECK(cb::coverage_warning("coco_caption", 3, 5, 0) ==
        "coco_caption: the metrics cover 3 of 5 samples (2 with unreadable media)");
  CHECK(cb::coverage_warning("coco_caption", 5, 5, 0).empty());
}
