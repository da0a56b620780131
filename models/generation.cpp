#include "models/generation.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "framework/error.h"
#include "framework/kernels/argmax.h"

namespace cb {

torch::Tensor greedy_pick(const torch::Tensor& scores) {
  return kernels::argmax_applies(scores) ? kernels::argmax(scores) : scores.argmax(-1);
}

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct Resolved {
  std::optional<int64_t> eos, pad;
  int64_t bos = 1;
};

Resolved resolve(const LlamaForCausalLM& model, const GenerateOptions& o) {
  if (o.num_beams < 1) fail("generate: num_beams must be >= 1, got {}", o.num_beams);
  if (o.num_beams > 1 && (o.on_token || o.on_logits))
    fail("generate: on_token and on_logits need num_beams = 1, got {}", o.num_beams);
  if (o.max_new_tokens < 1) fail("generate: max_new_tokens must be >= 1, got {}", o.max_new_tokens);
  if (o.min_new_tokens < 0) fail("generate: min_new_tokens must be >= 0, got {}", o.min_new_tokens);
  if (o.repetition_penalty <= 0) fail("generate: repetition_penalty must be > 0, got {}", o.repetition_penalty);
  if (!std::isfinite(o.frequency_penalty) || !std::isfinite(o.presence_penalty))
    fail("generate: frequency_penalty and presence_penalty must be finite");
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
  for (const auto& [id, bias] : o.logit_bias) {
    if (id < 0 || id >= c.vocab_size) fail("generate: logit_bias: token id {} is not in 0..{}", id, c.vocab_size - 1);
    if (!std::isfinite(bias)) fail("generate: logit_bias of token {} must be finite", id);
  }
  auto bos = o.bos_token_id ? o.bos_token_id : c.bos_token_id;
  r.bos = bos.value_or(0);
  return r;
}

// Logits processors (HF 4.28 order: repetition penalty, then min_new_tokens; OpenAI's penalties and bias
// between them). scores [B,V] fp32.
torch::Tensor process(torch::Tensor scores, const torch::Tensor& ids, int64_t prompt_len, const GenerateOptions& o,
                      const Resolved& r) {
  if (o.repetition_penalty != 1.0) scores = apply_repetition_penalty(scores, ids, o.repetition_penalty);
  if ((o.frequency_penalty != 0 || o.presence_penalty != 0) && ids.size(1) > prompt_len)
    scores = apply_occurrence_penalties(scores, ids.narrow(1, prompt_len, ids.size(1) - prompt_len),
                                        o.frequency_penalty, o.presence_penalty);
  if (!o.logit_bias.empty()) {
    scores = scores.clone();
    for (const auto& [id, bias] : o.logit_bias) scores.select(1, id).add_(bias);
  }
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

// The loop of HF 4.28 greedy_search / sample. `ids` [B,P] (the bos placeholder when `embeds` is
// defined), `mask` [B, prompt length].
GenerateResult decode(LlamaForCausalLM& model, torch::Tensor ids, torch::Tensor mask, const torch::Tensor& embeds,
                      const GenerateOptions& o, const Resolved& r) {
  c10::InferenceMode inference;  // no autograd bookkeeping at all: cheaper per op than NoGradGuard
  const auto B = ids.size(0), prompt_len = ids.size(1);
  const auto opts = torch::dtype(torch::kLong).device(ids.device());
  auto unfinished = torch::ones({B}, opts);
  auto new_tokens = torch::zeros({B}, opts);
  LlamaKVCache cache;
  GenerateResult result;

  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    auto logits = next_logits(model, ids, mask, embeds, step, o.use_cache ? &cache : nullptr);  // [B,V]
    if (o.on_logits) o.on_logits(logits);
    auto scores = process(logits, ids, prompt_len, o, r);
    torch::Tensor next;  // [B]
    if (o.do_sample) {
      scores = apply_sampling_warpers(scores, o);
      next = torch::multinomial(scores.softmax(-1), 1).squeeze(1);
    } else {
      next = greedy_pick(scores);
    }
    if (o.output_scores) result.scores.push_back(scores);
    if (r.eos) next = next * unfinished + *r.pad * (1 - unfinished);
    ids = torch::cat({ids, next.unsqueeze(1)}, 1);
    mask = torch::cat({mask, torch::ones({B, 1}, opts)}, 1);
    new_tokens += unfinished;
    if (r.eos) unfinished = unfinished * (next != *r.eos).to(torch::kLong);

    const bool callback_stop = o.on_token && o.on_token(next);
    if (callback_stop) break;
    if (r.eos && unfinished.max().item<int64_t>() == 0) break;
    if (row0_ends_with_stop(ids, o.stop_sequences)) break;
  }
  result.sequences = ids;
  const auto counts = new_tokens.cpu().contiguous();
  result.new_tokens.assign(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + B);
  return result;
}

// HF 4.28 BeamHypotheses: the num_beams best finished sequences of one prompt, scored
// sum_logprobs / len**length_penalty where len counts the whole row (prompt or bos placeholder
// included, the final eos excluded).
struct BeamHypotheses {
  struct Hypothesis {
    double score;
    std::vector<int64_t> ids;
    bool ended_by_eos;  // else cut by max_length or a stop sequence
  };
  int64_t num_beams;
  double length_penalty;
  bool early_stopping;
  std::vector<Hypothesis> beams;  // in insertion order
  double worst_score = 1e9;

