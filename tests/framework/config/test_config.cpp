// resolve_config: the original's merge order, --options in both syntaxes, typed access and its errors,
// unknown keys with "did you mean", and the three shipped experiment yamls.
#include <catch2/catch.hpp>
#include <fstream>

#include "framework/config.h"
#include "framework/error.h"
#include "tests/support/scratch_dir.h"

namespace fs = std::filesystem;
using Catch::Contains;

namespace {

const fs::path kSource = CHATBRIDGE_SOURCE_DIR;

fs::path write_yaml(const std::string& name, const std::string& text) {
  static const auto dir = cb::test::fresh_dir("config");
  std::ofstream(dir / name) << text;
  return dir / name;
}

const std::string kMinimal =
    "model:\n  arch: chatbridge\n  model_type: pretrain_vicuna\n  freeze_qformer: False\n  num_query_token: 16\n"
    "run:\n  task: tri_pretrain\n  init_lr: 1e-4\n  max_epoch: 20\n  output_dir: out\n";

}  // namespace

TEST_CASE("merge order: base model yaml < experiment yaml < --options") {
  auto path = write_yaml("minimal.yaml", kMinimal);
  auto cfg = cb::resolve_config(path, {"model.freeze_vit=False", "run.max_epoch=3"});
  CHECK(cfg.get<int64_t>("model.image_size") == 224);      // base only
  CHECK(cfg.get<int64_t>("model.num_query_token") == 16);  // experiment over base (32)
  CHECK(cfg.get<bool>("model.freeze_qformer") == false);   // experiment over base (True)
  CHECK(cfg.get<bool>("model.freeze_vit") == false);       // --options over base (True)
  CHECK(cfg.get<int64_t>("run.max_epoch") == 3);           // --options over experiment
  CHECK(cfg.get<std::string>("preprocess.vis_processor.train.name") == "blip2_image_train");  // base top level
  CHECK(cfg.keys() == std::vector<std::string>{"run", "model", "preprocess"});
}

TEST_CASE("options: a.b=v tokens and alternating key value pairs typed like YAML") {
  auto path = write_yaml("minimal.yaml", kMinimal);
  auto eq = cb::resolve_config(path, {"run.init_lr=3e-5", "run.amp=True", "run.train_splits=[train,val]",
                                      "run.resume_ckpt_path=null", "run.output_dir='123'", "run.seed=7"});
  auto pairs = cb::resolve_config(path, {"run.init_lr", "3e-5", "run.amp", "True", "run.train_splits", "[train,val]",
                                         "run.resume_ckpt_path", "null", "run.output_dir", "'123'", "run.seed", "7"});
  for (const auto& cfg : {eq, pairs}) {
    CHECK(cfg.get<double>("run.init_lr") == 3e-5);
    CHECK(cfg.get<bool>("run.amp") == true);
    CHECK(cfg.get<std::vector<std::string>>("run.train_splits") == std::vector<std::string>{"train", "val"});
    CHECK_FALSE(cfg.has("run.resume_ckpt_path"));
    CHECK(cfg.get<std::string>("run.output_dir") == "123");
    CHECK(cfg.get<int64_t>("run.seed") == 7);
  }
  CHECK(cb::options_to_node({"run.seed=1", "run.stage"}).find("run")->find("stage")->is_null());  // OmegaConf: None
  CHECK_THROWS_WITH(cb::options_to_node({"run.seed", "1", "run.amp"}), Contains("'run.amp': key without a value"));
  CHECK_THROWS_WITH(cb::options_to_node({"run=1", "run.seed=2"}), Contains("not a mapping"));
  CHECK_THROWS_WITH(cb::options_to_node({"run..seed=2"}), Contains("empty key component"));
}

TEST_CASE("options: model.model_type picks the base yaml") {
  auto path = write_yaml("minimal.yaml", kMinimal);
  CHECK_THROWS_WITH(
      cb::resolve_config(path, {"model.model_type=pretrain_vicunaa"}),
      Contains("model.model_type in --options: model 'chatbridge' has no config type 'pretrain_vicunaa'") &&
          Contains("did you mean 'pretrain_vicuna'") && Contains("known types: pretrain_vicuna"));
}

