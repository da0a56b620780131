// chatbridge-eval: the evaluation run of the LAVIS-style harness (LAVIS's evaluate.py; the original's
// evaluate.py did not ship).
//   chatbridge-eval --cfg-path eval_configs/tiny_caption_eval.yaml [--model-cfg TRAIN_YAML]
//                   [--threads N] [--options k=v ...]
// The yaml's run.task names an evaluation task (caption_eval, vqa_eval); every dataset of its
// `datasets:` section is evaluated on each split of run.test_splits. --model-cfg takes the model
// section from another experiment yaml (typically the training yaml of the checkpoint: the same
// architecture), before --options (e.g. model.ckpt=CHECKPOINT_DIR). Launch with chatbridge-launch for
// several ranks; rank 0 writes the results and metrics (runners/eval/evaluate.h).
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <iostream>

#include "datasets/builders/dataset.h"
#include "framework/app_options.h"
#include "framework/config.h"
#include "framework/device.h"
#include "framework/distributed/process_group.h"
#include "framework/error.h"
#include "runners/eval/evaluate.h"

namespace {

int run(int argc, char** argv) {
  int cli_argc = argc;
  const std::vector<std::string> options = cb::take_options_remainder(argc, argv, cli_argc);

  CLI::App app{"ChatBridge evaluation (captioning / question answering metrics over dataset splits)"};
  std::string cfg_path, model_cfg;
  bool print_config = false;
  cb::AppOptions opts;
  app.add_option("--cfg-path", cfg_path, "evaluation yaml (eval_configs/...)")->required();
  app.add_option("--model-cfg", model_cfg, "take the model section from this experiment yaml (e.g. the training yaml)");
  app.add_flag("--print-config", print_config, "print the resolved config as YAML and exit");
  if (const auto exit_code = cb::parse_config_app(app, opts, cli_argc, argv)) return *exit_code;

  const cb::Config cfg = cb::resolve_config(cfg_path, options, model_cfg);
  if (print_config) {
    std::cout << cfg.to_yaml();
    return 0;
  }
  cb::apply_app_options(opts);
  if (!cfg.has("model")) cb::fail("{}: no model section (add one, or pass --model-cfg TRAIN_YAML)", cfg_path);
  spdlog::info("config:\n{}", cfg.to_yaml());

  auto pg = cb::dist::ProcessGroup::init(cb::dist::dist_env_from_environment());
  const auto task = cb::make_eval_task(cfg);
  const auto device = cb::run_device(cfg.get<std::string>("run.device"), pg->local_rank());
  torch::manual_seed(cfg.get<int64_t>("run.seed", 42));  // required only for training
  auto module = task->build_model(cfg);
  auto& model = cb::model_to_evaluate(*module, task->name());
  model.place(device);

  const auto splits = cfg.get<std::vector<std::string>>("run.test_splits");
  if (splits.empty()) cb::fail("run.test_splits is empty: nothing to evaluate");
  const auto datasets = cb::build_datasets(cfg);
  if (datasets.empty()) cb::fail("{}: no dataset under datasets:", cfg_path);
  cb::EvalSplitOptions so;
  so.batch_size = cfg.get<int64_t>("run.batch_size_eval");
  so.output_dir = cfg.get<std::string>("run.output_dir");
  so.device = device;
  for (const auto& [name, by_split] : datasets) {
    for (const auto& split : splits) {
      auto it = by_split.find(split);
      if (it == by_split.end())
        cb::fail("datasets.{}: no '{}' split (run.test_splits) in build_info.annotations", name, split);
      so.prefix = datasets.size() > 1 ? name + "_" + split : split;
      cb::evaluate_split(model, *task, *it->second, *pg, so);
    }
  }
  pg->barrier();
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cb::run_main("chatbridge-eval", run, argc, argv); }
