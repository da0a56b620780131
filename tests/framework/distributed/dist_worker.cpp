// Test worker (tests only): joins the process group from the torchrun environment and runs a
// deterministic few-step SGD on a tiny two-head model with GradSync, writing per-step losses and a
// checkpoint after every step into --out. With TORCHELASTIC_RESTART_COUNT > 0 it resumes from that
// checkpoint (the launcher contract). Head "b" is only used every third step (modality routing).
#include <signal.h>
#include <torch/torch.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "framework/checkpoint/atomic_file.h"
#include "framework/checkpoint/safetensors.h"
#include "framework/distributed/grad_sync.h"
#include "framework/distributed/process_group.h"

namespace fs = std::filesystem;
using namespace cb::dist;

struct TinyImpl : torch::nn::Module {
  torch::nn::Linear body{nullptr}, head_a{nullptr}, head_b{nullptr};
  TinyImpl() {
    body = register_module("body", torch::nn::Linear(4, 8));
    head_a = register_module("head_a", torch::nn::Linear(8, 1));
    head_b = register_module("head_b", torch::nn::Linear(8, 1));
  }
  torch::Tensor forward(const torch::Tensor& x, bool use_b) {
    auto h = torch::tanh(body(x));  // [N,8]
    return (use_b ? head_b(h) : head_a(h)).squeeze(-1);
  }
};
TORCH_MODULE(Tiny);

int run(int argc, char** argv) {
  CLI::App app{"distributed test worker"};
  std::string out;
  int steps = 8, batch = 4, accum = 1, crash_step = -1, crash_rank = 1, exit_code = 0, exit_step = -1;
  bool wait_for_signal = false;
  app.add_option("--out", out)->required();
  app.add_option("--steps", steps);
  app.add_option("--batch", batch, "rows per rank and step");
  app.add_option("--accum", accum, "micro-steps per step (batch must divide)");
  app.add_option("--crash-step", crash_step, "SIGKILL itself at this step (first attempt only)");
  app.add_option("--crash-rank", crash_rank);
  app.add_option("--exit-code", exit_code, "rank 0 exits with this code at --exit-step (every attempt)");
  app.add_option("--exit-step", exit_step);
  app.add_flag("--wait-for-signal", wait_for_signal, "after joining, write pid_<rank> and sleep");
  CLI11_PARSE(app, argc, argv);

  torch::set_num_threads(1);
  auto env = dist_env_from_environment();
  auto pg = ProcessGroup::init(env);
  const int rank = pg->rank(), world = pg->world_size();
  fs::create_directories(out);
  cb::atomic_write_file(fs::path(out) / fmt::format("attempt_{}_rank{}", env.restart_count, rank), "");
  if (wait_for_signal) {
    cb::atomic_write_file(fs::path(out) / fmt::format("pid_{}", rank), std::to_string(::getpid()));
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }

  torch::manual_seed(1000 + rank);  // differs per rank: the broadcast from rank 0 must fix it
  Tiny model;
  auto params = model->named_parameters();
  std::vector<torch::Tensor> tensors;
  for (auto& p : params) tensors.push_back(p.value());
  pg->broadcast(tensors);

  const auto ckpt = fs::path(out) / "ckpt.safetensors";
  std::vector<double> losses;
  if (env.restart_count > 0 && fs::exists(ckpt)) {
    cb::SafetensorsFile f(ckpt);
    torch::NoGradGuard ng;
    for (auto& p : params) p.value().copy_(f.tensor(p.key()));
    auto l = f.tensor("losses");
    for (int64_t i = 0; i < l.numel(); ++i) losses.push_back(l[i].item<double>());
  }

  GradSync sync(params, pg);
  const int64_t global = static_cast<int64_t>(batch) * world, micro = batch / accum;
  for (int step = static_cast<int>(losses.size()); step < steps; ++step) {
    if (step == crash_step && rank == crash_rank && env.restart_count == 0) ::raise(SIGKILL);
    if (step == exit_step && rank == 0) std::_Exit(exit_code);  // at once, before the peers notice the lost link
    torch::manual_seed(10000 + step);                           // the same global batch whatever the world size
    auto x = torch::randn({global, 4});
    auto y = torch::sin(x.sum(1));
    bool use_b = step % 3 == 2;
    for (auto& p : params)
      if (p.value().grad().defined()) p.value().mutable_grad().zero_();
    double local = 0;
    for (int m = 0; m < accum; ++m) {
      auto rows = torch::indexing::Slice(rank * batch + m * micro, rank * batch + (m + 1) * micro);
      auto loss = torch::mse_loss(model->forward(x.index({rows}), use_b), y.index({rows})) / accum;
      local += loss.item<double>();
      if (m + 1 < accum) {
        auto no_sync = sync.no_sync();
        loss.backward();
      } else {  // prepare(): head_b's bucket (unused on most steps) is reduced without waiting for finish()
        sync.prepare(loss);
        loss.backward();
        sync.finish();
      }
    }
    {
      torch::NoGradGuard ng;
      for (auto& p : params)
        if (p.value().grad().defined()) p.value().sub_(0.1 * p.value().grad());
    }
    losses.push_back(pg->all_reduce_mean(local));
    if (pg->is_main()) {
      cb::StateDict sd;
      for (auto& p : params) sd.insert(p.key(), p.value().detach());
      sd.insert("losses", torch::tensor(losses, torch::kFloat64));
      cb::save_safetensors(ckpt, sd);
    }
    pg->barrier();
  }
  auto gathered = pg->all_gather_json({{"rank", rank}, {"pid", static_cast<int>(::getpid())}});
  if (pg->is_main()) {
    std::string text;
    for (double l : losses) text += fmt::format("{:.17g}\n", l);
    cb::atomic_write_file(fs::path(out) / "losses.txt", text);
    cb::atomic_write_file(fs::path(out) / "gathered.json", nlohmann::json(gathered).dump());
    cb::StateDict sd;
    for (auto& p : params) sd.insert(p.key(), p.value().detach());
    cb::save_safetensors(fs::path(out) / "final.safetensors", sd);
  }
  pg->barrier();
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // e.g. a peer vanished mid-collective: fail cleanly, no core dump
    std::fprintf(stderr, "dist_worker: %s\n", e.what());
    return 1;
  }
}
