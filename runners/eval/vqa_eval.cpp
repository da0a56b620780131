// `vqa_eval` (LAVIS's VQA task, inference_method "generate"): results {"question_id", "answer"};
// metrics: the VQAv2 evaluator's accuracy ("acc", percent rounded to 2 decimals as VQAEval reports
// it; also agg_metrics) and the exact match of the normalised answer (percent; what LAVIS reports
// for single-answer sets such as GQA, where the consensus accuracy cannot be 1).
// Defaults of LAVIS's VQA task: 3 beams, max_len 10, min_len 1.
#include <cmath>
#include <numeric>

#include "runners/eval/eval_task.h"
#include "runners/eval/metrics/vqa_accuracy.h"

namespace cb {
namespace {

class VqaEvalTask : public EvalTask {
 public:
  explicit VqaEvalTask(const Config& cfg) : EvalTask(cfg, "vqa_eval", "qa", 3, 10) {}

  nlohmann::ordered_json record(const EvalItem& item) const override {
    return {{"question_id", item.id}, {"answer", item.prediction}};
  }

  nlohmann::ordered_json metrics(const std::vector<EvalItem>& items) const override {
    std::vector<double> acc, exact;
    for (const auto& it : items) {
      if (it.answers.empty()) fail("vqa_eval: question {} has no answer", it.id);
      acc.push_back(metrics::vqa_accuracy(it.prediction, it.answers));
      exact.push_back(metrics::vqa_exact_match(it.prediction, it.answers) ? 1.0 : 0.0);
    }
    nlohmann::ordered_json m;
    // VQAEval.setAccuracy: round(100 * float(sum(acc)) / n, 2) (Python's sequential sum).
    const double n = static_cast<double>(acc.size());
    const double overall = std::round(100 * std::accumulate(acc.begin(), acc.end(), 0.0) / n * 100) / 100;
    m["agg_metrics"] = overall;
    m["acc"] = overall;
    m["exact_match"] = 100 * std::accumulate(exact.begin(), exact.end(), 0.0) / n;
    m["num_samples"] = items.size();
    return m;
  }

 protected:
  std::string default_prompt(const std::string& query, const std::string& modality) const override {
    // The original's VQA evaluation prompt (its double space included).
    return fmt::format(
        "###Human: Given following {},  Answer the following question with a one-word answer based on the content "
        "of the given {}, <question>###Assistant:",
        query, modality);
  }
};

}  // namespace

CB_REGISTER(task, "vqa_eval",
            [](const Config& cfg) -> std::unique_ptr<Task> { return std::make_unique<VqaEvalTask>(cfg); });

}  // namespace cb
