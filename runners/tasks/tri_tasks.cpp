// TriPretrainTask (`tri_pretrain`, stage 1) and TriInsructTask (`tri_instruct`, stage 2): the same
// training step; the valor loaders they build differ by run.task (datasets/train_source.h).
#include "datasets/train_source.h"
#include "runners/task.h"

namespace cb {
namespace {

class TriTask : public Task {
 public:
  std::unique_ptr<BatchSource> build_train_source(const Config& cfg, int rank, int world_size) const override {
    return cb::build_train_source(cfg, rank, world_size);
  }
};

}  // namespace

CB_REGISTER(task, "tri_pretrain", [](const Config&) -> std::unique_ptr<Task> { return std::make_unique<TriTask>(); });
CB_REGISTER(task, "tri_instruct", [](const Config&) -> std::unique_ptr<Task> { return std::make_unique<TriTask>(); });

}  // namespace cb
