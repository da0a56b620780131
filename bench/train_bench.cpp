#include "bench/train_bench.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "bench/timing.h"
#include "framework/error.h"
#include "framework/op_profile.h"
#include "runners/train/memory_plan.h"
#include "runners/train/optim.h"

namespace cb::bench {
namespace {

const TrainWork& work_of(const Workload& w, int stage) { return stage == 1 ? w.train1 : w.train2; }

// 2·m·k·n multiply-adds of a [m,k]x[k,n] product.
double mm(double m, double k, double n) { return 2.0 * m * k * n; }

}  // namespace

TrainBench::TrainBench(const Workload& w, int stage_, const std::filesystem::path& tokenizer) : stage(stage_) {
  const auto cfg = w.model_config(stage);
  const auto& tw = work_of(w, stage);
  torch::manual_seed(w.seed);
  model = ChatBridge(cfg, LlamaTokenizer::load(tokenizer));
  model->seed(w.seed);
  model->train();

  const int64_t B = tw.batch_size, S = cfg.image_size;
  batch.task = "ti";
  batch.image = torch::randn({B, 3, S, S}).to(w.device);
  for (int64_t i = 0; i < B; ++i) {
    if (stage == 1) batch.text_input.push_back(w.stage1_captions[i % w.stage1_captions.size()]);
    else batch.conversation.push_back(w.stage2_conversations[i % w.stage2_conversations.size()]);
  }
  model->to(w.device);  // before the optimizer, as RunnerBase::setup
  optimizer = make_adamw(*model, AdamWSettings{.lr = 1e-4, .weight_decay = 0.05});
}

double TrainBench::step() {
  using clock = std::chrono::steady_clock;
  auto seconds = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  const auto device = batch.image.device();
  const auto t0 = clock::now();
  auto loss = model->forward(batch).loss;
  sync_device(device);
  const auto t1 = clock::now();
  loss.backward();
  sync_device(device);
  const auto t2 = clock::now();
  optimizer->step();
  zero_grad_keep(*optimizer);
  sync_device(device);
  const auto t3 = clock::now();
  forward_s.push_back(seconds(t0, t1));
  backward_s.push_back(seconds(t1, t2));
  optimizer_s.push_back(seconds(t2, t3));
  return loss.item<double>();
}

std::vector<int64_t> TrainBench::llama_input_shape() {
  torch::NoGradGuard no_grad;
  auto out = model->forward(batch);
  auto s = out.llama.inputs_embeds.sizes();
  return {s[0], s[1]};
}

double TrainBench::model_flops_per_step() {
  const auto& c = model->config();
  const double B = static_cast<double>(batch.image.size(0));
  // Frozen ViT, forward only.
  const auto& v = c.vit;
  const double P = double(v.num_patches()), N = P + 1, Dv = double(v.embed_dim), Dm = double(v.mlp_hidden());
  double vit = mm(B * P, 3.0 * v.patch_size * v.patch_size, Dv);
  vit += double(v.depth) * (mm(B * N, Dv, 3 * Dv) + 2 * mm(B * N, Dv, N) + mm(B * N, Dv, Dv) + 2 * mm(B * N, Dv, Dm));
  // Q-Former: queries only (no text), cross-attention on the ViT tokens.
  const auto& q = c.qformer;
  const double Nq = double(c.num_query_token), H = double(q.hidden_size), I = double(q.intermediate_size);
  const double K = N, Dk = double(q.encoder_width);
  double qf_train = 0, qf_kv = 0;  // qf_kv: cross-attention k/v projections of constant inputs
  for (int64_t l = 0; l < q.num_hidden_layers; ++l) {
    qf_train += 4 * mm(B * Nq, H, H) + 2 * mm(B * Nq, H, Nq) + 2 * mm(B * Nq, H, I);
    if (q.has_cross_attention(l)) {
      qf_train += 2 * mm(B * Nq, H, H) + 2 * mm(B * Nq, H, K);
      qf_kv += 2 * mm(B * K, Dk, H);
    }
  }
  const double Dl = double(c.llama.hidden_size), Il = double(c.llama.intermediate_size), V = double(c.llama.vocab_size);
  const double proj = mm(B * Nq, H, Dl);
  // Frozen LLaMA on [B, L].
  const auto shape = llama_input_shape();
  const double L = double(shape[1]);
  double llama =
      double(c.llama.num_hidden_layers) * (4 * mm(B * L, Dl, Dl) + 2 * mm(B * L, Dl, L) + 3 * mm(B * L, Dl, Il));
  llama += mm(B * L, Dl, V);
  return vit + 3 * (qf_train + proj) + 2 * qf_kv + 2 * llama;
}

nlohmann::json run_train(const Workload& w, int stage, const std::filesystem::path& tokenizer,
                         std::optional<double> peak_flops, int profile_top) {
  const auto& tw = work_of(w, stage);
  const std::string name = "train" + std::to_string(stage);
  spdlog::info("{}: building the stage-{} model", name, stage);
  const int64_t baseline = current_rss_bytes();  // before the model: what the plan calls the process baseline
  TrainBench bench(w, stage, tokenizer);
  const auto shape = bench.llama_input_shape();
  const double flops = bench.model_flops_per_step();
  std::vector<double> losses;
  spdlog::info("{}: {} warm-up + {} timed steps, LLaMA input {}x{}", name, tw.warmup_steps, tw.steps, shape[0],
               shape[1]);
  auto t = time_repeats(tw.warmup_steps, tw.steps, [&] { losses.push_back(bench.step()); });
  for (double l : losses)
    if (!std::isfinite(l)) fail("{}: non-finite loss {} (degenerate random weights?)", name, l);
  // Phase medians over the timed steps (the warm-up steps come first in the vectors).
  auto phase = [&](const std::vector<double>& v) { return median(std::vector<double>(v.end() - tw.steps, v.end())); };
  const nlohmann::json phases = {{"forward_s", phase(bench.forward_s)},
                                 {"backward_s", phase(bench.backward_s)},
                                 {"optimizer_s", phase(bench.optimizer_s)}};
  // The plan the dry run prints, for this model and batch, beside the measured peak.
  MemoryPlanOptions plan_opts;
  plan_opts.batch_size = bench.batch.image.size(0);
  plan_opts.text_len = bench.model->config().max_txt_len;
  plan_opts.baseline_bytes = baseline;
  const auto plan = plan_memory(*bench.model, plan_opts);
  spdlog::info("{}: {}", name, plan.describe());
  int64_t trainable = 0;
  for (const auto& p : bench.model->parameters())
    if (p.requires_grad()) trainable += p.numel();
  nlohmann::json j = {{"timing", t.to_json()},
                      {"image_shape", bench.batch.image.sizes().vec()},
                      {"llama_input_shape", shape},
                      {"losses", losses},
                      {"phase_median", phases},
                      {"trainable_params", trainable},
                      {"model_flops_per_step", flops},
                      {"model_flops_per_s", flops / t.median()},
                      {"peak_rss_mb_after", peak_rss_mb()},
                      {"memory_plan_mb", double(plan.total_bytes()) / double(1 << 20)},
                      {"memory_plan_activations_mb", double(plan.activation_bytes) / double(1 << 20)}};
  j["memory_plan_over_peak"] = j["memory_plan_mb"].get<double>() / j["peak_rss_mb_after"].get<double>();
  if (peak_flops) j["mfu"] = flops / t.median() / *peak_flops;
  if (profile_top > 0) {
    OpProfile profile;
    for (int i = 0; i < tw.steps; ++i) bench.step();
    j["op_profile"] = profile.to_json(size_t(profile_top));
    j["op_profile_steps"] = tw.steps;
  }
  return j;
}

}  // namespace cb::bench