TEST_CASE("typed access: defaults, optionals, sub-trees, lists") {
  auto cfg = cb::resolve_config(write_yaml("minimal.yaml", kMinimal), {});
  auto run = cfg.sub("run");
  CHECK(run.path() == "run");
  CHECK(run.get<double>("init_lr") == 1e-4);
  CHECK(run.get<double>("max_epoch") == 20.0);  // an integer is a number
  CHECK(run.get<int64_t>("accum_grad_iters", 1) == 1);
  CHECK(run.get<std::string>("runner", "runner_base") == "runner_base");
  CHECK_FALSE(run.get_optional<double>("lr_decay_rate"));
  CHECK(cfg.get<int>("model.image_size") == 224);
  CHECK_THROWS_WITH(run.get<std::string>("lr_sched"),
                    Contains("run.lr_sched: required key is missing in ") && Contains("minimal.yaml"));
  CHECK_THROWS_WITH(run.get<int64_t>("init_lr"), Contains("run.init_lr in ") && Contains("minimal.yaml (line 8)") &&
                                                     Contains("expected an integer, got 0.0001"));
  CHECK_THROWS_WITH(cfg.sub("run.task"), Contains("run.task in") && Contains("expected a mapping, got 'tri_pretrain'"));
  CHECK_THROWS_WITH(cfg.get<std::vector<int64_t>>("model.llama_model"), Contains("expected a list"));
}

TEST_CASE("type errors name the file (or --options), the key path and the expected type") {
  auto bad = write_yaml("bad_lr.yaml", kMinimal + "  min_lr: abc\n");
  CHECK_THROWS_WITH(cb::resolve_config(bad, {}),
                    Contains("run.min_lr in ") && Contains("bad_lr.yaml (line 11): expected a number, got 'abc'"));
  auto good = write_yaml("minimal.yaml", kMinimal);
  CHECK_THROWS_WITH(cb::resolve_config(good, {"run.init_lr=abc"}),
                    Contains("run.init_lr in --options: expected a number, got 'abc'"));
  CHECK_THROWS_WITH(cb::resolve_config(good, {"model.freeze_vit=1"}),
                    Contains("model.freeze_vit in --options: expected a boolean, got 1"));
  CHECK_THROWS_WITH(cb::resolve_config(good, {"run.train_splits=train"}),
                    Contains("run.train_splits in --options: expected a list, got 'train'"));
  CHECK_THROWS_WITH(cb::resolve_config(good, {"run=3"}), Contains("run in --options: expected a mapping, got 3"));
}

TEST_CASE("unknown keys fail with a did-you-mean") {
  auto good = write_yaml("minimal.yaml", kMinimal);
  CHECK_THROWS_WITH(cb::resolve_config(good, {"run.init_lrr=1e-4"}),
                    Contains("run.init_lrr in --options: unknown key (did you mean 'run.init_lr'?)"));
  CHECK_THROWS_WITH(cb::resolve_config(write_yaml("typo.yaml", kMinimal + "  wamup_steps: 5\n"), {}),
                    Contains("run.wamup_steps in ") &&
                        Contains("typo.yaml (line 11): unknown key (did you mean 'run.warmup_steps'?)"));
  CHECK_THROWS_WITH(cb::resolve_config(write_yaml("section.yaml", kMinimal + "rum: {}\n"), {}),
                    Contains("rum in ") && Contains("(did you mean 'run'?)"));
  CHECK_THROWS_WITH(cb::resolve_config(good, {"model.totally_new_thing=1"}),
                    Contains("model.totally_new_thing in --options: unknown key") && !Contains("did you mean"));
}

