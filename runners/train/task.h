// Tasks (the original's chatbridge/tasks/): what a run trains and on what. A task builds the model from the registry
// (`model.arch`), the training batch source, and turns one batch into a loss (BaseTask.train_step).
// `tri_pretrain` (stage 1) and `tri_instruct` (stage 2) train ChatBridge alike and differ only in
// their data; `lm_pretrain` (stage 0 of the tiny main job) trains a LLaMA as a causal LM on text.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>

#include "datasets/batch_source.h"
#include "framework/batch.h"
#include "framework/config.h"
#include "framework/error.h"
#include "framework/registry.h"

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
  virtual std::shared_ptr<torch::nn::Module> build_model(const Config& cfg) const;
  // This rank's share of the training data (infinite, resumable).
  virtual std::unique_ptr<BatchSource> build_train_source(const Config& cfg, int rank, int world_size) const = 0;
  // The loss of one batch. `step_seed` seeds the model's own per-step randomness (ChatBridge's choice
  // among '%'-alternative tasks); it depends only on (seed, rank, step), so resumed runs agree.
  virtual StepOutput train_step(torch::nn::Module& model, const Batch& batch, uint64_t step_seed) const = 0;
  // Rank 0, once training has run to its end (not after a SIGTERM/SIGINT stop): export whatever the task
  // hands on to later stages. Nothing by default.
  virtual void finish(const torch::nn::Module& model, const Config& cfg) const {}
};

template <>
struct FactoryOf<Kind::task> {
  using type = std::function<std::unique_ptr<Task>(const Config& cfg)>;
};

// The task `run.task` names.
std::unique_ptr<Task> make_task(const Config& cfg);

// The model as the type a task trains; cb::Error naming `model.arch` when it is another model.
template <typename Impl>
Impl& model_as(torch::nn::Module& model, const char* task) {
  if (auto* m = dynamic_cast<Impl*>(&model)) return *m;
  fail("task '{}' cannot train the model '{}' (check model.arch)", task, model.name());
}

}  // namespace cb