  void add(std::vector<int64_t> hyp, double sum_logprobs, bool ended_by_eos) {
    const double score = sum_logprobs / std::pow(static_cast<double>(hyp.size()), length_penalty);
    if (static_cast<int64_t>(beams.size()) < num_beams || score > worst_score) {
      beams.push_back({score, std::move(hyp), ended_by_eos});
      if (static_cast<int64_t>(beams.size()) > num_beams) {
        // Python sorts (score, index) pairs: the lowest score goes (the earliest among ties), the
        // second lowest becomes the worst.
        std::vector<std::pair<double, size_t>> order;
        for (size_t i = 0; i < beams.size(); ++i) order.emplace_back(beams[i].score, i);
        std::sort(order.begin(), order.end());
        beams.erase(beams.begin() + static_cast<std::ptrdiff_t>(order[0].second));
        worst_score = order[1].first;
      } else {
        worst_score = std::min(score, worst_score);
      }
    }
  }

  // early_stopping false: HF's heuristic, the best running beam finishing right now.
  bool is_done(double best_sum_logprobs, int64_t cur_len) const {
    if (static_cast<int64_t>(beams.size()) < num_beams) return false;
    if (early_stopping) return true;
    return worst_score >= best_sum_logprobs / std::pow(static_cast<double>(cur_len), length_penalty);
  }

