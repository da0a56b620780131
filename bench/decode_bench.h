// Greedy decoding benchmark (docs/benchmarks.md, decode): the workload's LLaMA with random weights
// stored in its llama_precision (chatbridge-bench --llama-precision); prefill over a fixed prompt fed as
// embeddings (all positions' logits, as HF computes them), then exactly `new_tokens` single-position
// steps against the KV cache, each picked as generate() picks greedily, no EOS; and apart, the prefill
// as generate() runs it (the last position's logits only). Beside tokens/s, the memory-bound limit: the
// read bandwidth measured in the same run over the weight bytes a step reads.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "bench/workload.h"
#include "framework/op_profile.h"
#include "models/llama.h"

namespace cb::bench {

// The prompt ids [B, P]: p_i = 3 + (17·i + 5) mod 997 on every row.
torch::Tensor decode_prompt_ids(int64_t batch_size, int64_t prompt_len);

struct DecodeRun {
  double prefill_s = 0, decode_s = 0;
  double prefill_cpu_s = 0, decode_cpu_s = 0;  // process CPU time of the same spans
  torch::Tensor sequences;                     // [B, P + new_tokens] ids (prompt then generated)
  std::vector<int64_t> prefill_logits_shape;   // [B, P, V]
  std::vector<int64_t> step_input_shape;       // [B, 1]
  int64_t final_cache_length = 0;              // P + new_tokens - 1 keys after the last step
};

// One generation, clocking the prefill and the incremental steps separately. With `step_ops`, the
// incremental steps' ops are profiled into it (framework/op_profile.h; the prefill is not: run_decode
// profiles a generate_prefill of its own after it).
DecodeRun greedy_decode(LlamaForCausalLM& model, const torch::Tensor& prompt_ids, int64_t new_tokens,
                        std::unique_ptr<OpProfile>* step_ops = nullptr);

// The prefill as generate() runs it (its next_logits at step 0: the prompt fed as embeddings into a
// fresh cache, the lm_head on the last position only): its wall seconds and the token it picks [B].
struct GeneratePrefill {
  double seconds = 0;
  torch::Tensor next;
};
GeneratePrefill generate_prefill(LlamaForCausalLM& model, const torch::Tensor& prompt_ids);

// The LLaMA of the workload, seeded; eval mode; its linear layers stored in the config's llama_precision.
LlamaForCausalLM build_decode_model(const Workload& w);

// Bytes of weights a decode step reads: every parameter and buffer, but one row of the embedding table.
int64_t weight_bytes_per_token(LlamaForCausalLM& model);

// With profile_top > 0, one more generation profiles its steps: the `profile_top` ops with most self time.
nlohmann::json run_decode(const Workload& w, int profile_top = 0);

}  // namespace cb::bench
