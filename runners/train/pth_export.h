// Our training checkpoints (training_checkpoint.h) as the original's checkpoint_<epoch>.pth
// (RunnerBase._save_checkpoint: torch.save of a dict), so the Python code loads a model trained here:
//   model      OrderedDict: the trainable parameters under the original's state-dict names (the
//              frozen encoders and LLaMA come from their pretrained files, as with model.ckpt)
//   optimizer  torch.optim.AdamW.state_dict(): state {i: {step, exp_avg, exp_avg_sq}} and one param
//              group (lr = run.init_lr, betas (0.9, 0.999), eps 1e-8, run.weight_decay) whose params
//              0..n-1 are the entries of `model` in order
//   config     the run's resolved config as a dict (Config.to_dict())
//   scaler     GradScaler.state_dict() ({scale, growth_factor, backoff_factor, growth_interval,
//              _growth_tracker}), None without AMP
//   epoch      the last completed epoch (one before the epoch in progress when saved mid-epoch)
// The original loads it with model.ckpt (load_checkpoint, strict=False). Its resume path
// (run.resume_ckpt_path) loads `model` strictly over every parameter and builds its optimizer over
// all of them, so it needs a checkpoint of the whole model, which this is not.
#pragma once
#include <cstdint>
#include <filesystem>

namespace cb {

struct PthExport {
  int64_t epoch = 0;      // written under "epoch"
  size_t parameters = 0;  // tensors under "model"
  size_t optimizer_states = 0;
};

// Writes the training checkpoint directory `checkpoint_dir` (step_<N>/) as a torch.save file at
// `output`; throws cb::Error naming the directory when it is not a complete training checkpoint.
PthExport export_original_checkpoint(const std::filesystem::path& checkpoint_dir, const std::filesystem::path& output);

// Whether `dir` looks like one of our training checkpoint directories (COMPLETE and state.json).
bool is_training_checkpoint(const std::filesystem::path& dir);

}  // namespace cb