  // Python's stable sort by score, then pop(): the best, the last added among ties.
  const Hypothesis& best() const {
    const auto* b = &beams.front();
    for (const auto& h : beams)
      if (h.score >= b->score) b = &h;
    return *b;
  }
};

std::vector<int64_t> row_ids(const torch::Tensor& ids_cpu, int64_t row) {
  const auto* p = ids_cpu[row].data_ptr<int64_t>();
  return {p, p + ids_cpu.size(1)};
}

// HF 4.28 beam_search (do_sample false) / beam_sample (do_sample true) with BeamSearchScorer,
// one returned sequence per prompt. `ids` [B,P], `mask` [B,L], `embeds` [B,L,D] or undefined.
GenerateResult beam_decode(LlamaForCausalLM& model, torch::Tensor ids, torch::Tensor mask, torch::Tensor embeds,
                           const GenerateOptions& o, const Resolved& r) {
  c10::InferenceMode inference;
  const auto B = ids.size(0), K = o.num_beams, prompt_len = ids.size(1);
  const auto max_length = prompt_len + o.max_new_tokens;  // HF's max_length (MaxLengthCriteria)
  const auto device = ids.device();
  const auto opts = torch::dtype(torch::kLong).device(device);

  // _expand_inputs_for_generation: every prompt row repeated num_beams times, beams adjacent.
  ids = ids.repeat_interleave(K, 0);
  mask = mask.repeat_interleave(K, 0);
  if (embeds.defined()) embeds = embeds.repeat_interleave(K, 0);
  // Beam search starts from one live beam per prompt (the copies at -1e9); beam sampling from all.
  auto beam_scores = torch::zeros({B, K}, torch::dtype(torch::kFloat).device(device));
  if (!o.do_sample) beam_scores.narrow(1, 1, K - 1).fill_(-1e9);
  beam_scores = beam_scores.view({B * K});

  std::vector<BeamHypotheses> hyps(B, BeamHypotheses{K, o.length_penalty, o.early_stopping, {}});
  std::vector<char> done(B, 0);
  LlamaKVCache cache;
  GenerateResult result;

  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    auto logits = next_logits(model, ids, mask, embeds, step, o.use_cache ? &cache : nullptr);  // [BK,V]
    const auto V = logits.size(1);
    // Processors act on log-probabilities here (log_softmax first), unlike greedy/sample.
    auto processed = process(logits.log_softmax(-1), ids, prompt_len, o, r);
    auto scores = processed + beam_scores.unsqueeze(1);
    // Beam sampling warps the running sums (HF applies the warpers after adding the beam scores).
    if (o.do_sample) scores = apply_sampling_warpers(scores, o);
    if (o.output_scores) result.scores.push_back(o.do_sample ? apply_sampling_warpers(processed, o) : processed);

    auto flat = scores.view({B, K * V});
    torch::Tensor top_scores, top_flat;  // [B,2K], best first
    if (o.do_sample) {
      auto picked = torch::multinomial(flat.softmax(-1), 2 * K);
      auto [sorted, order] = flat.gather(1, picked).sort(-1, /*descending=*/true);
      top_scores = sorted;
      top_flat = picked.gather(1, order);
    } else {
      std::tie(top_scores, top_flat) = flat.topk(2 * K, 1, /*largest=*/true, /*sorted=*/true);
    }
    const auto cand_score = top_scores.cpu().contiguous();
    const auto cand_beam = top_flat.div(V, "floor").cpu().contiguous();
    const auto cand_token = top_flat.remainder(V).cpu().contiguous();
    const auto* score_of = cand_score.data_ptr<float>();
    const auto* beam_of = cand_beam.data_ptr<int64_t>();
    const auto* token_of = cand_token.data_ptr<int64_t>();

    // BeamSearchScorer.process: per prompt, the K best non-eos candidates continue; an eos candidate
    // among the top K becomes a hypothesis (without the eos). A finished prompt's beams carry pad.
    auto next_scores = torch::zeros({B, K}, torch::kFloat);
    auto next_tokens = torch::zeros({B, K}, torch::kLong);
    auto next_rows = torch::zeros({B, K}, torch::kLong);
    auto* ns = next_scores.data_ptr<float>();
    auto* nt = next_tokens.data_ptr<int64_t>();
    auto* nr = next_rows.data_ptr<int64_t>();
    torch::Tensor ids_cpu;
    const auto cur_len = ids.size(1);
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) {
        if (!r.pad) fail("generate: beam search needs a pad_token_id once a prompt is finished");
        std::fill(nt + b * K, nt + (b + 1) * K, *r.pad);
        continue;
      }
      int64_t filled = 0;
      for (int64_t rank = 0; rank < 2 * K && filled < K; ++rank) {
        const auto c = b * 2 * K + rank;
        const auto row = b * K + beam_of[c];
        if (r.eos && token_of[c] == *r.eos) {
          if (rank >= K) continue;
          if (!ids_cpu.defined()) ids_cpu = ids.cpu().contiguous();
          hyps[b].add(row_ids(ids_cpu, row), score_of[c], /*ended_by_eos=*/true);
        } else {
          ns[b * K + filled] = score_of[c];
          nt[b * K + filled] = token_of[c];
          nr[b * K + filled] = row;
          ++filled;
        }
      }
      if (filled < K)
        fail("generate: beam search found {} continuations for {} beams (too few tokens can be sampled)", filled, K);
      const double best = *std::max_element(score_of + b * 2 * K, score_of + (b + 1) * 2 * K);
      done[b] = hyps[b].is_done(best, cur_len);
    }

    beam_scores = next_scores.view({B * K}).to(device);
    const auto beam_idx = next_rows.view({B * K}).to(device);
    ids = torch::cat({ids.index_select(0, beam_idx), next_tokens.view({B * K, 1}).to(device)}, 1);
    // The mask is not reordered (as in HF): the beams of one prompt share it. Neither are the
    // embeddings (the uncached path): they are equal within a prompt too.
    mask = torch::cat({mask, torch::ones({B * K, 1}, opts)}, 1);
    for (auto* kv : {&cache.keys, &cache.values})
      for (auto& t : *kv) t = t.index_select(0, beam_idx);  // _reorder_cache

    if (std::all_of(done.begin(), done.end(), [](char d) { return d != 0; })) break;
    if (row0_ends_with_stop(ids, o.stop_sequences)) break;
  }

  // finalize: the open beams of unfinished prompts compete with the hypotheses; the best is
  // returned, followed by eos when it is shorter than the longest (capped at max_length), then pad.
  const auto ids_cpu = ids.cpu().contiguous();
  const auto final_scores = beam_scores.cpu().contiguous();
  for (int64_t b = 0; b < B; ++b) {
    if (done[b]) continue;
    for (int64_t k = 0; k < K; ++k)
      hyps[b].add(row_ids(ids_cpu, b * K + k), final_scores[b * K + k].item<float>(), /*ended_by_eos=*/false);
  }
  int64_t longest = 0;
  for (const auto& h : hyps) longest = std::max<int64_t>(longest, static_cast<int64_t>(h.best().ids.size()));
  const auto width = std::min(longest + 1, max_length);
  auto sequences = torch::full({B, width}, r.pad.value_or(0), torch::kLong);
  result.sequence_scores = torch::zeros({B}, torch::kFloat);
  for (int64_t b = 0; b < B; ++b) {
    const auto& best = hyps[b].best();
    const auto n = static_cast<int64_t>(best.ids.size());
    sequences[b].narrow(0, 0, n).copy_(torch::tensor(best.ids, torch::kLong));
    if (n < width && r.eos) sequences[b][n] = *r.eos;
    result.sequence_scores[b] = best.score;
    result.new_tokens.push_back(n - prompt_len + (best.ended_by_eos ? 1 : 0));
  }
  result.sequences = sequences.to(device);
  result.sequence_scores = result.sequence_scores.to(device);
  return result;
}

}  // namespace

