// Training checkpoints for exact resume (RunnerBase._save_checkpoint / _load_checkpoint, extended): one directory per
// save,
//
//   <output_dir>/checkpoints/step_<global step, 9 digits>/
//     model.safetensors       trainable parameters under the original key names
//     optimizer.safetensors   AdamW moments: "<param>.exp_avg", "<param>.exp_avg_sq"
//     optimizer.json          {"step": {"<param>": n}}  (AdamW's per-parameter step counts)
//     state.json              epoch, iteration, global step, scaler, per-rank loader and RNG states
//     config.yaml             the resolved config
//     COMPLETE                written last
//
// Written by rank 0 into a temporary sibling directory, every file fsynced, then renamed into place
// and the parent fsynced, so a crash leaves either no directory or a complete one. Only directories
// with COMPLETE count; older ones beyond keep_last are deleted after a successful save. A save that
// fails (no space left, ...) removes its temporary directory before it throws, and each save first
// removes the temporaries a crash left, so no space stays held by a checkpoint that does not count.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "framework/checkpoint/state_dict.h"

namespace cb {

// Trainable parameters under their state-dict names, each tensor once (in module order).
StateDict trainable_named_parameters(const torch::nn::Module& model);

struct TrainingState {
  int64_t epoch = 0;        // epoch in progress at the save
  int64_t iter = 0;         // iterations of that epoch already done (iters_per_epoch at an epoch end)
  int64_t global_step = 0;  // iterations done since the start of training
  nlohmann::json scaler;    // GradScaler state, null without one
  nlohmann::json ranks;     // per rank: {"loader": ..., "torch_rng": [bytes]}
  // The best epoch and agg_metrics so far (runners/train/validation.h); null without run.valid_splits.
  nlohmann::json validation;
  nlohmann::json to_json() const;
  static TrainingState from_json(const nlohmann::json& j, const std::string& source);
};

struct CheckpointContents {
  StateDict params;  // trainable_named_parameters
  const torch::optim::AdamW* optimizer = nullptr;
  TrainingState state;
  std::string config_yaml;
};

std::filesystem::path checkpoints_dir(const std::filesystem::path& output_dir);

// Writes a checkpoint as described above and prunes to keep_last (<= 0: keep all). Returns its path.
std::filesystem::path save_training_checkpoint(const std::filesystem::path& output_dir, const CheckpointContents& c,
                                               int keep_last);

// Whether `dir` holds a complete checkpoint (its COMPLETE marker), as this process sees it.
bool is_complete_checkpoint(const std::filesystem::path& dir);

// The complete checkpoint with the highest step under output_dir, if any.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& output_dir);

// Loads a checkpoint directory into `params` (strict over the trainable names) and `optimizer`;
// returns its state. Fails naming the directory when it is incomplete or does not match.
TrainingState load_training_checkpoint(const std::filesystem::path& dir, const StateDict& params,
                                       torch::optim::AdamW& optimizer);

// The default CPU generator's state as bytes, and back.
std::vector<uint8_t> torch_cpu_rng_state();
void set_torch_cpu_rng_state(const std::vector<uint8_t>& bytes);

}  // namespace cb
