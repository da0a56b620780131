// Registry: duplicate and unknown names, and registrations made inside a layer library (linked
// whole-archive) being visible from an executable that never references them.
#include <catch2/catch.hpp>

#include "framework/did_you_mean.h"
#include "framework/error.h"
#include "framework/registry.h"

using Catch::Contains;
namespace registry = cb::registry;

TEST_CASE("a default config registered inside cb_models is visible from the test executable") {
  auto names = registry::names_with_default_config(cb::Kind::model);
  CHECK(std::find(names.begin(), names.end(), "chatbridge") != names.end());
  auto path = registry::default_config(cb::Kind::model, "chatbridge", "pretrain_vicuna");
  CHECK(path.is_absolute());
  CHECK(std::filesystem::exists(path));
}

TEST_CASE("registering a name twice throws") {
  registry::add_any(cb::Kind::processor, "test_only_twice", std::any(1));
  CHECK_THROWS_WITH(registry::add_any(cb::Kind::processor, "test_only_twice", std::any(2)),
                    Contains("processor 'test_only_twice' is registered twice"));
  CHECK(std::any_cast<int>(registry::find_any(cb::Kind::processor, "test_only_twice")) == 1);
  CHECK_THROWS_WITH(registry::add_default_config(cb::Kind::model, "chatbridge", "pretrain_vicuna", "x.yaml"),
                    Contains("default config for type 'pretrain_vicuna' is registered twice"));
}

TEST_CASE("an unknown name lists the registered names of its kind, with a did-you-mean") {
  registry::add_any(cb::Kind::runner, "test_only_runner_base", std::any(std::string("r")));
  CHECK(registry::contains(cb::Kind::runner, "test_only_runner_base"));
  CHECK_FALSE(registry::contains(cb::Kind::task, "test_only_runner_base"));
  CHECK_THROWS_WITH(
      registry::find_any(cb::Kind::runner, "test_only_runer_base"),
      Contains("runner 'test_only_runer_base' is not registered (did you mean 'test_only_runner_base'?)") &&
          Contains("registered runners: ") && Contains("test_only_runner_base"));
  CHECK_THROWS_WITH(registry::find_any(cb::Kind::lr_scheduler, "zzz_nothing_like_it"),
                    Contains("lr scheduler 'zzz_nothing_like_it' is not registered (registered lr schedulers:") &&
                        !Contains("did you mean"));
}

TEST_CASE("did_you_mean picks the closest name within reach") {
  CHECK(cb::edit_distance("kitten", "sitting") == 3);
  CHECK(cb::edit_distance("", "abc") == 3);
  CHECK(cb::did_you_mean("init_lrr", {"min_lr", "init_lr", "warmup_lr"}) == " (did you mean 'init_lr'?)");
  CHECK(cb::did_you_mean("completely_different", {"init_lr", "seed"}).empty());
  // Nothing within reach: the names made of the same words (at most five), qualified by the prefix.
  const std::vector<std::string> run = {"init_lr",          "min_lr",          "warmup_lr",  "warmup_steps",
                                        "batch_size_train", "batch_size_eval", "output_dir", "seed"};
  CHECK(cb::did_you_mean("lr", run, "run.") == " (did you mean 'run.init_lr', 'run.min_lr' or 'run.warmup_lr'?)");
  CHECK(cb::did_you_mean("batch_size", run) == " (did you mean 'batch_size_train' or 'batch_size_eval'?)");
  CHECK(cb::did_you_mean("output", run) == " (did you mean 'output_dir'?)");
  CHECK(cb::did_you_mean("vit_ckpt_path", {"vit_ckpt", "vit_model"}) == " (did you mean 'vit_ckpt'?)");
  CHECK(cb::did_you_mean("lr", {"init_lr", "min_lr", "warmup_lr", "lr_sched", "lr_decay_rate"}) ==
        " (did you mean 'init_lr', 'min_lr', 'warmup_lr', 'lr_sched' or 'lr_decay_rate'?)");  // the real run section
  CHECK(cb::did_you_mean("lr", {"aa_lr", "bb_lr", "cc_lr", "dd_lr", "ee_lr", "ff_lr"}).empty());  // too many to help
}
