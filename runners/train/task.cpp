#include "runners/train/task.h"

#include "models/model_factory.h"

namespace cb {

std::shared_ptr<torch::nn::Module> Task::build_model(const Config& cfg) const {
  auto arch = cfg.get<std::string>("model.arch");
  return registry::get<Kind::model>(arch).build(cfg.sub("model"));
}

std::unique_ptr<Task> make_task(const Config& cfg) {
  return registry::get<Kind::task>(cfg.get<std::string>("run.task"))(cfg);
}

}  // namespace cb
