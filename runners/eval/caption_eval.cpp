// `caption_eval` (LAVIS's captioning task): results {"image_id", "caption"}; metrics as COCOEvalCap
// reports them on PTB-tokenised captions: Bleu_1..4, ROUGE_L, CIDEr (pycocoevalcap's Cider, which is
// the CIDEr-D formula of the original's utils/cider), and LAVIS's agg_metrics = CIDEr + Bleu_4.
// Defaults of LAVIS's caption task: 5 beams, max_len 30, min_len 1.
#include "runners/eval/eval_task.h"

namespace cb {
namespace {

class CaptionEvalTask : public EvalTask {
 public:
  explicit CaptionEvalTask(const Config& cfg) : EvalTask(cfg, "caption_eval", "caption", 5, 30) {}

  nlohmann::ordered_json record(const EvalItem& item) const override {
    return {{"image_id", item.id}, {"caption", item.prediction}};
  }

  nlohmann::ordered_json metrics(const std::vector<EvalItem>& items) const override {
    return caption_task_metrics(items, "caption_eval");
  }

 protected:
  std::string default_prompt(const std::string& query, const std::string& modality) const override {
    return fmt::format("###Human: Given following {}, describe the {} in one sentence.###Assistant:", query, modality);
  }
};

}  // namespace

CB_REGISTER(task, "caption_eval",
            [](const Config& cfg) -> std::unique_ptr<Task> { return std::make_unique<CaptionEvalTask>(cfg); });

}  // namespace cb
