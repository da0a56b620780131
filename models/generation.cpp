#include "models/generation.h"

#include <spdlog/spdlog.h>

#include <limits>

#include "framework/error.h"

namespace cb {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct Resolved {
  std::optional<int64_t> eos, pad;
  int64_t bos = 1;
};

Resolved resolve(const LlamaForCausalLM& model, const GenerateOptions& o) {
  if (o.num_beams < 1) fail("generate: num_beams must be >= 1, got {}", o.num_beams);
  if (o.num_beams > 1) fail("generate: num_beams = {} (beam search) is not implemented; use num_beams = 1", o.num_beams);
  if (o.max_new_tokens < 1) fail("generate: max_new_tokens must be >= 1, got {}", o.max_new_tokens);
  if (o.min_new_tokens < 0) fail("generate: min_new_tokens must be >= 0, got {}", o.min_new_tokens);
  if (o.repetition_penalty <= 0) fail("generate: repetition_penalty must be > 0, got {}", o.repetition_penalty);
  if (o.do_sample) {
    if (!(o.temperature > 0)) fail("generate: temperature must be > 0 when sampling, got {}", o.temperature);
    if (o.top_k < 0) fail("generate: top_k must be >= 0, got {}", o.top_k);
    if (!(o.top_p > 0 && o.top_p <= 1)) fail("generate: top_p must be in (0, 1], got {}", o.top_p);
  }
  for (const auto& s : o.stop_sequences)
    if (s.empty()) fail("generate: empty stop sequence");

  const auto& c = model->config();
  Resolved r;
  r.eos = o.eos_token_id ? o.eos_token_id : c.eos_token_id;
  r.pad = o.pad_token_id ? o.pad_token_id : c.pad_token_id;
  if (!r.pad && r.eos) {  // HF: "Setting pad_token_id to eos_token_id for open-end generation."
    spdlog::warn("generate: no pad_token_id; finished rows are filled with eos_token_id {}", *r.eos);
    r.pad = r.eos;
  }
  if (o.min_new_tokens > 0 && !(r.eos && *r.eos >= 0 && *r.eos < c.vocab_size))
    fail("generate: min_new_tokens needs an eos_token_id within the vocabulary (0..{})", c.vocab_size - 1);
  auto bos = o.bos_token_id ? o.bos_token_id : c.bos_token_id;
  r.bos = bos.value_or(0);
  return r;
}

// Logits processors (HF 4.28 order: repetition penalty, then min_new_tokens). scores [B,V] fp32.
torch::Tensor process(torch::Tensor scores, const torch::Tensor& ids, int64_t prompt_len, const GenerateOptions& o,
                      const Resolved& r) {
  if (o.repetition_penalty != 1.0) scores = apply_repetition_penalty(scores, ids, o.repetition_penalty);
  if (o.min_new_tokens > 0 && ids.size(1) - prompt_len < o.min_new_tokens) {
    scores = scores.clone();
    scores.select(1, *r.eos).fill_(kNegInf);
  }
  return scores;
}

bool row0_ends_with_stop(const torch::Tensor& ids, const std::vector<std::vector<int64_t>>& stops) {
  if (stops.empty()) return false;
  for (const auto& s : stops) {
    const auto n = static_cast<int64_t>(s.size());
    if (ids.size(1) < n) continue;
    auto tail = ids[0].narrow(0, ids.size(1) - n, n).cpu();
    if (torch::equal(tail, torch::tensor(s, torch::kLong))) return true;
  }
  return false;
}

// The loop of HF 4.28 greedy_search / sample. `ids` [B,P] are the sequences so far (the bos
// placeholder when `embeds` is defined), `mask` [B, len of what the model sees].
GenerateResult decode(LlamaForCausalLM& model, torch::Tensor ids, torch::Tensor mask, const torch::Tensor& embeds,
                      const GenerateOptions& o, const Resolved& r) {
  torch::NoGradGuard no_grad;
  const auto B = ids.size(0), prompt_len = ids.size(1);
  const auto opts = torch::dtype(torch::kLong).device(ids.device());
  auto unfinished = torch::ones({B}, opts);
  LlamaKVCache cache;
  GenerateResult result;

  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    // prepare_inputs_for_generation: positions from the mask, masked positions set to 1.
    auto pos = mask.cumsum(-1) - 1;
    pos.masked_fill_(mask == 0, 1);
    LlamaInputs in;
    in.attention_mask = mask;
    in.last_logits_only = true;
    if (o.use_cache) in.cache = &cache;
    if (!cache.empty()) {  // only the newest token and its position
      in.input_ids = ids.narrow(1, ids.size(1) - 1, 1);
      in.position_ids = pos.narrow(1, pos.size(1) - 1, 1);
    } else if (embeds.defined()) {
      // Without a cache the generated ids are embedded after the prompt embeddings (the placeholder
      // id is not part of what the model sees).
      in.inputs_embeds = step == 0 ? embeds : torch::cat({embeds, model->embed(ids.narrow(1, 1, step))}, 1);
      in.position_ids = pos;
    } else {
      in.input_ids = ids;
      in.position_ids = pos;
    }
    auto logits = model->forward(in).logits.select(1, 0).to(torch::kFloat);  // [B,V]

    auto scores = process(logits, ids, prompt_len, o, r);
    torch::Tensor next;  // [B]
    if (o.do_sample) {
      scores = apply_sampling_warpers(scores, o);
      next = torch::multinomial(scores.softmax(-1), 1).squeeze(1);
    } else {
      next = scores.argmax(-1);
    }
    if (o.output_scores) result.scores.push_back(scores);
    if (r.eos) next = next * unfinished + *r.pad * (1 - unfinished);
    ids = torch::cat({ids, next.unsqueeze(1)}, 1);
    mask = torch::cat({mask, torch::ones({B, 1}, opts)}, 1);
    if (r.eos) unfinished = unfinished * (next != *r.eos).to(torch::kLong);

    const bool callback_stop = o.on_token && o.on_token(next);
    if (callback_stop) break;
    if (r.eos && unfinished.max().item<int64_t>() == 0) break;
    if (row0_ends_with_stop(ids, o.stop_sequences)) break;
  }
  result.sequences = ids;
  return result;
}

}  // namespace

