// The signature of the model registry (`model.arch`, the original's registry.get_model_class): a
// factory from the resolved `model:` section to a module. Each task knows the model type it trains
// (runners/train/task.h model_as) — ChatBridge for tri_pretrain/tri_instruct, LlamaForCausalLM for lm_pretrain.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>

#include "framework/config.h"
#include "framework/registry.h"

namespace cb {

template <>
struct FactoryOf<Kind::model> {
  using type = std::function<std::shared_ptr<torch::nn::Module>(const Config& model_cfg)>;
};

}  // namespace cb
