// chatbridge-train: train.py of the original.
//   chatbridge-train --cfg-path train_configs/chatbridge_pretrain.yaml [--threads N] [--resume auto|DIR]
//                    [--dry-run] [--options k=v ...]
// --options takes the rest of the command line, as there. Exit code 143 after a SIGTERM stop, 130 after a
// Ctrl-C (SIGINT) stop (both saved; a second Ctrl-C exits at once, unsaved).
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include "datasets/valor/data_options.h"
#include "framework/app_options.h"
#include "framework/checkpoint/atomic_file.h"
#include "framework/cli_checks.h"
#include "framework/config.h"
#include "framework/config_schema.h"
#include "framework/device.h"
#include "framework/distributed/process_group.h"
#include "framework/error.h"
#include "framework/registry.h"
#include "framework/text/python_str.h"
#include "models/frozen_linear.h"
#include "models/model_factory.h"
#include "runners/train/memory_plan.h"
#include "runners/train/runner_base.h"
#include "runners/train/task.h"

namespace {

void print_registry() {
  for (cb::Kind kind : cb::kAllKinds) {
    auto names = cb::registry::names(kind);
    for (const auto& n : cb::registry::names_with_default_config(kind))
      if (!cb::registry::contains(kind, n)) names.push_back(n);  // a default config only
    std::cout << cb::kind_name(kind) << "s:" << (names.empty() ? " (none)" : "") << "\n";
    for (const auto& n : names) {
      auto types = cb::registry::default_config_types(kind, n);
      std::cout << "  " << n;
      if (!cb::registry::contains(kind, n)) std::cout << " (not registered)";
      if (!types.empty()) std::cout << fmt::format(" (default configs: {})", fmt::join(types, ", "));
      std::cout << "\n";
    }
  }
}

void write_resolved_config(const cb::Config& cfg) {
  std::filesystem::path dir = cfg.get<std::string>("run.output_dir");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) cb::fail("run.output_dir '{}': cannot create the directory: {}", dir.string(), ec.message());
  cb::atomic_write_file(dir / "config.yaml", cfg.to_yaml());
  spdlog::info("resolved config written to {}", (dir / "config.yaml").string());
}

// The resolved config, then the declared defaults of the keys it leaves absent, as YAML comments: the
// output stays the resolved config while showing every value the run will use.
void print_with_defaults(const cb::Config& cfg) {
  std::cout << cfg.to_yaml() << "# Defaults of the keys not set above (docs/config-keys.md):\n";
  for (const auto& line : cb::pystr::split(cb::to_yaml(cb::absent_defaults(cfg)), "\n"))
    if (!line.empty()) std::cout << "# " << line << "\n";
}

std::string human(int64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.1f}B", n / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.1f}M", n / 1e6);
  if (n >= 1'000) return fmt::format("{:.1f}K", n / 1e3);
  return std::to_string(n);
}

