#include "runners/task.h"

namespace cb {

ChatBridge Task::build_model(const Config& cfg) const {
  auto arch = cfg.get<std::string>("model.arch");
  return registry::get<Kind::model>(arch)(cfg.sub("model"));
}

StepOutput Task::train_step(ChatBridge& model, const Batch& batch) const {
  auto out = model->forward(batch);
  return {out.loss, out.llama.attention_mask.defined() ? out.llama.attention_mask.sum().item<int64_t>() : 0};
}

std::unique_ptr<Task> make_task(const Config& cfg) {
  return registry::get<Kind::task>(cfg.get<std::string>("run.task"))(cfg);
}

}  // namespace cb
