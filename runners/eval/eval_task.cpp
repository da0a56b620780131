#include "runners/eval/eval_task.h"

#include "framework/error.h"
#include "runners/eval/metrics/caption_scores.h"

namespace cb {
namespace {

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t i = s.find(from); i != std::string::npos; i = s.find(from, i + to.size())) s.replace(i, from.size(), to);
  return s;
}

}  // namespace

EvalTask::EvalTask(const Config& cfg, std::string name, std::string kind, int64_t default_beams,
                   int64_t default_max_len)
    : name_(std::move(name)), kind_(std::move(kind)) {
  const auto run = cfg.sub("run");
  prompt_ = run.get<std::string>("prompt");
  // num_beams and max_len default per task (the constructor arguments), so they are not declared.
  generate_.num_beams = run.get<int64_t>("num_beams", default_beams);
  const auto max_len = run.get<int64_t>("max_len", default_max_len);
  const auto min_len = run.get<int64_t>("min_len");
  if (max_len < 2) fail("run.max_len must be at least 2 (it counts the placeholder id), got {}", max_len);
  if (min_len < 0 || min_len > max_len) fail("run.min_len must be in [0, run.max_len = {}], got {}", max_len, min_len);
  generate_.max_new_tokens = max_len - 1;
  generate_.min_new_tokens = std::max<int64_t>(0, min_len - 1);
  generate_.length_penalty = run.get<double>("length_penalty");
  generate_.repetition_penalty = run.get<double>("repetition_penalty");
  if (generate_.num_beams < 1) fail("run.num_beams must be at least 1, got {}", generate_.num_beams);
}

std::unique_ptr<BatchSource> EvalTask::build_train_source(const Config&, int, int) const {
  fail("run.task '{}' is an evaluation task: run it with chatbridge-eval", name_);
}

StepOutput EvalTask::train_step(torch::nn::Module&, const Batch&, uint64_t) const {
  fail("run.task '{}' is an evaluation task: run it with chatbridge-eval", name_);
}

std::string EvalTask::prompt(const DatasetInfo& info, const std::string& text_input, const std::string& caption) const {
  std::string p = prompt_;
  if (p.empty()) {
    const std::string modality = info.video ? "video" : info.image ? "image" : "audio";
    const std::string query = info.video && info.audio ? "video: <query> and audio: <query>" : modality + ": <query>";
    p = default_prompt(query, modality);
  }
  return replace_all(replace_all(p, "<question>", text_input), "<caption>", caption);
}

std::shared_ptr<const EvalTask> make_eval_task(const Config& cfg) {
  std::shared_ptr<const Task> task = make_task(cfg);
  auto eval = std::dynamic_pointer_cast<const EvalTask>(task);
  if (!eval)
    fail("run.task '{}' trains; chatbridge-eval needs an evaluation task (caption_eval, vqa_eval, dialogue_eval)",
         cfg.get<std::string>("run.task"));
  return eval;
}

nlohmann::ordered_json caption_task_metrics(const std::vector<EvalItem>& items, const std::string& task) {
  std::vector<std::vector<std::string>> refs;
  std::vector<std::string> cands;
  for (const auto& it : items) {
    if (it.answers.empty()) fail("{}: sample {} has no reference", task, it.id);
    refs.push_back(it.answers);
    cands.push_back(it.prediction);
  }
  auto m = metrics::caption_scores(refs, cands);
  m["agg_metrics"] = m["CIDEr"].get<double>() + m["Bleu_4"].get<double>();
  m["num_samples"] = items.size();
  return m;
}

}  // namespace cb
