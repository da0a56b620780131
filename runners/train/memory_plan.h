// What a training (or inference) process will hold, computed from the model's module tree without
// building its weights: per part, the weights (parameters and buffers × their dtype's bytes), the
// fp32 gradients and AdamW moments of the trainable parameters, the gradient-sync buckets when
// data-parallel, an activation estimate for one step, and the process's own baseline. What
// `chatbridge-train --dry-run` prints; `chatbridge-bench train1/train2` print it beside the measured peak.
#pragma once
#include <torch/torch.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cb {

struct MemoryPlanOptions {
  int64_t batch_size = 1;         // samples per rank and step
  int64_t text_len = 32;          // text positions per sample that reach the LLM (queries come on top)
  int64_t images_per_sample = 1;  // ViT inputs per sample (video: frames)
  bool train = true;              // a train step (gradients, optimiser state, saved activations)
  int64_t world_size = 1;         // > 1: gradient-sync buckets
  int64_t baseline_bytes = 0;     // the process without the model (libraries, allocator arenas)
  int64_t compute_bytes = 4;      // activation element size (fp32 on the CPU; 2 under fp16 autocast)
};

struct PartMemory {
  std::string name;  // top-level module (visual_encoder, Qformer, llama_model, ...)
  int64_t params = 0, trainable = 0;
  int64_t weight_bytes = 0;  // parameters and buffers at their own dtypes
  std::string dtypes;        // e.g. "fp32", "bf16+fp32"
  int64_t grad_bytes = 0, optimizer_bytes = 0;
};

struct MemoryPlan {
  std::vector<PartMemory> parts;
  int64_t grad_sync_bytes = 0;   // flat all-reduce buckets (world_size > 1)
  int64_t activation_bytes = 0;  // saved for backward + the largest transient of one step
  std::string activation_note;   // which shapes the estimate used
  int64_t baseline_bytes = 0;

  int64_t total_bytes() const;
  // A table for humans; `budget_bytes` adds a "fits" line.
  std::string describe(std::optional<int64_t> budget_bytes = {}) const;
};

// `model` is a ChatBridge or a LlamaForCausalLM (any module: no activation estimate for others).
MemoryPlan plan_memory(const torch::nn::Module& model, const MemoryPlanOptions& options);

// The parameters a model holds, by name: numel, except a packed (q8_0/q4_0) weight, whose uint8 bytes
// hold in x out parameters.
std::map<std::string, int64_t> parameter_counts(const torch::nn::Module& model);

// Resident set size of this process now, and MemTotal of the machine (from /proc; 0 if unreadable).
int64_t current_rss_bytes();
int64_t total_memory_bytes();

}  // namespace cb