// The memory plan of one rank (runners/train/memory_plan.h) for the configured batch: for the valor
// tasks the data options' loader groups (per-rank batch, frames per sample), the largest group decides;
// lm_pretrain: run.batch_size_train texts of max_txt_len tokens.
void print_memory_plan(const cb::Config& cfg, const torch::nn::Module& model, std::optional<double> budget_gib) {
  const auto device = cfg.get<std::string>("run.device");
  const bool cuda = device.rfind("cuda", 0) == 0;
  const int world = std::max(1, cb::rank_from_env().world_size);
  cb::MemoryPlanOptions o;
  o.text_len = cfg.get<int64_t>("model.max_txt_len");
  o.world_size = world;
  o.compute_bytes = cuda && cfg.get<bool>("run.amp") ? 2 : 4;
  // On the CPU the process's own libraries count (measured now, before any weight exists); a CUDA
  // context takes about this much device memory before the first tensor.
  o.baseline_bytes = cuda ? int64_t(512) << 20 : cb::current_rss_bytes();
  std::vector<cb::MemoryPlanOptions> shapes;
  if (cfg.has("run.valor_data_opts_path")) {
    const auto path = cfg.get<std::string>("run.valor_data_opts_path");
    if (std::filesystem::exists(path)) {
      for (const auto& g : cb::DataOptions::load(path).train) {
        auto s = o;
        s.batch_size = std::max<int64_t>(1, g.batch_size / world);
        s.images_per_sample = g.task.find('v') != std::string::npos ? g.video_sample_num : 1;
        shapes.push_back(s);
      }
    } else {
      spdlog::warn("--dry-run: {} does not exist; the activation estimate assumes a batch of 1", path);
    }
  } else if (cfg.has("run.batch_size_train")) {
    o.batch_size = cfg.get<int64_t>("run.batch_size_train");
  }
  if (shapes.empty()) shapes.push_back(o);
  std::optional<cb::MemoryPlan> worst;
  for (const auto& s : shapes) {
    auto plan = cb::plan_memory(model, s);
    if (!worst || plan.total_bytes() > worst->total_bytes()) worst = std::move(plan);
  }
  std::optional<int64_t> budget;
  if (budget_gib) budget = static_cast<int64_t>(*budget_gib * double(1LL << 30));
  else if (!cuda && cb::total_memory_bytes() > 0) budget = cb::total_memory_bytes() / world;  // ranks share the host
  std::cout << fmt::format("device: {}{}\n", device, budget ? "" : " (no budget: give --memory-budget GIB)");
  std::cout << worst->describe(budget);
  if (const auto format = cb::quantized_format(model))
    std::cout << fmt::format("training: not possible: {}\n", cb::quantized_training_refusal(*format));
}

// The module tree and parameter counts of the configured model, from the model registry's skeleton of
// it: the real module tree with no storage, so the full-size model costs neither memory nor weights.
// Then its memory plan.
void print_dry_run(const cb::Config& cfg, std::optional<double> budget_gib) {
  const auto arch = cfg.get<std::string>("model.arch");
  const auto& skeleton = cb::registry::get<cb::Kind::model>(arch).skeleton;
  if (!skeleton) cb::fail("--dry-run: model.arch '{}' cannot be described without building it (no skeleton)", arch);
  const auto model = skeleton(cfg.sub("model"));
  struct Group {
    std::string name;
    std::set<std::string> indices;  // repeated blocks (blocks.0, blocks.1, ...)
    int64_t numel = 0;
    bool trainable = false;
  };
  std::vector<Group> groups;
  std::map<std::string, size_t> index;
  std::vector<std::string> parts;
  std::map<std::string, std::pair<int64_t, int64_t>> per_part;  // total, trainable
  int64_t total = 0, trainable = 0;
  const auto counts = cb::parameter_counts(*model);
  for (const auto& p : model->named_parameters()) {
    const auto c = cb::pystr::split(p.key(), ".");
    const int64_t numel = counts.at(p.key());
    size_t k = 1;
    while (k < c.size() && !std::all_of(c[k].begin(), c[k].end(), ::isdigit)) ++k;
    std::string g = c[0];
    for (size_t j = 1; j < std::min(k, c.size() - 1); ++j) g += "." + c[j];
    if (!index.count(g)) index[g] = groups.size(), groups.emplace_back().name = g;
    auto& grp = groups[index[g]];
    if (k < c.size()) grp.indices.insert(c[k]);
    grp.numel += numel;
    grp.trainable |= p.value().requires_grad();
    if (!per_part.count(c[0])) parts.push_back(c[0]);
    per_part[c[0]].first += numel;
    if (p.value().requires_grad()) per_part[c[0]].second += numel, trainable += numel;
    total += numel;
  }
  std::cout << "module tree (parameters):\n";
  for (const auto& g : groups)
    std::cout << fmt::format("  {}{}  {}{}\n", g.name, g.indices.empty() ? "" : fmt::format(" x{}", g.indices.size()),
                             human(g.numel), g.trainable ? "  (trainable)" : "");
  const std::map<std::string, std::string> labels{
      {"visual_encoder", "EVA-ViT-G"}, {"audio_encoder", "BEATs"}, {"Qformer", "Q-Former"}, {"llama_model", "LLaMA"}};
  std::cout << "parameters per part:\n";
  for (const auto& p : parts) {
    auto l = labels.count(p) ? fmt::format(" ({})", labels.at(p)) : "";
    std::cout << fmt::format("  {}{}: {} total, {} trainable\n", p, l, human(per_part[p].first),
                             human(per_part[p].second));
  }
  std::cout << fmt::format("total: {} ({}), trainable: {} ({})\n", human(total), total, human(trainable), trainable);
  print_memory_plan(cfg, *model, budget_gib);
}