TEST_CASE(
    "OmegaConf interpolation: ${key} takes the value, text around it makes a string, oc.env reads the environment") {
  ::setenv("CB_TEST_DATA_ROOT", "data", 1);
  ::unsetenv("CB_TEST_UNSET_VAR");
  const auto path = write_yaml(
      "interp.yaml", kMinimal +
                         "  min_lr: ${run.init_lr}\n"
                         "  valid_task: '${run.output_dir}/${model.num_query_token}/${oc.env:CB_TEST_DATA_ROOT}'\n"
                         "  prompt: '\\${literal} ${oc.env:CB_TEST_UNSET_VAR, fallback}'\n");
  auto cfg = cb::resolve_config(path, {"run.init_lr=3e-5"});
  CHECK(cfg.get<double>("run.min_lr") == 3e-5);  // typed, and after --options, as OmegaConf resolves on access
  CHECK(cfg.get<std::string>("run.valid_task") == "out/16/data");
  CHECK(cfg.get<std::string>("run.prompt") == "${literal} fallback");
  CHECK_THROWS_WITH(cb::resolve_config(path, {"run.min_lr=${run.nope}"}),
                    Contains("--options: interpolation '${run.nope}': no key run.nope in the config"));
  CHECK_THROWS_WITH(cb::resolve_config(path, {"run.min_lr=${run.warmup_lr}", "run.warmup_lr=${run.min_lr}"}),
                    Contains("refers back to itself"));
  CHECK_THROWS_WITH(cb::resolve_config(path, {"run.valid_task=${oc.decode:1}"}),
                    Contains("resolver 'oc.decode' in '${oc.decode:1}' is not supported"));
  CHECK_THROWS_WITH(cb::resolve_config(path, {"run.valid_task=x${run.output_dir"}), Contains("'${' without its '}'"));
}

TEST_CASE("model.arch, model.model_type and datasets.*.type interpolate over the experiment yaml and --options") {
  ::setenv("CB_TEST_MODEL_TYPE", "pretrain_vicuna", 1);
  ::unsetenv("CB_TEST_UNSET_VAR");
  const auto path =  // run.output_dir holds the arch name only to have a key of the same yaml to refer to
      write_yaml("interp_select.yaml",
                 "model:\n  arch: ${run.output_dir}\n  model_type: ${oc.env:CB_TEST_MODEL_TYPE}\n"
                 "run:\n  task: tri_pretrain\n  output_dir: chatbridge\n");
  auto cfg = cb::resolve_config(path, {});
  CHECK(cfg.get<std::string>("model.arch") == "chatbridge");
  CHECK(cfg.get<std::string>("model.model_type") == "pretrain_vicuna");
  CHECK(cfg.get<int64_t>("model.image_size") == 224);  // the base yaml they select
  CHECK_THROWS_WITH(cb::resolve_config(path, {"run.output_dir=nope"}),
                    Contains("model.arch in") && Contains("interp_select.yaml (line 2)") && Contains("model 'nope'"));
  CHECK_THROWS_WITH(cb::resolve_config(path, {"model.arch=${model.image_size}"}),
                    Contains("no key model.image_size"));  // the base yamls are not read yet
  const auto ds = write_yaml("interp_ds.yaml", kMinimal + "datasets:\n  x:\n    type: ${oc.env:CB_TEST_UNSET_VAR}\n");
  CHECK_THROWS_WITH(cb::resolve_config(ds, {}), Contains("environment variable 'CB_TEST_UNSET_VAR' is not set"));
}

TEST_CASE("a model section taken from another yaml (eval --model-cfg) keeps its file and lines, under --options") {
  const auto train = write_yaml("train_for_eval.yaml", kMinimal + "  seed: 1\n");  // num_query_token 16 on line 5
  const auto eval = write_yaml("eval_with_model.yaml",
                               "model:\n  arch: chatbridge\n  model_type: pretrain_vicuna\n  stage: 2\n"
                               "run:\n  task: caption_eval\n");
  auto cfg = cb::resolve_config(eval, {"model.max_txt_len", "64"}, train);
  CHECK(cfg.get<int64_t>("model.num_query_token") == 16);  // the training yaml's
  CHECK(cfg.get<int64_t>("model.stage") == 2);             // the eval yaml's, the training yaml leaves it
  CHECK(cfg.get<int64_t>("model.max_txt_len") == 64);      // --options last
  CHECK_FALSE(cfg.has("run.seed"));                        // only the model section is taken
  CHECK(cfg.node().find("model")->find("num_query_token")->where() == train.string() + " (line 5)");  // was "--options"
  CHECK_THROWS_WITH(cb::resolve_config(eval, {}, write_yaml("bad_model.yaml", kMinimal + "  init_lr: x\n")),
                    Contains("bad_model.yaml"));
}

