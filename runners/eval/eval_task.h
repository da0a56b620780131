// Evaluation tasks of chatbridge-eval (LAVIS caption/vqa/dialogue tasks: lavis/tasks/captioning.py, vqa.py,
// dialogue.py): the prompt protocol
// of the intended zero-shot harness and the metrics of a split. Registered as tasks (`run.task`),
// they build the model like the training tasks but do not train.
//
// Prompts (`run.prompt`, else the default below): `<query>` marks each feature block (one for image,
// video or audio sets; two, video then audio, for audio-visual sets, the original's inf_type
// "image and audio"); `<question>` is replaced by the sample's text_input, `<caption>` by its caption.
// The prompt is embedded as the original's get_input_embeds (process_prompt_instruct, left padding)
// with bos in front (as the model saw in training), then the LLaMA generates (HF 4.28 generate with
// inputs_embeds). Generation keys use LAVIS's names: run.num_beams, run.max_len / run.min_len (HF
// max_length / min_length, which with inputs_embeds count the one placeholder id: max_len - 1 new
// tokens at most, eos forbidden before min_len - 1), run.length_penalty, run.repetition_penalty.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/builders/dataset.h"
#include "models/generation.h"
#include "runners/train/task.h"

namespace cb {

// One evaluated sample as gathered on rank 0.
struct EvalItem {
  int64_t index = 0;                 // position in the dataset (results are written in this order)
  std::string id;                    // image/video/question id
  std::string prediction;            // the post-processed generated text
  std::vector<std::string> answers;  // reference captions or human answers
};

// COCOEvalCap's scores of the predictions against their references (metrics/caption_scores.h), with
// LAVIS's agg_metrics = CIDEr + Bleu_4 and num_samples: what caption_eval and dialogue_eval report.
// An item without references fails, naming `task` and the item.
nlohmann::ordered_json caption_task_metrics(const std::vector<EvalItem>& items, const std::string& task);

class EvalTask : public Task {
 public:
  // kind: the dataset kind the task evaluates ("caption", "qa" or "dialogue").
  EvalTask(const Config& cfg, std::string name, std::string kind, int64_t default_beams, int64_t default_max_len);

  std::unique_ptr<BatchSource> build_train_source(const Config& cfg, int rank, int world_size) const override;
  StepOutput train_step(torch::nn::Module& model, const Batch& batch, uint64_t step_seed) const override;

  const std::string& name() const { return name_; }
  const std::string& kind() const { return kind_; }
  const GenerateOptions& generate_options() const { return generate_; }

  // The prompt of one sample of `info`'s dataset (placeholders filled).
  std::string prompt(const DatasetInfo& info, const std::string& text_input, const std::string& caption) const;
  // The per-sample record of the results file (LAVIS's field names).
  virtual nlohmann::ordered_json record(const EvalItem& item) const = 0;
  // The split's metrics from every sample.
  virtual nlohmann::ordered_json metrics(const std::vector<EvalItem>& items) const = 0;

 protected:
  // The default prompt for `modality` ("image", "video", "audio"; the query part is built apart).
  virtual std::string default_prompt(const std::string& query_part, const std::string& modality) const = 0;

 private:
  std::string name_, kind_;
  std::string prompt_;  // run.prompt, empty: the default
  GenerateOptions generate_;
};

// The evaluation task `run.task` names; cb::Error when it names a training task.
std::shared_ptr<const EvalTask> make_eval_task(const Config& cfg);

}  // namespace cb
