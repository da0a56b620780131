// Stage-1 / stage-2 train step benchmark (docs/benchmarks.md, train1 and train2): a ChatBridge built
// from the workload's config with random fp32 weights, one fixed image batch, and steps of
// forward + backward + AdamW + zero_grad (in place, torch 1.13 semantics).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "bench/workload.h"
#include "models/chatbridge.h"

namespace cb::bench {

struct TrainBench {
  int stage = 1;
  ChatBridge model{nullptr};
  Batch batch;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  // Wall seconds of each phase of every step() so far: where a step's time goes.
  std::vector<double> forward_s, backward_s, optimizer_s;

  // Builds the model (seeded by the workload), the batch and the optimizer.
  TrainBench(const Workload& w, int stage, const std::filesystem::path& tokenizer);
  // One timed unit: forward, backward, AdamW step, zero_grad. Returns the loss.
  double step();
  // The LLaMA input [B, L] this batch produces (one forward without grad, nothing updated).
  std::vector<int64_t> llama_input_shape();
  // Model FLOPs of one step from the shapes: frozen ViT forward; Q-Former and llama_proj forward +
  // both backward passes (the cross-attention keys/values only get weight gradients); frozen LLaMA
  // forward + activation gradients. Attention counted in full (no causal halving), as computed.
  double model_flops_per_step();
};

// Times `w.train<stage>` and returns its JSON detail (timings, shapes, loss, FLOPs, MFU when
// `peak_flops` is given). With `profile_top` > 0, `steps` more untimed steps then run under an
// OpProfile and `op_profile` lists the ops with the most self time.
nlohmann::json run_train(const Workload& w, int stage, const std::filesystem::path& tokenizer,
                         std::optional<double> peak_flops, int profile_top = 0);

}  // namespace cb::bench
