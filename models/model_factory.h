// The model registry (`model.arch`, the original's registry.get_model_class): per name, how to build
// the model from the resolved `model:` section, and how to build its module tree alone. Each task
// knows the model type it trains (runners/train/task.h model_as) — ChatBridge for
// tri_pretrain/tri_instruct, LlamaForCausalLM for lm_pretrain.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>

#include "framework/config.h"
#include "framework/registry.h"

namespace cb {

struct ModelFactory {
  using Build = std::function<std::shared_ptr<torch::nn::Module>(const Config& model_cfg)>;
  // The model with its weights (the original's from_config).
  Build build;
  // The same module tree with every parameter and buffer on the meta device (framework/meta_device.h)
  // and trainable as `build` leaves it; no weights read. What `chatbridge-train --dry-run` prints.
  // Empty when the model cannot be described so.
  Build skeleton;
};

template <>
struct FactoryOf<Kind::model> {
  using type = ModelFactory;
};

}  // namespace cb
