// Validation during training, as the original's RunnerBase.train (lavis/runners/runner_base.py):
// after each epoch's training every split of run.valid_splits is evaluated on every rank (each rank a
// share of the samples, the results gathered on rank 0, runners/eval/evaluate.h), the evaluation task's
// agg_metrics logged as "<split>_agg_metrics" with "<split>_best_epoch", and when the "val" split's
// agg_metrics beats the best so far that epoch's checkpoint is kept as <output_dir>/checkpoint_best
// (the original's name; here a checkpoint directory like checkpoints/step_N, which model.ckpt,
// --resume and chatbridge-convert read). After the last epoch run.test_splits are evaluated with the
// best model (the last one without valid_splits), as the original's evaluate(cur_epoch="best"), and
// logged as split "<split>_epochbest".
//
// The splits come from the config's `datasets:` section (the LAVIS builders chatbridge-eval uses); the
// task of a dataset is run.valid_task, else caption_eval for caption sets and vqa_eval for QA sets,
// with the generation keys of run (num_beams, max_len, prompt, ...). Results are written as
// chatbridge-eval writes them, with the prefix <split>_epoch<N> (LAVIS's "{split}_epoch{epoch}").
//
// Differs from the original: the best starts at -infinity, not 0, so the first validated epoch is kept
// even when its agg_metrics is 0 or negative (the original then never writes checkpoint_best); the best
// and the last validated epoch are part of the training state, so a resumed run compares against the
// best of the epochs before it and does not validate an epoch twice.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/builders/dataset.h"
#include "framework/config.h"
#include "framework/distributed/process_group.h"
#include "runners/train/train_log.h"

namespace cb {

struct ChatBridgeImpl;
class EvalTask;

// What the runner keeps across epochs and resumes (TrainingState::validation).
struct ValidationRecord {
  int64_t best_epoch = -1;  // -1: no "val" validation yet
  double best_agg_metric = -std::numeric_limits<double>::infinity();
  int64_t validated_epoch = -1;  // the last epoch whose validation ran
  nlohmann::json to_json() const;
  // Null (a checkpoint from before validation existed or without it): a fresh record.
  static ValidationRecord from_json(const nlohmann::json& j, const std::string& source);
};

class Validator {
 public:
  // Builds the datasets and tasks of run.valid_splits and run.test_splits; fails naming the key when a
  // split, the datasets section or a task is missing, or when the model is not a ChatBridge.
  Validator(const Config& cfg, torch::nn::Module& model, torch::Device device);
  // Whether the config asks for any validation or test split.
  static bool configured(const Config& cfg);

  bool validates() const { return !valid_splits_.empty(); }
  bool tests() const { return !test_splits_.empty(); }

  // Every valid split on every rank; rank 0 logs the metrics at `step` and updates `record`. Returns
  // true on rank 0 when this epoch's "val" agg_metrics is the new best.
  bool validate(int64_t epoch, int64_t step, dist::ProcessGroup& pg, TrainLog& log, ValidationRecord& record);
  // Every test split, results prefixed <split>_epoch<label>; rank 0 logs the metrics at `step`.
  void test(const std::string& label, int64_t epoch, int64_t step, dist::ProcessGroup& pg, TrainLog& log);

 private:
  struct Split {
    std::string builder;
    std::shared_ptr<const Dataset> dataset;
    std::shared_ptr<const EvalTask> task;
  };
  // Evaluates one split of every dataset that has it; on rank 0 its metrics (one dataset: the task's;
  // several: "<builder>_<metric>" each and agg_metrics their mean), elsewhere null.
  nlohmann::json evaluate(const std::string& split, const std::string& label, dist::ProcessGroup& pg);

  ChatBridgeImpl& model_;
  torch::Device device_;
  std::filesystem::path output_dir_;
  int64_t batch_size_ = 1;
  std::vector<std::string> valid_splits_, test_splits_;
  std::map<std::string, std::vector<Split>> splits_;  // split -> the datasets that have it
};

// Copies the checkpoint directory `checkpoint` to <output_dir>/checkpoint_best (hard links where the
// file system allows; the previous best is replaced only once the copy is complete).
std::filesystem::path keep_as_best(const std::filesystem::path& checkpoint, const std::filesystem::path& output_dir);
std::filesystem::path best_checkpoint_dir(const std::filesystem::path& output_dir);

}  // namespace cb
