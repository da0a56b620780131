#include <catch2/catch.hpp>

#include "framework/config.h"
#include "framework/error.h"
#include "runners/train/lr_schedule.h"
#include "tests/support/golden.h"

using cb::LrScheduleConfig;

namespace {

LrScheduleConfig config_from(const nlohmann::json& s) {
  LrScheduleConfig c;
  c.init_lr = s.at("init_lr").get<double>();
  c.min_lr = s.at("min_lr").get<double>();
  c.warmup_start_lr = s.at("warmup_start_lr").get<double>();
  c.warmup_steps = s.at("warmup_steps").get<int64_t>();
  c.max_epoch = s.at("max_epoch").get<int64_t>();
  c.iters_per_epoch = s.at("iters_per_epoch").get<int64_t>();
  return c;
}

}  // namespace

TEST_CASE("golden lr_schedule: linear_warmup_cosine_lr, every setting and row") {
  cb::test::Fixture f("lr_schedule");
  const auto& settings = f.config().at("settings");
  REQUIRE(!settings.empty());
  for (const auto& [name, s] : settings.items()) {
    auto sched = cb::make_lr_scheduler("linear_warmup_cosine_lr", config_from(s));
    auto rows = f.get("input." + name + ".epoch_step");
    auto ref = f.get("output." + name + ".lr");
    REQUIRE(rows.size(0) == ref.size(0));
    auto out = torch::empty({rows.size(0)}, torch::kFloat64);
    for (int64_t r = 0; r < rows.size(0); ++r)
      out[r] = sched->lr_at(rows[r][0].item<int64_t>(), rows[r][1].item<int64_t>());
    cb::test::check_close(out, ref, cb::test::tol::lr, "lr_schedule " + name + " lr");

    // The sidecar holds the original's float64 values: they must agree far beyond the F32 row.
    const auto& points = f.sidecar().at("values").at(name).at("points");
    REQUIRE(points.size() == size_t(rows.size(0)));
    auto exact = torch::empty({int64_t(points.size())}, torch::kFloat64);
    auto mine = torch::empty({int64_t(points.size())}, torch::kFloat64);
    for (size_t r = 0; r < points.size(); ++r) {
      exact[r] = std::stod(points[r].at("lr").get<std::string>());
      mine[r] = sched->lr_at(points[r].at("epoch").get<int64_t>(), points[r].at("iter").get<int64_t>());
    }
    cb::test::check_close(mine, exact, {1e-12, 0}, "lr_schedule " + name + " lr (float64 sidecar)");
  }
}

TEST_CASE("lr_schedule: warmup restarts each epoch while total < warmup_steps (original quirk)") {
  LrScheduleConfig c{.init_lr = 1e-3,
                     .min_lr = 0,
                     .warmup_start_lr = 0,
                     .warmup_steps = 150,
                     .max_epoch = 3,
                     .iters_per_epoch = 100,
                     .decay_rate = std::nullopt};
  cb::LinearWarmupCosineLr s(c);
  CHECK(s.lr_at(0, 50) == Approx(1e-3 * 50 / 150.0));
  CHECK(s.lr_at(1, 10) == Approx(1e-3 * 10 / 150.0));  // total 110 < 150: ramp restarted from step 10
  CHECK(s.lr_at(1, 50) == Approx(1e-3 * 0.5 * (1 + std::cos(M_PI * 150 / 300.0))));
}

TEST_CASE("lr_schedule: no warmup, negative warmup_lr, epoch end") {
  LrScheduleConfig c{.init_lr = 2e-4,
                     .min_lr = 1e-5,
                     .warmup_start_lr = -1,
                     .warmup_steps = 0,
                     .max_epoch = 2,
                     .iters_per_epoch = 10,
                     .decay_rate = std::nullopt};
  cb::LinearWarmupCosineLr s(c);
  CHECK(s.lr_at(0, 0) == 2e-4);                          // cos(0) = 1: starts at init_lr
  CHECK(s.lr_at(1, 10) == Approx(1e-5).epsilon(1e-12));  // t = T: min_lr
  c.warmup_steps = 5;
  cb::LinearWarmupCosineLr w(c);
  CHECK(w.lr_at(0, 0) == 2e-4);  // warmup_start_lr -1 -> init_lr: flat warmup
  CHECK(w.lr_at(0, 4) == 2e-4);
  c.iters_per_epoch = 0;
  CHECK_THROWS_AS(cb::LinearWarmupCosineLr(c), cb::Error);
}

