// chatbridge-train: train.py of the original.
//   chatbridge-train --cfg-path train_configs/chatbridge_pretrain.yaml [--threads N] [--options k=v ...]
// --options takes the rest of the command line, as there.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <spdlog/spdlog.h>

#include "framework/app_options.h"
#include "framework/checkpoint/atomic_file.h"
#include "framework/config.h"
#include "framework/error.h"
#include "framework/registry.h"

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

int run(int argc, char** argv) {
  // Everything after --options belongs to it (argparse REMAINDER), values starting with '-' included.
  std::vector<std::string> options;
  int cli_argc = argc;
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]) == "--options") {
      options.assign(argv + i + 1, argv + argc);
      cli_argc = i;
      break;
    }

  CLI::App app{"ChatBridge training (stage 1 pre-training / stage 2 instruction tuning)"};
  std::string cfg_path;
  bool list = false, print_config = false;
  cb::AppOptions opts;
  app.add_option("--cfg-path", cfg_path, "experiment yaml (train_configs/..., instructiontuning_configs/...)");
  app.add_flag("--list", list, "print every registered model, dataset builder, processor, task, runner and lr scheduler");
  app.add_flag("--print-config", print_config, "print the resolved config as YAML and exit");
  app.footer("--options KEY=VALUE ... | KEY VALUE ...   override config keys (the rest of the command line)");
  cb::add_app_options(app, opts);
  try {
    app.parse(cli_argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (list) {
    print_registry();
    return 0;
  }
  if (cfg_path.empty()) cb::fail("--cfg-path is required (see --help)");
  if (print_config) {
    std::cout << cb::resolve_config(cfg_path, options).to_yaml();
    return 0;
  }

  cb::apply_app_options(opts);
  cb::Config cfg = cb::resolve_config(cfg_path, options);
  spdlog::info("config:\n{}", cfg.to_yaml());
  if (cb::rank_from_env().rank == 0) write_resolved_config(cfg);

  auto task = cfg.get<std::string>("run.task");
  cb::registry::find_any(cb::Kind::task, task);
  cb::fail("run.task '{}': the training loop is not part of this build", task);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "chatbridge-train: error: " << e.what() << "\n";
    return 1;
  }
}
