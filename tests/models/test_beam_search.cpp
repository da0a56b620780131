// Beam search / beam sampling and sampling frequencies of generate (HF transformers 4.28 semantics):
// hand-checked cases on a "Markov" LLaMA whose next-token logits depend only on the current token
// (a table we choose), exhaustive-search equality when nothing can be pruned, and consistency of
// cache / batching / embeddings paths on a random LLaMA.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <vector>

#include "framework/error.h"
#include "models/generation.h"
#include "models/llama.h"

namespace {

constexpr int64_t kPad = 0, kEos = 1, kA = 2, kB = 3, kC = 4;

// A one-layer LLaMA that is a first-order Markov chain: the layer's output projections are zero (the
// residual stream is the embedding), the embeddings are one-hot and the final norm undoes RMSNorm's
// scale, so logits(next | current = i) = table[i]. Hidden size V+1 keeps the head dim even.
cb::LlamaForCausalLM markov_model(const std::vector<std::vector<double>>& table) {
  const auto V = static_cast<int64_t>(table.size());
  cb::LlamaConfig c;
  c.vocab_size = V;
  c.hidden_size = V % 2 == 0 ? V : V + 1;
  c.intermediate_size = 4;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 1;
  c.num_key_value_heads = 1;
  c.rms_norm_eps = 0;
  c.max_position_embeddings = 32;
  c.pad_token_id = kPad;
  c.bos_token_id = std::nullopt;
  c.eos_token_id = kEos;
  cb::LlamaForCausalLM model(c);
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.normal_(0, 0.5);
  auto& layer = model->model->layers[0]->as<cb::LlamaDecoderLayerImpl>()->self_attn;
  layer->o_proj->weight.zero_();
  model->model->layers[0]->as<cb::LlamaDecoderLayerImpl>()->mlp->down_proj->weight.zero_();
  model->model->embed_tokens->weight.zero_();
  for (int64_t i = 0; i < V; ++i) model->model->embed_tokens->weight[i][i] = 1;
  model->model->norm->weight.fill_(1.0 / std::sqrt(static_cast<double>(c.hidden_size)));
  model->lm_head->weight.zero_();
  for (int64_t i = 0; i < V; ++i)
    for (int64_t j = 0; j < V; ++j) model->lm_head->weight[j][i] = table[i][j];
  model->eval();
  return model;
}

// Natural logs of the probabilities below; -30 stands for "never".
constexpr double kNever = -30;
double lg(double p) { return std::log(p); }

// From a: b 0.6, c 0.4. From b: eos 0.25, b 0.4, c 0.35. From c: eos 0.9, b 0.05, c 0.05.
std::vector<std::vector<double>> abc_table() {
  std::vector<double> never(5, kNever);
  return {never,
          never,
          {kNever, kNever, kNever, lg(0.6), lg(0.4)},
          {kNever, lg(0.25), kNever, lg(0.4), lg(0.35)},
          {kNever, lg(0.9), kNever, lg(0.05), lg(0.05)}};
}

torch::Tensor ids_of(std::vector<int64_t> v) { return torch::tensor(v, torch::kLong).unsqueeze(0); }

cb::GenerateOptions beam_options(int64_t beams, double length_penalty, int64_t max_new) {
  cb::GenerateOptions o;
  o.num_beams = beams;
  o.length_penalty = length_penalty;
  o.max_new_tokens = max_new;
  return o;
}

// The 2-beam search over 3 steps from prompt [a], worked by hand (logs: .6 -0.511, .4 -0.916,
// .25 -1.386, .35 -1.050, .9 -0.105, .05 -2.996):
// step 0: beams a·b -0.511, a·c -0.916.
// step 1: a·c·eos -1.021 is the best candidate -> hypothesis [a c] (length 2); beams a·b·b -1.427,
//         a·b·c -1.561.
// step 2: a·b·c·eos -1.666 -> hypothesis [a b c] (length 3); beams a·b·b·b -2.343, a·b·b·c -2.477
//         (length 4 = max_length, open).
// Scores sum/len^lp: lp 1: [a c] -0.511, [a b c] -0.555, open -0.586/-0.619 -> [a c] + eos.
// lp 3: [a c] -0.128, [a b c] -0.062, a·b·b·b -0.0366, a·b·b·c -0.0387 -> a b b b.
// lp 3 with early_stopping: done once 2 hypotheses exist (step 2), the open beams never compete ->
// [a b c] + eos.  Greedy: a b b b.
TEST_CASE("beam search: hand-checked 2-beam case, length penalty and early stopping decide the winner") {
  auto model = markov_model(abc_table());
  const auto prompt = ids_of({kA});

  auto o = beam_options(2, 1.0, 3);
  auto lp1 = cb::generate(model, prompt, torch::Tensor(), o);
  CHECK(torch::equal(lp1.sequences, ids_of({kA, kC, kEos})));
  CHECK(lp1.new_tokens == std::vector<int64_t>{2});  // c and the eos that ended it
  CHECK(lp1.sequence_scores[0].item<double>() == Approx((lg(0.4) + lg(0.9)) / 2).epsilon(1e-5));

  o.length_penalty = 3.0;
  auto lp3 = cb::generate(model, prompt, torch::Tensor(), o);
  CHECK(torch::equal(lp3.sequences, ids_of({kA, kB, kB, kB})));
  CHECK(lp3.new_tokens == std::vector<int64_t>{3});
  CHECK(lp3.sequence_scores[0].item<double>() == Approx((lg(0.6) + 2 * lg(0.4)) / 64).epsilon(1e-5));

  o.early_stopping = true;
  CHECK(torch::equal(cb::generate(model, prompt, torch::Tensor(), o).sequences, ids_of({kA, kB, kC, kEos})));

  auto greedy = beam_options(1, 1.0, 3);
  const auto greedy_out = cb::generate(model, prompt, torch::Tensor(), greedy);
  CHECK(torch::equal(greedy_out.sequences, ids_of({kA, kB, kB, kB})));
  CHECK(greedy_out.new_tokens == std::vector<int64_t>{3});
}

TEST_CASE("beam search: a batch pads the shorter winner with eos then pad, min_new_tokens delays eos") {
  auto model = markov_model(abc_table());
  // Row 1 starts from c: c·eos at step 0 gives the hypothesis [c] (length 1, score -0.105), which nothing
  // beats (every other path of row 1 passes a 0.05 step).
  auto prompts = torch::tensor({kA, kC}, torch::kLong).unsqueeze(1);
  auto o = beam_options(2, 1.0, 3);
  const auto batch = cb::generate(model, prompts, torch::Tensor(), o);
  // width = longest returned hypothesis (2) + 1
  CHECK(torch::equal(batch.sequences, torch::tensor({kA, kC, kEos, kC, kEos, kPad}, torch::kLong).view({2, 3})));
  CHECK(batch.new_tokens == std::vector<int64_t>{2, 1});  // the pad is not generated

  // min_new_tokens 2: eos is impossible at the first two steps. Beams a·b·b -1.427, a·b·c -1.561 after
  // step 1; at step 2 a·b·c·eos (-1.666/3) becomes the hypothesis that beats the open beams a·b·b·b
  // (-2.343/4) and a·b·b·c (-2.477/4) at lp 1.
  o.min_new_tokens = 2;
  CHECK(torch::equal(cb::generate(model, ids_of({kA}), torch::Tensor(), o).sequences, ids_of({kA, kB, kC, kEos})));
}

TEST_CASE("beam search: the repetition penalty acts on log-probabilities (after log_softmax)") {
  // From a: b 0.5005, c 0.4995 (b slightly ahead); from b and c: eos 0.999. The prompt [b a] contains b.
  std::vector<double> never(5, kNever);
  auto table = std::vector<std::vector<double>>{never,
                                                never,
                                                {kNever, kNever, kNever, lg(0.5005), lg(0.4995)},
                                                {kNever, lg(0.999), kNever, kNever, kNever},
                                                {kNever, lg(0.999), kNever, kNever, kNever}};
  auto model = markov_model(table);
  auto o = beam_options(2, 0.0, 2);
  CHECK(torch::equal(cb::generate(model, ids_of({kB, kA}), torch::Tensor(), o).sequences, ids_of({kB, kA, kB, kEos})));
  // Penalty 1.5 multiplies b's log-prob -0.692 to -1.039, below c's -0.694. Penalising the raw logits
  // (also negative here) would pick c as well, but c's log-prob would then be log_softmax's -0.54:
  // the winner's score (length penalty 0: the plain sum; the eos step after c has log-prob ~0) tells
  // the two orders apart.
  o.repetition_penalty = 1.5;
  auto out = cb::generate(model, ids_of({kB, kA}), torch::Tensor(), o);
  CHECK(torch::equal(out.sequences, ids_of({kB, kA, kC, kEos})));
  CHECK(out.sequence_scores[0].item<double>() == Approx(lg(0.4995)).epsilon(1e-4));  // + eos, log-prob ~0
}

// Best continuation by exhaustive enumeration (HF's scoring when nothing is pruned): sequences ending
// with eos score at their length before the eos; sequences of max_new tokens without eos at full
// length. Per-step log-probs are processed as beam search does (log_softmax, repetition penalty,
// min_new_tokens) and summed in fp32.
std::pair<std::vector<int64_t>, double> exhaustive_best(cb::LlamaForCausalLM& model, const std::vector<int64_t>& prompt,
                                                        const cb::GenerateOptions& o) {
  torch::NoGradGuard no_grad;
  const auto P = static_cast<int64_t>(prompt.size());
  std::vector<int64_t> best;
  double best_score = -INFINITY;
  std::function<void(std::vector<int64_t>&, float)> walk = [&](std::vector<int64_t>& gen, float sum) {
    std::vector<int64_t> all = prompt;
    all.insert(all.end(), gen.begin(), gen.end());
    cb::LlamaInputs in;
    in.input_ids = ids_of(all);
    auto logp = model->forward(in).logits.select(1, -1).to(torch::kFloat).log_softmax(-1);
    if (o.repetition_penalty != 1.0) logp = cb::apply_repetition_penalty(logp, in.input_ids, o.repetition_penalty);
    if (static_cast<int64_t>(gen.size()) < o.min_new_tokens) logp[0][kEos] = -INFINITY;
    const auto n = static_cast<int64_t>(gen.size());
    for (int64_t t = 0; t < logp.size(1); ++t) {
      const float s = sum + logp[0][t].item<float>();
      if (!std::isfinite(s)) continue;
      gen.push_back(t);
      if (t == kEos || n + 1 == o.max_new_tokens) {
        const auto len = t == kEos ? P + n : P + n + 1;
        const double score = s / std::pow(static_cast<double>(len), o.length_penalty);
        if (score > best_score) best_score = score, best = gen;
      } else {
        walk(gen, s);
      }
      gen.pop_back();
    }
  };
  std::vector<int64_t> gen;
  walk(gen, 0.0f);
  return {best, best_score};
}

cb::LlamaForCausalLM random_model(int64_t vocab, uint64_t seed) {
  cb::LlamaConfig c;
  c.vocab_size = vocab;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.max_position_embeddings = 32;
  c.pad_token_id = kPad;
  c.eos_token_id = kEos;
  torch::manual_seed(seed);
  cb::LlamaForCausalLM model(c);
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.normal_(0, 0.4);
  model->lm_head->weight.mul_(3);
  model->eval();
  return model;
}

TEST_CASE("beam search: with enough beams to prune nothing it returns the exhaustive optimum") {
  // V = 5, 3 steps: at most 4^2 live beams x 5 tokens = 80 candidates; 125 beams keep every eos
  // candidate in the top num_beams and hold more hypotheses than can finish early.
  const int64_t V = 5, steps = 3, beams = 125;
  for (uint64_t seed : {1, 2, 3}) {
    auto model = random_model(V, seed);
    const std::vector<int64_t> prompt = {2, 4, 3};
    for (double lp : {0.0, 1.0, 2.5, -1.0}) {
      for (double rep : {1.0, 1.7}) {
        auto o = beam_options(beams, lp, steps);
        o.repetition_penalty = rep;
        o.min_new_tokens = seed == 3 ? 1 : 0;
        auto [best, score] = exhaustive_best(model, prompt, o);
        auto out = cb::generate(model, ids_of(prompt), torch::Tensor(), o);
        std::vector<int64_t> got;
        for (int64_t t = static_cast<int64_t>(prompt.size()); t < out.sequences.size(1); ++t)
          got.push_back(out.sequences[0][t].item<int64_t>());
        INFO("seed " << seed << " length_penalty " << lp << " repetition_penalty " << rep);
        CHECK(got == best);
        CHECK(out.sequence_scores[0].item<double>() == Approx(score).epsilon(1e-5));
      }
    }
  }
}

TEST_CASE("beam search: cache, batching with left padding and embeddings agree") {
  auto model = random_model(40, 5);
  auto o = beam_options(3, 1.0, 6);
  o.eos_token_id = 7;
  auto a = ids_of({5, 9, 12, 30, 8});
  auto b = ids_of({21, 3, 17});
  auto ra = cb::generate(model, a, torch::Tensor(), o);
  auto rb = cb::generate(model, b, torch::Tensor(), o);

  auto no_cache = o;
  no_cache.use_cache = false;
  CHECK(torch::equal(cb::generate(model, a, torch::Tensor(), no_cache).sequences, ra.sequences));

  // Left-padded batch: row 1 is b behind two pads.
  auto batch = torch::tensor(std::vector<int64_t>{5, 9, 12, 30, 8, kPad, kPad, 21, 3, 17}).view({2, 5});
  auto mask = (batch != kPad).to(torch::kLong);
  mask[0].fill_(1);
  auto rab = cb::generate(model, batch, mask, o);
  auto gen_of = [](const torch::Tensor& seq, int64_t from) {
    std::vector<int64_t> v;
    for (int64_t t = from; t < seq.size(0); ++t) v.push_back(seq[t].item<int64_t>());
    while (!v.empty() && v.back() == kPad) v.pop_back();
    return v;
  };
  CHECK(gen_of(rab.sequences[0], 5) == gen_of(ra.sequences[0], 5));
  CHECK(gen_of(rab.sequences[1], 5) == gen_of(rb.sequences[0], 3));
  CHECK(rab.sequence_scores[0].item<double>() == Approx(ra.sequence_scores[0].item<double>()).epsilon(1e-4));
  // The length of a hypothesis counts the row, left pads included (HF's hyp.shape[-1]): same sum,
  // divided by 5 + n instead of 3 + n.
  const auto gb = gen_of(rb.sequences[0], 3);
  const auto n = static_cast<double>(gb.size()) - (gb.back() == 7 ? 1 : 0);
  CHECK(rab.sequence_scores[1].item<double>() * (5 + n) ==
        Approx(rb.sequence_scores[0].item<double>() * (3 + n)).epsilon(1e-4));

  // From embeddings the rows start with the bos placeholder (length 1 + generated, so with length
  // penalty 0 the scores and choices equal those from ids).
  o.length_penalty = 0;
  auto from_ids = cb::generate(model, a, torch::Tensor(), o);
  auto from_embeds = cb::generate_from_embeds(model, model->embed(a), torch::Tensor(), o);
  CHECK(gen_of(from_embeds.sequences[0], 1) == gen_of(from_ids.sequences[0], 5));
  CHECK(from_embeds.sequences[0][0].item<int64_t>() == model->config().bos_token_id.value());
  auto embeds_no_cache = o;
  embeds_no_cache.use_cache = false;
  CHECK(torch::equal(cb::generate_from_embeds(model, model->embed(a), torch::Tensor(), embeds_no_cache).sequences,
                     from_embeds.sequences));
}

TEST_CASE("beam search: a stop sequence on row 0 ends the search, eos follows the open winner") {
  auto model = markov_model(abc_table());
  auto o = beam_options(2, 3.0, 3);  // unstopped winner: a b b b
  o.stop_sequences = {{kB, kB}};     // row 0 (the best beam) ends with b b after step 1
  const auto out = cb::generate(model, ids_of({kA}), torch::Tensor(), o);
  // Stopped at cur_len 3 < max_length 4: open beams a·b·b (-1.427/27) and a·b·c (-1.561/27) compete
  // with [a c] (-1.021/8): a b b wins and, shorter than max_length, gets eos (HF's finalize).
  CHECK(torch::equal(out.sequences, ids_of({kA, kB, kB, kEos})));
  CHECK(out.new_tokens == std::vector<int64_t>{2});  // finalize's eos was not generated
  o.on_token = [](const torch::Tensor&) { return false; };
  CHECK_THROWS_AS(cb::generate(model, ids_of({kA}), torch::Tensor(), o), cb::Error);
}

TEST_CASE("beam sampling: warpers keep two tokens, a near-deterministic chain is followed, seeds reproduce") {
  cb::GenerateOptions w;
  w.num_beams = 2;
  w.top_k = 1;  // HF raises top_k to min_tokens_to_keep = 2 for beams
  auto kept = torch::isfinite(cb::apply_sampling_warpers(torch::tensor({1.0f, 3.0f, 2.0f, 0.0f}).unsqueeze(0), w));
  CHECK(torch::equal(kept, torch::tensor({false, true, true, false}).unsqueeze(0)));
  w.top_k = 0;
  w.top_p = 1e-9;  // top-p keeps the best two too
  kept = torch::isfinite(cb::apply_sampling_warpers(torch::tensor({1.0f, 3.0f, 2.0f, 0.0f}).unsqueeze(0), w));
  CHECK(torch::equal(kept, torch::tensor({false, true, true, false}).unsqueeze(0)));

  // a -> b -> c -> eos with probability ~1 each: every sampled beam set contains that path.
  std::vector<double> never(5, kNever);
  auto chain = markov_model({never,
                             never,
                             {kNever, kNever, kNever, 0.0, -12.0},
                             {kNever, -12.0, kNever, -12.0, 0.0},
                             {kNever, 0.0, kNever, -12.0, -12.0}});
  auto o = beam_options(2, 1.0, 5);
  o.do_sample = true;
  o.top_k = 0;
  torch::manual_seed(11);
  auto s1 = cb::generate(chain, ids_of({kA}), torch::Tensor(), o).sequences;
  CHECK(torch::equal(s1, ids_of({kA, kB, kC, kEos})));
  auto model = random_model(40, 9);
  o.top_k = 50;
  o.temperature = 0.7;
  o.eos_token_id = 7;
  torch::manual_seed(5);
  auto r1 = cb::generate(model, ids_of({4, 8, 15}), torch::Tensor(), o).sequences;
  torch::manual_seed(5);
  auto r2 = cb::generate(model, ids_of({4, 8, 15}), torch::Tensor(), o).sequences;
  CHECK(torch::equal(r1, r2));
}

TEST_CASE("sampling: first-token frequencies follow the warped distribution") {
  // From a: logits log(0.5, 0.3, 0.15, 0.05) over eos, b, c, and pad (pad stands in for a 4th token).
  std::vector<double> never(5, kNever);
  auto model = markov_model({never, never, {lg(0.05), lg(0.5), kNever, lg(0.3), lg(0.15)}, never, never});
  const int64_t N = 20000;
  auto prompts = torch::full({N, 1}, kA, torch::kLong);
  auto freq = [&](cb::GenerateOptions o) {
    o.do_sample = true;
    o.max_new_tokens = 1;
    torch::manual_seed(123);
    auto first = cb::generate(model, prompts, torch::Tensor(), o).sequences.select(1, 1);
    return torch::bincount(first, {}, 5).to(torch::kDouble) / N;  // over pad, eos, a, b, c
  };
  auto near = [](const torch::Tensor& f, std::vector<double> p) {
    for (size_t i = 0; i < p.size(); ++i) {
      INFO("token " << i << " frequency " << f[i].item<double>() << " expected " << p[i]);
      CHECK(std::abs(f[i].item<double>() - p[i]) < 0.015);  // > 4 standard deviations at N = 20000
    }
  };
  cb::GenerateOptions o;
  o.top_k = 0;
  near(freq(o), {0.05, 0.5, 0, 0.3, 0.15});
  o.temperature = 2.0;  // p^(1/2) renormalised
  const double z = std::sqrt(0.05) + std::sqrt(0.5) + std::sqrt(0.3) + std::sqrt(0.15);
  near(freq(o), {std::sqrt(0.05) / z, std::sqrt(0.5) / z, 0, std::sqrt(0.3) / z, std::sqrt(0.15) / z});
  o.temperature = 1.0;
  o.top_k = 2;  // eos and b, renormalised
  near(freq(o), {0, 0.5 / 0.8, 0, 0.3 / 0.8, 0});
  o.top_k = 0;
  o.top_p = 0.9;  // ascending cumsum 0.05, 0.2, 0.5, 1: only the 0.05 token goes
  near(freq(o), {0, 0.5 / 0.95, 0, 0.3 / 0.95, 0.15 / 0.95});
}

}  // namespace