TEST_CASE("lr_schedule: linear_warmup_step_lr decays per epoch and floors at min_lr") {
  LrScheduleConfig c{.init_lr = 1e-4,
                     .min_lr = 3e-5,
                     .warmup_start_lr = 1e-6,
                     .warmup_steps = 100,
                     .max_epoch = 10,
                     .iters_per_epoch = 1000,
                     .decay_rate = 0.5};
  auto s = cb::make_lr_scheduler("linear_warmup_step_lr", c);
  CHECK(s->lr_at(0, 0) == 1e-6);
  CHECK(s->lr_at(0, 50) == Approx(1e-6 + (1e-4 - 1e-6) * 0.5));
  CHECK(s->lr_at(0, 500) == 1e-4);  // after warmup, still epoch 0: init_lr
  CHECK(s->lr_at(1, 0) == 5e-5);    // independent of the step within the epoch
  CHECK(s->lr_at(1, 999) == 5e-5);
  CHECK(s->lr_at(2, 0) == 3e-5);  // 2.5e-5 floored
  CHECK_THROWS_AS(cb::make_lr_scheduler("cosine", c), cb::Error);
  c.decay_rate.reset();  // run.lr_decay_rate absent: the original crashes in epoch 1
  CHECK_THROWS_AS(cb::make_lr_scheduler("linear_warmup_step_lr", c), cb::Error);
}

TEST_CASE("lr_schedule: run config values and their defaults") {
  auto run = [](const std::string& yaml) {  // a run: section, whose declared defaults are keyed run.*
    cb::ConfigNode root = cb::ConfigNode::mapping("run.yaml");
    root.child("run") = cb::parse_yaml(yaml, "run.yaml");
    return cb::Config(std::move(root), "run.yaml").sub("run");
  };
  auto c =
      cb::lr_schedule_config(run("init_lr: 1e-4\nmin_lr: 1e-5\nwarmup_lr: 1e-6\nmax_epoch: 20\nwarmup_steps: 5000\n"
                                 "iters_per_epoch: 10000\nlr_decay_rate: 0.9\n"),
                             123);
  CHECK(c.init_lr == 1e-4);
  CHECK(c.min_lr == 1e-5);
  CHECK(c.warmup_start_lr == 1e-6);
  CHECK(c.max_epoch == 20);
  CHECK(c.warmup_steps == 5000);
  CHECK(c.iters_per_epoch == 10000);  // the run key wins over the loader length
  CHECK(c.decay_rate == 0.9);
  auto d = cb::lr_schedule_config(run("init_lr: 3\nmin_lr: 0\nmax_epoch: 2\n"), 77);
  CHECK(d.init_lr == 3.0);
  CHECK(d.warmup_start_lr == -1);
  CHECK(d.warmup_steps == 0);
  CHECK(!d.decay_rate);
  CHECK(d.iters_per_epoch == 77);
  CHECK(cb::lr_schedule_config(run("init_lr: 3\nmin_lr: 0\nmax_epoch: 2\n")).iters_per_epoch == 10000);
  CHECK_THROWS_AS(cb::lr_schedule_config(run("min_lr: 0\nmax_epoch: 2\n")), cb::Error);
}

TEST_CASE("lr_schedule: step() sets every param group of the optimizer") {
  auto a = torch::zeros({2}, torch::requires_grad());
  auto b = torch::zeros({3}, torch::requires_grad());
  std::vector<torch::optim::OptimizerParamGroup> groups{torch::optim::OptimizerParamGroup({a}),
                                                        torch::optim::OptimizerParamGroup({b})};
  torch::optim::AdamW opt(groups, torch::optim::AdamWOptions(1.0));
  LrScheduleConfig c{.init_lr = 1e-4,
                     .min_lr = 1e-5,
                     .warmup_start_lr = 1e-6,
                     .warmup_steps = 10,
                     .max_epoch = 1,
                     .iters_per_epoch = 100,
                     .decay_rate = std::nullopt};
  cb::LinearWarmupCosineLr s(c);
  const double lr = s.step(opt, 0, 3);
  CHECK(lr == s.lr_at(0, 3));
  for (auto& g : opt.param_groups()) CHECK(g.options().get_lr() == lr);
}
