// TriPretrainTask (`tri_pretrain`, stage 1) and TriInsructTask (`tri_instruct`, stage 2): the same
// training step; the valor loaders they build differ by run.task (datasets/train_source.h).
#include "runners/train/tasks/tri_tasks.h"

#include "datasets/train_source.h"
#include "models/chatbridge.h"

namespace cb {

StepOutput ChatBridgeTask::train_step(torch::nn::Module& model, const Batch& batch, uint64_t step_seed) const {
  auto& chatbridge = model_as<ChatBridgeImpl>(model, "tri_pretrain/tri_instruct");
  chatbridge.seed(step_seed);
  auto out = chatbridge.forward(batch);
  return {out.loss, out.llama.attention_mask.defined() ? out.llama.attention_mask.sum().item<int64_t>() : 0};
}

namespace {

class TriTask : public ChatBridgeTask {
 public:
  std::unique_ptr<BatchSource> build_train_source(const Config& cfg, int rank, int world_size) const override {
    return cb::build_train_source(cfg, rank, world_size);
  }
};

}  // namespace

CB_REGISTER(task, "tri_pretrain", [](const Config&) -> std::unique_ptr<Task> { return std::make_unique<TriTask>(); });
CB_REGISTER(task, "tri_instruct", [](const Config&) -> std::unique_ptr<Task> { return std::make_unique<TriTask>(); });

}  // namespace cb
