#include "runners/train/pth_export.h"

#include <spdlog/spdlog.h>

#include "framework/checkpoint/safetensors.h"
#include "framework/checkpoint/torch_save.h"
#include "framework/config.h"
#include "framework/error.h"
#include "framework/json_file.h"
#include "runners/train/training_checkpoint.h"

namespace cb {
namespace fs = std::filesystem;

bool is_training_checkpoint(const fs::path& dir) {
  return fs::is_directory(dir) && fs::exists(dir / "COMPLETE") && fs::exists(dir / "state.json");
}

PthExport export_original_checkpoint(const fs::path& dir, const fs::path& output) {
  if (!is_training_checkpoint(dir))
    fail("{}: not a complete training checkpoint directory (expected step_<N>/ with COMPLETE and state.json)",
         dir.string());
  const auto state =
      TrainingState::from_json(read_json_file(dir / "state.json", "checkpoint file"), (dir / "state.json").string());
  // As saved (the resolved config, every section of it), not re-resolved against today's schema.
  const auto config_file = dir / "config.yaml";
  const Config cfg(load_yaml_file(config_file, config_file.string()), config_file.string());
  const StateDict params = SafetensorsFile(dir / "model.safetensors").tensors();

  pickle::Arena arena;
  TreeBuilder t(arena);
  PthExport out;
  out.parameters = params.size();

  // AdamW state by parameter index; parameters never stepped have no entry, as in PyTorch.
  pickle::Value* opt_state = t.dict();
  const auto steps = read_json_file(dir / "optimizer.json", "checkpoint file").at("step");
  if (!steps.empty()) {
    SafetensorsFile moments(dir / "optimizer.safetensors");
    int64_t index = 0;
    for (const auto& p : params) {
      if (steps.contains(p.key())) {
        pickle::Value* s = t.dict();
        // torch 1.13 keeps AdamW's step as a float tensor.
        t.set(s, "step", t.tensor(torch::tensor(steps.at(p.key()).get<double>(), torch::kFloat)));
        t.set(s, "exp_avg", t.tensor(moments.tensor(p.key() + ".exp_avg")));
        t.set(s, "exp_avg_sq", t.tensor(moments.tensor(p.key() + ".exp_avg_sq")));
        t.set(opt_state, t.integer(index), s);
        ++out.optimizer_states;
      }
      ++index;
    }
  }
  pickle::Value* group = t.dict();
  t.set(group, "lr", t.real(cfg.get<double>("run.init_lr")));
  t.set(group, "betas", t.tuple({t.real(0.9), t.real(0.999)}));
  t.set(group, "eps", t.real(1e-8));
  t.set(group, "weight_decay", t.real(cfg.get<double>("run.weight_decay")));
  t.set(group, "amsgrad", t.boolean(false));
  t.set(group, "foreach", t.none());
  t.set(group, "maximize", t.boolean(false));
  t.set(group, "capturable", t.boolean(false));
  std::vector<pickle::Value*> ids;
  for (size_t i = 0; i < params.size(); ++i) ids.push_back(t.integer(static_cast<int64_t>(i)));
  t.set(group, "params", t.list(std::move(ids)));
  pickle::Value* optimizer = t.dict();
  t.set(optimizer, "state", opt_state);
  t.set(optimizer, "param_groups", t.list({group}));

  pickle::Value* scaler = t.none();
  if (!state.scaler.is_null()) {
    // runners/train/grad_scaler.h: growth x2 every 2000 good steps, backoff x0.5 (GradScaler's defaults).
    scaler = t.dict();
    t.set(scaler, "scale", t.real(state.scaler.at("scale").get<double>()));
    t.set(scaler, "growth_factor", t.real(2.0));
    t.set(scaler, "backoff_factor", t.real(0.5));
    t.set(scaler, "growth_interval", t.integer(2000));
    t.set(scaler, "_growth_tracker", t.integer(state.scaler.at("growth_tracker").get<int64_t>()));
  }

  // state.iter == iters_per_epoch at an epoch end; otherwise the epoch was in progress.
  const auto ipe = cfg.get_optional<int64_t>("run.iters_per_epoch");
  out.epoch = ipe && state.iter >= *ipe ? state.epoch : state.epoch - 1;
  if (!ipe)
    spdlog::warn("{}: run.iters_per_epoch is not in its config, so the epoch end is unknown: writing epoch {}",
                 dir.string(), out.epoch);
  else if (state.iter < *ipe)
    spdlog::warn(
        "{}: saved {} iterations into epoch {}: writing epoch {} (the original resumes at the next epoch's "
        "start)",
        dir.string(), state.iter, state.epoch, out.epoch);

  pickle::Value* root = t.dict();
  t.set(root, "model", t.state_dict(params));
  t.set(root, "optimizer", optimizer);
  t.set(root, "config", t.json(cfg.to_json()));
  t.set(root, "scaler", scaler);
  t.set(root, "epoch", t.integer(out.epoch));
  torch_save(*root, output, output.stem().string());
  return out;
}

}  // namespace cb
