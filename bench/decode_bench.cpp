#include "bench/decode_bench.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "bench/kernel_bench.h"
#include "bench/timing.h"
#include "models/generation.h"

namespace cb::bench {

torch::Tensor decode_prompt_ids(int64_t batch_size, int64_t prompt_len) {
  auto i = torch::arange(prompt_len, torch::kLong);
  return (3 + (17 * i + 5).remainder(997)).unsqueeze(0).expand({batch_size, prompt_len}).contiguous();
}

LlamaForCausalLM build_decode_model(const Workload& w) {
  const auto cfg = w.model_config(1);
  torch::manual_seed(w.seed);
  LlamaForCausalLM model(cfg.llama, LlamaStorage::from_precision(cfg.llama_precision));
  model->eval();
  model->to(w.device);
  return model;
}

DecodeRun greedy_decode(LlamaForCausalLM& model, const torch::Tensor& prompt_ids, int64_t new_tokens,
                        std::unique_ptr<OpProfile>* step_ops) {
  c10::InferenceMode inference;  // as generate() runs
  using clock = std::chrono::steady_clock;
  const int64_t B = prompt_ids.size(0), P = prompt_ids.size(1);
  const auto device = prompt_ids.device();
  const auto long_opts = torch::dtype(torch::kLong).device(device);
  DecodeRun run;
  LlamaKVCache cache;

  const double c0 = process_cpu_seconds();
  const auto t0 = clock::now();
  LlamaInputs prefill;
  prefill.inputs_embeds = model->embed(prompt_ids);  // generate(inputs_embeds=...) as ChatBridge calls it
  prefill.attention_mask = torch::ones({B, P}, long_opts);
  prefill.position_ids = torch::arange(P, long_opts).unsqueeze(0).expand({B, P});
  prefill.cache = &cache;
  auto logits = model->forward(prefill).logits;      // [B,P,V]
  auto next = greedy_pick(logits.select(1, P - 1));  // [B]
  sync_device(device);
  const auto t1 = clock::now();
  const double c1 = process_cpu_seconds();
  run.prefill_logits_shape = logits.sizes().vec();

  if (step_ops) *step_ops = std::make_unique<OpProfile>();
  auto ids = torch::cat({prompt_ids, next.unsqueeze(1)}, 1);
  auto mask = torch::ones({B, P + 1}, long_opts);
  for (int64_t step = 1; step < new_tokens + 1; ++step) {
    const int64_t len = ids.size(1);
    LlamaInputs in;
    in.input_ids = next.unsqueeze(1);  // [B,1]
    in.attention_mask = mask;          // [B, cached + 1]
    in.position_ids = torch::full({B, 1}, len - 1, long_opts);
    in.cache = &cache;
    next = greedy_pick(model->forward(in).logits.select(1, 0));
    ids = torch::cat({ids, next.unsqueeze(1)}, 1);
    mask = torch::cat({mask, torch::ones({B, 1}, long_opts)}, 1);
    if (step == 1) run.step_input_shape = in.input_ids.sizes().vec();
  }
  sync_device(device);
  const auto t2 = clock::now();
  const double c2 = process_cpu_seconds();
  run.prefill_cpu_s = c1 - c0;
  run.decode_cpu_s = c2 - c1;
  run.prefill_s = std::chrono::duration<double>(t1 - t0).count();
  run.decode_s = std::chrono::duration<double>(t2 - t1).count();
  run.sequences = ids.cpu();
  run.final_cache_length = cache.length();
  return run;
}

GeneratePrefill generate_prefill(LlamaForCausalLM& model, const torch::Tensor& prompt_ids) {
  c10::InferenceMode inference;
  const auto mask = torch::ones(prompt_ids.sizes(), torch::dtype(torch::kLong).device(prompt_ids.device()));
  LlamaKVCache cache;
  const auto t0 = std::chrono::steady_clock::now();
  GeneratePrefill out;
  out.next = greedy_pick(next_logits(model, prompt_ids, mask, model->embed(prompt_ids), /*step=*/0, &cache));  // [B]
  sync_device(prompt_ids.device());
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

int64_t weight_bytes_per_token(LlamaForCausalLM& model) {
  int64_t bytes = 0;
  auto count = [&](const std::string& name, const torch::Tensor& t) {
    const int64_t n = t.numel() * int64_t(t.element_size());
    bytes += name.ends_with("embed_tokens.weight") ? n / t.size(0) : n;
  };
  for (const auto& item : model->named_parameters()) count(item.key(), item.value());
  for (const auto& item : model->named_buffers()) count(item.key(), item.value());
  return bytes;
}

nlohmann::json run_decode(const Workload& w, int profile_top) {
  const auto& d = w.decode;
  const auto precision = w.model_config(1).llama_precision;
  spdlog::info("decode: building the LLaMA ({})", precision);
  auto model = build_decode_model(w);
  const auto prompt = decode_prompt_ids(d.batch_size, d.prompt_len).to(w.device);
  spdlog::info("decode: {} warm-up + {} timed generations, prompt {}x{}, {} new tokens", d.warmup_runs, d.runs,
               d.batch_size, d.prompt_len, d.new_tokens);
  for (int64_t i = 0; i < d.warmup_runs; ++i) greedy_decode(model, prompt, d.new_tokens);
  // The model and its decode, before the bandwidth readings' 1 GB buffer raises the process's peak.
  const double rss_model = peak_rss_mb();
  Timings prefill, decode, prefill_generate;
  // The read bandwidth right after each run's decode: other tenants move it by 1.5x within a minute,
  // so each run's share of the bound is taken against its own neighbour.
  std::vector<double> bandwidths;
  DecodeRun last;
  for (int64_t i = 0; i < d.runs; ++i) {
    last = greedy_decode(model, prompt, d.new_tokens);
    if (w.device.is_cpu()) bandwidths.push_back(read_bandwidth(int64_t{1} << 30, 3));
    prefill.seconds.push_back(last.prefill_s);
    prefill.cpu_seconds.push_back(last.prefill_cpu_s);
    decode.seconds.push_back(last.decode_s);
    decode.cpu_seconds.push_back(last.decode_cpu_s);
    prefill_generate.seconds.push_back(generate_prefill(model, prompt).seconds);
  }
  // The generated tokens of a run (also shows that every run decoded the same thing).
  auto generated = last.sequences.narrow(1, d.prompt_len, d.new_tokens + 1)[0];
  nlohmann::json out = {{"prefill", prefill.to_json()},
                        {"prefill_generate", prefill_generate.to_json()},
                        {"decode", decode.to_json()},
                        {"llama_precision", precision},
                        {"prompt_shape", prompt.sizes().vec()},
                        {"prefill_logits_shape", last.prefill_logits_shape},
                        {"step_input_shape", last.step_input_shape},
                        {"new_tokens", d.new_tokens},
                        {"final_cache_length", last.final_cache_length},
                        {"generated_row0", std::vector<int64_t>(generated.data_ptr<int64_t>(),
                                                                generated.data_ptr<int64_t>() + generated.numel())},
                        {"peak_rss_mb_model", rss_model},
                        {"peak_rss_mb_after", peak_rss_mb()}};
  if (profile_top > 0) {
    std::unique_ptr<OpProfile> ops;
    const auto run = greedy_decode(model, prompt, d.new_tokens, &ops);
    out["op_profile"] = ops->to_json(size_t(profile_top));
    out["op_profile_decode_s"] = run.decode_s;  // the profiled steps' wall time, ops and kernels together
    ops.reset();                                // one profile at a time
    OpProfile prefill_ops;  // generate()'s prefill: the prompt's forward and the last position's logits
    out["op_profile_prefill_s"] = generate_prefill(model, prompt).seconds;
    out["op_profile_prefill"] = prefill_ops.to_json(size_t(profile_top));
  }
  // The memory-bound limit of a step: every weight read once per token (batch rows share the reads).
  const int64_t bytes = weight_bytes_per_token(model);
  out["weight_bytes_per_token"] = bytes;
  if (w.device.is_cpu()) {
    std::vector<double> pct;  // per run: tok/s ÷ the bound its bandwidth gives
    for (size_t i = 0; i < bandwidths.size(); ++i)
      pct.push_back(100.0 * double(d.new_tokens) / decode.seconds[i] / (bandwidths[i] / double(bytes)));
    for (double b : bandwidths) out["read_bandwidth_gb_s_runs"].push_back(b / 1e9);
    out["pct_of_bound_runs"] = pct;
    out["pct_of_bound"] = median(pct);
    const double bandwidth = median(bandwidths);
    out["read_bandwidth_gb_s"] = bandwidth / 1e9;
    out["bound_tok_s"] = bandwidth / double(bytes) * double(d.batch_size);
  }
  return out;
}

}  // namespace cb::bench
