// Golden case train_trajectory: stage-1 optimisation steps of the original (AdamW in one group,
// linear_warmup_cosine_lr stepped per iteration, PyTorch 1.13 zero_grad) — per-step losses and lrs and
// the tracked parameters after the last step.
#include <catch2/catch.hpp>

#include <set>

#include "runners/train/lr_schedule.h"
#include "runners/train/optim.h"
#include "tests/models/chatbridge_fixture.h"

using namespace cb;
using namespace cb::test;

TEST_CASE("golden train_trajectory: losses, lrs and final parameters of the original's steps") {
  Fixture f("train_trajectory");
  const auto& side = f.sidecar();
  // Initial weights come from the case that sidecar names (e.g. "chatbridge_stage1.safetensors (...)").
  auto initial = side.at("initial_weights").get<std::string>();
  Fixture init(initial.substr(0, initial.find(".safetensors")));
  auto model = chatbridge_from_fixture(init, f.config().at("model"));

  std::set<std::string> expected_trainable;
  for (const auto& n : side.at("trainable_params")) expected_trainable.insert(n.get<std::string>());
  auto names = trainable_parameter_names(*model);
  CHECK(std::set<std::string>(names.begin(), names.end()) == expected_trainable);

  const auto& run = f.config().at("run");
  LrScheduleConfig sc;
  sc.init_lr = run.at("init_lr");
  sc.min_lr = run.at("min_lr");
  sc.warmup_start_lr = run.at("warmup_lr");
  sc.warmup_steps = run.at("warmup_steps");
  sc.iters_per_epoch = run.at("iters_per_epoch");
  sc.max_epoch = run.at("max_epoch");
  auto sched = make_lr_scheduler(run.at("lr_sched"), sc);
  AdamWSettings as;
  as.lr = sc.init_lr;
  as.weight_decay = run.at("weight_decay");
  auto opt = make_adamw(*model, as);

  auto tasks = init.meta("batches");
  std::vector<double> losses, lrs;
  int64_t epoch = -1;
  for (const auto& step : side.at("per_step")) {
    int64_t e = step.at("epoch_iter")[0], i = step.at("epoch_iter")[1];
    if (e != epoch) model->train(), epoch = e;  // model.train() at the start of every epoch
    lrs.push_back(sched->step(*opt, e, i));
    std::string b = step.at("batch");
    auto loss = model->forward(batch_from_fixture(f, b, tasks.at(b).at("task"))).loss;
    losses.push_back(loss.item<double>());
    loss.backward();
    opt->step();
    zero_grad_keep(*opt);
  }
  check_close(torch::tensor(losses), f.get("output.loss"), tol::traj_loss, "train_trajectory loss per step");
  check_close(torch::tensor(lrs), f.get("output.lr"), tol::lr, "train_trajectory lr per step");
  auto params = module_state_dict(*model);
  for (const auto& name : f.names("output.final.")) {
    auto key = name.substr(std::string("output.final.").size());
    REQUIRE(params.contains(key));
    check_close(params[key], f.get(name), tol::traj_param, "train_trajectory final " + key);
  }
}
