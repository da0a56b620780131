// The ChatBridge training step shared by `tri_pretrain`, `tri_instruct` and test tasks that feed
// ChatBridge other data: model(samples)["loss"] with the task-alternative RNG seeded per step.
#pragma once
#include "runners/train/task.h"

namespace cb {

class ChatBridgeTask : public Task {
 public:
  StepOutput train_step(torch::nn::Module& model, const Batch& batch, uint64_t step_seed) const override;
};

}  // namespace cb