torch::Tensor next_logits(LlamaForCausalLM& model, const torch::Tensor& ids, const torch::Tensor& mask,
                          const torch::Tensor& embeds, int64_t step, LlamaKVCache* cache) {
  // Positions from the mask, masked positions set to 1.
  auto pos = mask.cumsum(-1) - 1;
  pos.masked_fill_(mask == 0, 1);
  LlamaInputs in;
  in.attention_mask = mask;
  in.last_logits_only = true;
  in.cache = cache;
  if (cache && !cache->empty()) {  // only the newest token and its position
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
  return model->forward(in).logits.select(1, 0).to(torch::kFloat);
}

torch::Tensor apply_repetition_penalty(const torch::Tensor& scores, const torch::Tensor& ids, double penalty) {
  auto seen = scores.gather(1, ids);  // every id of the sequence so far, prompt included
  seen = torch::where(seen < 0, seen * penalty, seen / penalty);
  return scores.scatter(1, ids, seen);
}

torch::Tensor apply_occurrence_penalties(const torch::Tensor& scores, const torch::Tensor& generated, double frequency,
                                         double presence) {
  auto counts = torch::zeros_like(scores).scatter_add_(1, generated, torch::ones_like(generated, scores.options()));
  return scores - frequency * counts - presence * (counts > 0).to(scores.scalar_type());
}

torch::Tensor apply_sampling_warpers(const torch::Tensor& input, const GenerateOptions& o) {
  auto scores = input;
  if (o.temperature != 1.0) scores = scores / o.temperature;
  const int64_t min_keep = o.num_beams > 1 ? 2 : 1;  // beams keep a non-eos continuation
  if (o.top_k != 0) {
    auto k = std::min<int64_t>(std::max(o.top_k, min_keep), scores.size(-1));
    auto kth = std::get<0>(scores.topk(k, -1)).narrow(-1, k - 1, 1);  // [B,1]
    scores = scores.masked_fill(scores < kth, kNegInf);
  }
  if (o.top_p < 1.0) {
    auto [sorted, index] = scores.sort(-1, /*descending=*/false);
    auto cumulative = sorted.softmax(-1).cumsum(-1);
    auto remove_sorted = cumulative <= (1 - o.top_p);
    // The best min_keep tokens stay (HF; also guards the best token against cumsum rounding below 1).
    const auto keep = std::min(min_keep, remove_sorted.size(-1));
    remove_sorted.narrow(-1, remove_sorted.size(-1) - keep, keep).fill_(false);
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
  if (options.num_beams > 1) return beam_decode(model, ids, mask, torch::Tensor(), options, r);
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
  if (options.num_beams > 1) return beam_decode(model, ids, mask, embeds, options, r);
  return decode(model, ids, mask, embeds, options, r);
}

}  // namespace cb