int run(int argc, char** argv) {
  int cli_argc = argc;
  const std::vector<std::string> options = cb::take_options_remainder(argc, argv, cli_argc);

  CLI::App app{"ChatBridge training (stage 1 pre-training / stage 2 instruction tuning)"};
  std::string cfg_path;
  bool list = false, print_config = false, dry_run = false;
  bool config_reference = false;
  std::string resume;
  cb::AppOptions opts;
  app.add_option("--cfg-path", cfg_path, "experiment yaml (train_configs/..., instructiontuning_configs/...)");
  app.add_flag("--list", list,
               "print every registered model, dataset builder, processor, task, runner and lr scheduler");
  app.add_flag("--print-config", print_config,
               "print the resolved config as YAML, then the defaults of the keys it leaves absent, and exit");
  app.add_flag("--config-reference", config_reference, "print every config key (type, default, doc) as Markdown");
  app.add_flag("--dry-run", dry_run,
               "print the module tree, parameter counts and memory plan without building the model");
  std::optional<double> budget_gib;
  app.add_option("--memory-budget", budget_gib,
                 "--dry-run: memory per rank in GiB to check the plan against (default on the CPU: the machine's "
                 "memory / ranks)")
      ->check(cb::cli::positive);
  app.add_option("--resume", resume, "'auto' (latest complete checkpoint in run.output_dir) or a checkpoint directory");
  if (const auto exit_code = cb::parse_config_app(app, opts, cli_argc, argv)) return *exit_code;

  if (list) {
    print_registry();
    return 0;
  }
  if (config_reference) {
    std::cout << cb::config_reference_markdown();  // docs/config-keys.md
    return 0;
  }
  if (cfg_path.empty()) cb::fail("--cfg-path is required (see --help)");
  if (print_config) {
    print_with_defaults(cb::resolve_config(cfg_path, options));
    return 0;
  }

  cb::apply_app_options(opts);
  cb::Config cfg = cb::resolve_config(cfg_path, options);
  if (dry_run) {
    print_dry_run(cfg, budget_gib);
    return 0;
  }
  spdlog::info("config:\n{}", cfg.to_yaml());
  auto env = cb::dist::dist_env_from_environment();
  // Before rank 0 writes anything into run.output_dir, so every rank sees the same files.
  auto resume_from = cb::resolve_resume(cfg, resume, env.restart_count);
  if (cb::rank_from_env().rank == 0) write_resolved_config(cfg);

  cb::dist::DistOptions dist;
  dist.timeout = std::chrono::milliseconds(static_cast<int64_t>(cfg.get<double>("run.dist_timeout") * 1000));
  // NCCL for a job on GPUs (each rank on cuda:<LOCAL_RANK>), Gloo on CPUs.
  dist.device = cb::run_device(cfg.get<std::string>("run.device"), env.local_rank);
  auto pg = cb::dist::ProcessGroup::init(env, dist);
  std::shared_ptr<const cb::Task> task = cb::make_task(cfg);
  torch::manual_seed(cfg.get<int64_t>("run.seed"));  // same on every rank: randomly initialised parts agree
  auto model = task->build_model(cfg);
  if (const auto format = cb::quantized_format(*model))  // before the data loads, not at the first step
    cb::fail("{}", cb::quantized_training_refusal(*format));
  cb::RunnerInputs in{cfg,
                      task,
                      std::move(model),
                      task->build_train_source(cfg, pg->rank(), pg->world_size()),
                      pg,
                      std::move(resume_from)};
  auto result = cb::make_runner(std::move(in))->train();
  if (!result.losses.empty())
    spdlog::info("done: {} steps, first loss {:.4f}, last loss {:.4f}", result.global_step, result.losses.front(),
                 result.losses.back());
  return result.stop_signal != 0 ? 128 + result.stop_signal : 0;
}

}  // namespace

int main(int argc, char** argv) { return cb::run_main("chatbridge-train", run, argc, argv); }