torch::Tensor apply_repetition_penalty(const torch::Tensor& scores, const torch::Tensor& ids, double penalty) {
  auto seen = scores.gather(1, ids);  // every id of the sequence so far, prompt included
  seen = torch::where(seen < 0, seen * penalty, seen / penalty);
  return scores.scatter(1, ids, seen);
}

torch::Tensor apply_sampling_warpers(const torch::Tensor& input, const GenerateOptions& o) {
  auto scores = input;
  if (o.temperature != 1.0) scores = scores / o.temperature;
  if (o.top_k != 0) {
    auto k = std::min<int64_t>(o.top_k, scores.size(-1));
    auto kth = std::get<0>(scores.topk(k, -1)).narrow(-1, k - 1, 1);  // [B,1]
    scores = scores.masked_fill(scores < kth, kNegInf);
  }
  if (o.top_p < 1.0) {
    auto [sorted, index] = scores.sort(-1, /*descending=*/false);
    auto cumulative = sorted.softmax(-1).cumsum(-1);
    auto remove_sorted = cumulative <= (1 - o.top_p);
    remove_sorted.narrow(-1, remove_sorted.size(-1) - 1, 1).fill_(false);  // best token kept (its cumsum is 1 > 1-top_p in HF; rounding may not)
    auto remove = remove_sorted.scatter(1, index, remove_sorted);
    scores = scores.masked_fill(remove, kNegInf);
  }
  return scores;
}

GenerateResult generate(LlamaForCausalLM& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const GenerateOptions& options) {
  const auto r = resolve(model, options);
  if (input_ids.dim() != 2 || input_ids.size(1) == 0)
    fail("generate: input_ids must be [B,L] with L > 0, got {}", fmt::join(input_ids.sizes(), "x"));
  auto ids = input_ids.to(model->device(), torch::kLong);
  torch::Tensor mask;
  if (attention_mask.defined()) {
    if (attention_mask.sizes() != input_ids.sizes())
      fail("generate: attention_mask {} does not match input_ids {}", fmt::join(attention_mask.sizes(), "x"),
           fmt::join(input_ids.sizes(), "x"));
    mask = attention_mask.to(ids.device(), torch::kLong);
  } else if (r.pad && (ids == *r.pad).any().item<bool>() && (!r.eos || *r.pad != *r.eos)) {
    mask = (ids != *r.pad).to(torch::kLong);  // HF's _prepare_attention_mask_for_generation
  } else {
    mask = torch::ones_like(ids);
  }
  return decode(model, ids, mask, torch::Tensor(), options, r);
}

GenerateResult generate_from_embeds(LlamaForCausalLM& model, const torch::Tensor& inputs_embeds,
                                    const torch::Tensor& attention_mask, const GenerateOptions& options) {
  const auto r = resolve(model, options);
  if (inputs_embeds.dim() != 3 || inputs_embeds.size(1) == 0)
    fail("generate_from_embeds: inputs_embeds must be [B,L,D] with L > 0, got {}",
         fmt::join(inputs_embeds.sizes(), "x"));
  const auto B = inputs_embeds.size(0), L = inputs_embeds.size(1);
  const auto opts = torch::dtype(torch::kLong).device(model->device());
  auto embeds = inputs_embeds.to(model->device(), model->dtype());
  torch::Tensor mask;
  if (attention_mask.defined()) {
    if (attention_mask.dim() != 2 || attention_mask.size(0) != B || attention_mask.size(1) != L)
      fail("generate_from_embeds: attention_mask must be [{}, {}], got {}", B, L,
           fmt::join(attention_mask.sizes(), "x"));
    mask = attention_mask.to(opts.device(), torch::kLong);
  } else {
    mask = torch::ones({B, L}, opts);
  }
  // HF 4.28 starts the returned sequences with a [B,1] bos placeholder that is never fed.
  auto ids = torch::full({B, 1}, r.bos, opts);
  return decode(model, ids, mask, embeds, options, r);
}

}  // namespace cb