TEST_CASE("model and datasets sections are resolved through the registry") {
  auto arch =
      write_yaml("arch.yaml", "model:\n  arch: mini_gpt4_tri\n  model_type: pretrain_vicuna\nrun:\n  task: x\n");
  CHECK_THROWS_WITH(
      cb::resolve_config(arch, {}),
      Contains("model.arch in ") && Contains("arch.yaml (line 2): model 'mini_gpt4_tri' has no registered "
                                             "default config (known models: chatbridge, llama_causal_lm)"));
  CHECK(cb::resolve_config(arch, {"model.arch=chatbridge"}).get<std::string>("model.arch") == "chatbridge");
  auto no_type = write_yaml("no_type.yaml", "model:\n  arch: chatbridge\nrun:\n  task: x\n");
  CHECK_THROWS_WITH(cb::resolve_config(no_type, {}), Contains("model.model_type: required key is missing"));
  auto no_run = write_yaml("no_run.yaml", "model:\n  arch: chatbridge\n  model_type: pretrain_vicuna\n");
  CHECK_THROWS_WITH(cb::resolve_config(no_run, {}), Contains("run: missing section"));
  auto ds = write_yaml("ds.yaml", kMinimal + "datasets:\n  not_a_builder:\n    type: default\n");
  CHECK_THROWS_WITH(cb::resolve_config(ds, {}),
                    Contains("datasets.not_a_builder in") &&
                        Contains("dataset builder 'not_a_builder' has no registered default config"));
}

TEST_CASE("the shipped experiment yamls load and resolve") {
  auto pre = cb::resolve_config(kSource / "train_configs/chatbridge_pretrain.yaml", {});
  CHECK(pre.get<std::string>("run.task") == "tri_pretrain");
  CHECK(pre.get<std::string>("run.lr_sched") == "linear_warmup_cosine_lr");
  CHECK(pre.get<double>("run.init_lr") == 1e-4);
  CHECK(pre.get<double>("run.min_lr") == 1e-5);
  CHECK(pre.get<double>("run.warmup_lr") == 1e-6);
  CHECK(pre.get<int64_t>("run.warmup_steps") == 5000);
  CHECK(pre.get<int64_t>("run.max_epoch") * pre.get<int64_t>("run.iters_per_epoch") == 200000);
  CHECK(pre.get<bool>("run.amp"));
  CHECK_FALSE(pre.has("run.resume_ckpt_path"));
  CHECK(pre.get<bool>("model.freeze_vit"));
  CHECK_FALSE(pre.get<bool>("model.freeze_qformer"));
  CHECK(pre.get<int64_t>("model.num_query_token") == 32);
  CHECK(pre.get<std::string>("model.vit_precision") == "fp16");

  auto inst = cb::resolve_config(kSource / "instructiontuning_configs/chatbridge_instructtuning.yaml", {});
  CHECK(inst.get<std::string>("model.arch") == "chatbridge");
  CHECK(inst.get<std::string>("run.task") == "tri_instruct");
  CHECK(inst.get<int64_t>("model.stage") == 2);
  CHECK(inst.get<int64_t>("model.max_txt_len") == 220);
  CHECK(inst.get<std::string>("model.end_sym") == "###");
  CHECK(inst.get<bool>("model.drop"));
  CHECK(inst.get<double>("run.min_lr") == 8e-7);
  CHECK(inst.get<int64_t>("run.max_epoch") * inst.get<int64_t>("run.iters_per_epoch") == 10000);

  auto eval = cb::resolve_config(kSource / "eval_configs/chatbridge_eval.yaml", {});
  CHECK(eval.get<std::string>("model.prompt_template") == "###Human: {} ###Assistant: ");
  CHECK(eval.get<int64_t>("model.max_txt_len") == 300);
  CHECK(eval.get<bool>("model.freeze_beat", true));
  CHECK(eval.get<std::string>("run.task") == "tri_pretrain");
}

TEST_CASE("a resolved config dumps to YAML that resolves to the same config") {
  auto cfg = cb::resolve_config(kSource / "instructiontuning_configs/chatbridge_instructtuning.yaml",
                                {"run.output_dir='True'", "run.wandb_key=''"});
  auto again = cb::Config(cb::parse_yaml(cfg.to_yaml(), "dump.yaml"), "dump.yaml");
  CHECK(again.to_json() == cfg.to_json());
  CHECK(again.get<std::string>("run.output_dir") == "True");
  CHECK(cfg.to_json()["run"]["init_lr"].get<double>() == 1e-5);
}
