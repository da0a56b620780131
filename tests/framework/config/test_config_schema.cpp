// The one declaration per config key (framework/config_schema.cpp): defaults for absent keys, the
// YAML winning over them, unknown keys still refused, the defaults --print-config lists.
#include <catch2/catch.hpp>
#include <fstream>

#include "framework/config.h"
#include "framework/config_schema.h"
#include "framework/error.h"
#include "tests/support/scratch_dir.h"

namespace fs = std::filesystem;
using Catch::Contains;

namespace {

const std::string kMinimal =
    "model:\n  arch: chatbridge\n  model_type: pretrain_vicuna\n  freeze_qformer: False\n  num_query_token: 16\n"
    "run:\n  task: tri_pretrain\n  init_lr: 1e-4\n  max_epoch: 20\n  output_dir: out\n";

cb::Config resolve(const std::vector<std::string>& options = {}) {
  static const auto path = cb::test::fresh_dir("config_schema") / "minimal.yaml";
  std::ofstream(path) << kMinimal;
  return cb::resolve_config(path, options);
}

}  // namespace

TEST_CASE("config schema: a declared key absent from the yaml reads as its declared default") {
  auto cfg = resolve();
  auto run = cfg.sub("run");
  CHECK(run.get<int64_t>("log_freq") == 50);
  CHECK(cfg.get<int64_t>("run.log_freq") == 50);  // the same key read from the root
  CHECK(run.get<double>("warmup_lr") == -1.0);
  CHECK(run.get<bool>("pin_memory"));
  CHECK(run.get<std::string>("runner") == "runner_base");
  CHECK(cfg.get<std::string>("model.end_sym") == "\n");
  CHECK(cfg.get<bool>("model.freeze_beat"));
  CHECK(cfg.get<std::string>("model.vit_ckpt").empty());
  CHECK_FALSE(run.has("log_freq"));  // has() and get_optional() still say what the yaml holds
  CHECK_FALSE(run.get_optional<int64_t>("log_freq"));
  CHECK(resolve({"run.log_freq=null"}).get<int64_t>("run.log_freq") == 50);  // null means absent
}

TEST_CASE("config schema: the yaml's value wins over the declared default") {
  auto cfg = resolve({"run.log_freq=7", "model.end_sym=END"});
  CHECK(cfg.get<int64_t>("run.log_freq") == 7);
  CHECK(cfg.get<std::string>("model.end_sym") == "END");
  CHECK_FALSE(resolve().get<bool>("model.freeze_qformer"));  // set to False in the yaml, declared true
}

TEST_CASE("config schema: keys without a declared default stay required, undeclared keys are refused") {
  auto cfg = resolve();
  CHECK_THROWS_WITH(cfg.get<std::string>("run.lr_sched"), Contains("run.lr_sched: required key is missing in "));
  CHECK_THROWS_WITH(cfg.get<int64_t>("run.num_beams"), Contains("run.num_beams: required key is missing"));
  CHECK(cfg.get<int64_t>("run.num_beams", 5) == 5);  // a contextual default, given at the use site
  // Defaults are keyed by the full path: a section parsed on its own (path "") has none.
  CHECK_THROWS_WITH(cb::Config(cb::parse_yaml("{}", "run.yaml"), "run.yaml").get<int64_t>("log_freq"),
                    Contains("log_freq: required key is missing in run.yaml"));
  CHECK_THROWS_WITH(resolve({"run.log_frq=1"}),
                    Contains("run.log_frq in --options: unknown key (did you mean 'run.log_freq'?)"));
  CHECK_THROWS_WITH(resolve({"run.log_freq=often"}),
                    Contains("run.log_freq in --options: expected an integer, got 'often'"));
  CHECK(cb::declared_default("run.init_lr") == nullptr);           // required
  CHECK(cb::declared_default("run.resume_ckpt_path") == nullptr);  // optional, no default
  CHECK(cb::declared_default("datasets.x.type") == nullptr);       // owned by its builder
}

TEST_CASE("config schema: --print-config's defaults are those of the keys the config leaves absent") {
  auto d = cb::absent_defaults(resolve({"run.log_freq=7"}));
  const auto* run = d.find("run");
  REQUIRE(run);
  CHECK_FALSE(run->find("log_freq"));  // set
  CHECK_FALSE(run->find("init_lr"));   // set, and required anyway
  REQUIRE(run->find("accum_grad_iters"));
  CHECK(run->find("accum_grad_iters")->integer == 1);
  const auto* model = d.find("model");
  REQUIRE(model);
  CHECK_FALSE(model->find("freeze_qformer"));  // set by the yaml
  CHECK_FALSE(model->find("freeze_vit"));      // set by the base model yaml
  REQUIRE(model->find("freeze_beat"));
  CHECK(model->find("freeze_beat")->boolean);
}

TEST_CASE("config schema: --print-config's defaults leave out the keys this model and task do not read") {
  const auto path = cb::test::fresh_dir("config_schema_scope") / "lm.yaml";
  std::ofstream(path) << "model:\n  arch: llama_causal_lm\n  model_type: fresh\nrun:\n  task: lm_pretrain\n";
  auto d = cb::absent_defaults(cb::resolve_config(path, {}));
  REQUIRE(d.find("run"));
  CHECK(d.find("run")->find("caption_end_sym"));  // lm_pretrain reads it
  CHECK_FALSE(d.find("run")->find("stage"));      // tri_pretrain's
  REQUIRE(d.find("model"));
  CHECK(d.find("model")->find("llama_model"));       // both models read it
  CHECK_FALSE(d.find("model")->find("freeze_vit"));  // ChatBridge's
  auto tri = cb::absent_defaults(resolve());
  CHECK(tri.find("run")->find("stage"));
  CHECK_FALSE(tri.find("run")->find("caption_end_sym"));
}

TEST_CASE("config schema: a LAVIS eval yaml's run keys load, with a warning, inference_method only as generate") {
  // A LAVIS eval yaml sets these; they were refused as unknown keys.
  auto cfg = resolve({"run.inference_method=generate", "run.num_ans_candidates=128", "run.report_metric=True"});
  CHECK(cfg.get<std::string>("run.inference_method") == "generate");
  CHECK(cfg.get<int64_t>("run.num_ans_candidates") == 128);
  CHECK(cfg.get<bool>("run.report_metric"));
  CHECK_THROWS_WITH(resolve({"run.inference_method=rank"}),
                    Contains("run.inference_method in --options: 'rank' is not supported (accepted: generate)") &&
                        Contains("not implemented"));
  CHECK_THROWS_WITH(resolve({"run.num_ans_candidates=many"}),
                    Contains("run.num_ans_candidates in --options: expected an integer"));
}
