// Tasks (pipeline.md §7): what a run trains and on what. A task builds the model from the registry
// (`model.arch`), the training batch source, and turns one batch into a loss (BaseTask.train_step).
// `tri_pretrain` (stage 1) and `tri_instruct` (stage 2) train alike; they differ only in their data.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>

#include "datasets/batch_source.h"
#include "framework/batch.h"
#include "framework/config.h"
#include "framework/registry.h"
#include "models/chatbridge.h"

namespace cb {

// What one training step produced: the loss to back-propagate and, for throughput logs, the number of
// tokens the LLaMA saw (attention-mask ones).
struct StepOutput {
  torch::Tensor loss;
  int64_t tokens = 0;
};

class Task {
 public:
  virtual ~Task() = default;
  // registry model `model.arch`, built from the `model:` section.
  virtual ChatBridge build_model(const Config& cfg) const;
  // This rank's share of the training data (infinite, resumable).
  virtual std::unique_ptr<BatchSource> build_train_source(const Config& cfg, int rank, int world_size) const = 0;
  // model(samples)["loss"].
  virtual StepOutput train_step(ChatBridge& model, const Batch& batch) const;
};

template <>
struct FactoryOf<Kind::task> {
  using type = std::function<std::unique_ptr<Task>(const Config& cfg)>;
};

// The task `run.task` names.
std::unique_ptr<Task> make_task(const Config& cfg);

}  // namespace cb
