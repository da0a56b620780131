// `dialogue_eval`: audio-visual scene-aware dialogue (AVSD; the original's avsd_dialogue eval set, one
// sample per dialog: its last question asked after the earlier turns, datasets/builders/
// dialogue_builder.cpp). Results {"image_id", "answer"}; metrics: what the AVSD challenge reports from
// coco-caption (Bleu_1..4, ROUGE_L, CIDEr; METEOR needs Java) of the answer against the reference
// answer(s), agg_metrics = CIDEr + Bleu_4 as the caption task. The original's AVSD eval yaml
// (eval_configs/caption/asvd/avsd_eval_video.yaml in its run.sh) did not ship: the default prompt and
// the decoding defaults (5 beams, max_len 30, min_len 1: the caption task's, answers being sentences)
// are this harness's.
#include <fmt/format.h>

#include "runners/eval/eval_task.h"

namespace cb {
namespace {

class DialogueEvalTask : public EvalTask {
 public:
  explicit DialogueEvalTask(const Config& cfg) : EvalTask(cfg, "dialogue_eval", "dialogue", 5, 30) {}

  nlohmann::ordered_json record(const EvalItem& item) const override {
    return {{"image_id", item.id}, {"answer", item.prediction}};
  }

  nlohmann::ordered_json metrics(const std::vector<EvalItem>& items) const override {
    return caption_task_metrics(items, "dialogue_eval");
  }

 protected:
  // <question> is the dialogue history, "###Human: q1###Assistant: a1...###Human: qN###Assistant:",
  // so the instruction is the first human turn; <caption> the video's caption from the annotation.
  std::string default_prompt(const std::string& query, const std::string& modality) const override {
    return fmt::format(
        "###Human: Given following {}, answer the questions about the {} in one sentence. The {} shows: "
        "<caption><question>",
        query, modality, modality);
  }
};

}  // namespace

CB_REGISTER(task, "dialogue_eval",
            [](const Config& cfg) -> std::unique_ptr<Task> { return std::make_unique<DialogueEvalTask>(cfg); });

}  // namespace cb
