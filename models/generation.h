// Decoding with Hugging Face transformers 4.28 `generate` semantics for LlamaForCausalLM: greedy
// search and multinomial sampling (num_beams = 1), beam search and beam sampling (num_beams > 1,
// BeamSearchScorer with one returned sequence per prompt), with the logits processors/warpers in
// HF's order.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <optional>
#include <vector>

#include "models/llama.h"

namespace cb {

struct GenerateOptions {
  int64_t max_new_tokens = 20;      // Number of decoding steps at most.
  int64_t min_new_tokens = 0;       // eos is forbidden (logit -inf) until this many tokens were generated.
  int64_t num_beams = 1;            // > 1: beam search (do_sample false) or beam sampling (do_sample true).
  bool do_sample = false;           // false: argmax (greedy); true: temperature -> top-k -> top-p -> multinomial.
  double temperature = 1.0;         // Sampling only: logits are divided by it (must be > 0).
  int64_t top_k = 50;               // Sampling only: keep the k best logits (0 = off); HF default 50.
  double top_p = 1.0;               // Sampling only: keep the smallest top set with probability >= top_p (1 = off).
  double repetition_penalty = 1.0;  // Logits of every id already in the sequence: /p if > 0, *p if < 0 (1 = off).
  // OpenAI's penalties, over the generated ids only: s -= frequency * count + presence * (count > 0).
  double frequency_penalty = 0.0;
  double presence_penalty = 0.0;
  std::vector<std::pair<int64_t, double>> logit_bias;  // OpenAI's: added to those ids' logits before sampling
  double length_penalty = 1.0;          // Beam search only: a hypothesis scores sum_logprobs / length**length_penalty.
  bool early_stopping = false;          // Beam search only: true ends a prompt once num_beams hypotheses finished.
  std::optional<int64_t> eos_token_id;  // Finishes a row; default: the model config's eos.
  std::optional<int64_t> pad_token_id;  // Fills finished rows; default: the model config's pad, else eos.
  std::optional<int64_t> bos_token_id;  // Placeholder first id when generating from embeddings; default: config bos.
  // Generation stops when row 0 ends with one of these id sequences (ChatBridge's StoppingCriteriaSub,
  // which only looks at row 0; the demo decodes one conversation at a time).
  std::vector<std::vector<int64_t>> stop_sequences;
  bool use_cache = true;       // Reuse keys/values; false recomputes the whole sequence every step.
  bool output_scores = false;  // Return the processed scores [B,V] (fp32) of every step.
  // Called after every step with that step's ids [B] (finished rows already replaced by pad);
  // returning true stops generation after this step. num_beams 1 only (HF streams no beams either).
  std::function<bool(const torch::Tensor& tokens)> on_token;
  // Called every step, before on_token, with the model's logits [B,V] (fp32) ahead of any processor or
  // warper: what a log-probability report reads. num_beams 1 only.
  std::function<void(const torch::Tensor& logits)> on_logits;
};

struct GenerateResult {
  // [B, prompt + steps]: the prompt ids (or the [B,1] bos placeholder when generating from
  // embeddings, as HF 4.28 does) followed by the generated ids.
  torch::Tensor sequences;
  std::vector<torch::Tensor> scores;  // per step [B,V] ([B*num_beams,V] for beams), when output_scores
  torch::Tensor sequence_scores;      // beam search: [B] fp32, the returned hypotheses' length-penalised scores
  // Per row, how many of the ids after the prompt the search generated: the eos that ended a row
  // counts, the eos that beam search's finalize appends to a hypothesis cut by a limit or a stop
  // sequence does not, nor padding.
  std::vector<int64_t> new_tokens;
};

// Greedy search's choice per row: scores [B,V] -> [B] int64, torch::argmax's index (the CPU's fp32 scores
// through kernels::argmax, which gives the same index several times faster).
torch::Tensor greedy_pick(const torch::Tensor& scores);

// HF RepetitionPenaltyLogitsProcessor: scores [B,V] of every id in `ids` [B,T] become s/p (s > 0)
// or s*p (s < 0).
torch::Tensor apply_repetition_penalty(const torch::Tensor& scores, const torch::Tensor& ids, double penalty);

// OpenAI's frequency and presence penalties: scores [B,V] minus frequency * n + presence * (n > 0), n
// the times each id occurs in `generated` [B,T].
torch::Tensor apply_occurrence_penalties(const torch::Tensor& scores, const torch::Tensor& generated, double frequency,
                                         double presence);

// HF 4.28 sampling warpers in their order: temperature (if != 1), top-k (if != 0), top-p (if < 1).
// Removed entries become -inf. scores [B,V]. At least one token survives top-k/top-p, two when
// num_beams > 1 (HF's min_tokens_to_keep).
torch::Tensor apply_sampling_warpers(const torch::Tensor& scores, const GenerateOptions& options);

// From token ids [B,L] with attention_mask [B,L] (undefined: ids != pad when the prompt contains the
// pad id and pad != eos, else all ones — HF's rule). Left padding is expected for batches.
GenerateResult generate(LlamaForCausalLM& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const GenerateOptions& options);

// One forward of the decoding loop (HF prepare_inputs_for_generation + forward): the next-token
// logits [N,V] fp32, the lm_head on the last position only. `ids` [N,P+step] are the sequences so far
// (the bos placeholder first when `embeds` is defined; not read at step 0 with embeds), `mask` [N, what
// the model sees]; with an empty `cache`, the whole prompt (the prefill), filling it.
torch::Tensor next_logits(LlamaForCausalLM& model, const torch::Tensor& ids, const torch::Tensor& mask,
                          const torch::Tensor& embeds, int64_t step, LlamaKVCache* cache);

// From embeddings [B,L,D] (ChatBridge's path: the prompt is built in embedding space) with
// attention_mask [B,L] (undefined: all ones). The first step consumes the embeddings; later steps feed
// the generated ids.
GenerateResult generate_from_embeds(LlamaForCausalLM& model, const torch::Tensor& inputs_embeds,
                                    const torch::Tensor& attention_mask, const GenerateOptions& options);

}  // namespace cb
