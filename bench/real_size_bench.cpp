#include "bench/real_size_bench.h"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <chrono>
#include <fstream>

#include "bench/decode_bench.h"
#include "bench/kernel_bench.h"
#include "bench/timing.h"
#include "framework/checkpoint/atomic_file.h"
#include "framework/checkpoint/convert.h"
#include "framework/checkpoint/safetensors.h"
#include "framework/error.h"
#include "models/llama_hf.h"

namespace cb::bench {
namespace {

using kernels::WeightFormat;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

LlamaConfig real_shape(const std::string& shape, int64_t layers) {
  LlamaConfig c;  // LLaMA-7B's defaults
  if (shape == "13b") {
    c.hidden_size = 5120;
    c.intermediate_size = 13824;
    c.num_hidden_layers = 40;
    c.num_attention_heads = c.num_key_value_heads = 40;
  } else if (shape != "7b") {
    fail("real-size --shape '{}': expected 7b or 13b", shape);
  }
  if (layers < 0 || layers > c.num_hidden_layers)
    fail("real-size --layers {}: expected 1 to {} for {} (0: all)", layers, c.num_hidden_layers, shape);
  if (layers > 0) c.num_hidden_layers = layers;
  return c;
}

// Random weights of one tensor: uniform in ±0.02·√3 (std 0.02, HF's initializer_range), in `spec`'s storage.
torch::Tensor random_tensor(const TensorSpec& spec, int64_t rows, int64_t cols) {
  if (spec.name.find("layernorm") != std::string::npos || spec.name == "model.norm.weight")
    return torch::ones(spec.shape, spec.dtype);
  if (!spec.packed) return (torch::rand(spec.shape) * 0.0693 - 0.0346).to(spec.dtype);
  auto out = torch::empty(spec.shape, torch::kUInt8);
  constexpr int64_t kRowsPerSlice = 1024;  // no fp32 copy of a whole lm_head
  for (int64_t r = 0; r < rows; r += kRowsPerSlice) {
    const auto n = std::min(kRowsPerSlice, rows - r);
    out.narrow(0, r, n).copy_(kernels::pack_weight(torch::rand({n, cols}) * 0.0693 - 0.0346, *spec.packed).data);
  }
  return out;
}

// The directory chatbridge-convert --quantize would write from a real checkpoint of this shape:
// shards of about 2 GB, the linear weights in `format`, embeddings and norms 16-bit.
nlohmann::json make_directory(const LlamaConfig& c, WeightFormat format, const std::filesystem::path& dir) {
  if (std::filesystem::exists(dir)) fail("{}: exists; --make writes a new directory", dir.string());
  const auto dense = format == WeightFormat::f32    ? torch::kFloat
                     : format == WeightFormat::bf16 ? torch::kBFloat16
                                                    : torch::kHalf;
  const auto D = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  struct Planned {
    TensorSpec spec;
    int64_t rows, cols;
  };
  auto linear = [&](std::string name, int64_t rows, int64_t cols) {
    return Planned{kernels::is_block_format(format) ? TensorSpec::packed_weight(name, format, rows, cols)
                                                    : TensorSpec::dense(name, dense, {rows, cols}),
                   rows, cols};
  };
  std::vector<std::vector<Planned>> shards(1);
  uint64_t in_shard = 0;
  auto add = [&](Planned p) {
    if (in_shard + p.spec.bytes() > 2'000'000'000ull && !shards.back().empty()) shards.emplace_back(), in_shard = 0;
    in_shard += p.spec.bytes();
    shards.back().push_back(std::move(p));
  };
  add({TensorSpec::dense("model.embed_tokens.weight", dense, {V, D}), V, D});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const auto p = "model.layers." + std::to_string(l) + ".";
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"})
      add(linear(p + "self_attn." + proj + ".weight", D, D));
    add(linear(p + "mlp.gate_proj.weight", I, D));
    add(linear(p + "mlp.up_proj.weight", I, D));
    add(linear(p + "mlp.down_proj.weight", D, I));
    add({TensorSpec::dense(p + "input_layernorm.weight", dense, {D}), 1, D});
    add({TensorSpec::dense(p + "post_attention_layernorm.weight", dense, {D}), 1, D});
  }
  add({TensorSpec::dense("model.norm.weight", dense, {D}), 1, D});
  add(linear("lm_head.weight", V, D));

  uint64_t planned = 0;
  for (const auto& shard : shards)
    for (const auto& p : shard) planned += p.spec.bytes();
  // Loading it copies every byte into memory (mmap aside), so a directory that cannot be run is not written.
  const double ram = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  if (double(planned) > 0.9 * ram)
    fail(
        "real-size --make: {} in {} is {:.1f} GB, more than 90 % of this machine's {:.1f} GB; use a smaller "
        "format or fewer --layers",
        kernels::weight_format_name(format), dir.string(), planned / 1e9, ram / 1e9);
  std::filesystem::create_directories(dir);
  const auto t0 = Clock::now();
  uint64_t total = 0;
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    const auto name = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
    std::vector<TensorSpec> plan;
    for (const auto& p : shards[i]) plan.push_back(p.spec);
    SafetensorsWriter w(dir / name, plan, {{"format", "pt"}});
    for (const auto& p : shards[i]) {
      w.write(p.spec.name, random_tensor(p.spec, p.rows, p.cols));
      weight_map[p.spec.name] = name;
    }
    w.commit();
    total += w.data_bytes();
    spdlog::info("{}: {:.2f} GB", name, w.data_bytes() / 1e9);
  }
  atomic_write_file(dir / "model.safetensors.index.json",
                    nlohmann::json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(1));
  nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                           {"model_type", "llama"},
                           {"hidden_size", D},
                           {"intermediate_size", I},
                           {"num_hidden_layers", c.num_hidden_layers},
                           {"num_attention_heads", c.num_attention_heads},
                           {"vocab_size", V},
                           {"rms_norm_eps", c.rms_norm_eps},
                           {"max_position_embeddings", c.max_position_embeddings},
                           {"hidden_act", "silu"},
                           {"torch_dtype", dense == torch::kFloat      ? "float32"
                                           : dense == torch::kBFloat16 ? "bfloat16"
                                                                       : "float16"}};
  if (kernels::is_block_format(format))
    config["quantization_config"] = {{"quant_method", "chatbridge"},
                                     {"weight_format", kernels::weight_format_name(format)},
                                     {"block_size", kernels::kQuantBlock}};
  atomic_write_file(dir / "config.json", config.dump(2));
  return {{"written_gb", total / 1e9}, {"write_s", seconds_since(t0)}, {"shards", shards.size()}};
}

}  // namespace

nlohmann::json run_real_size(const RealSizeOptions& opts) {
  const auto format = kernels::parse_weight_format(opts.format, "real-size --format");
  if (opts.dir.empty()) fail("real-size: --dir is required");
  nlohmann::json out = {
      {"shape", opts.shape}, {"format", opts.format}, {"dir", opts.dir.string()}, {"mmap", opts.mmap}};
  if (opts.make) {
    const auto config = real_shape(opts.shape, opts.layers);
    out["layers"] = config.num_hidden_layers;
    out.update(make_directory(config, format, opts.dir));
  } else {
    if (opts.layers) fail("real-size --layers: only with --make (the directory's config.json holds its layers)");
    if (const auto stored = hf_weight_format(opts.dir); stored && *stored != format)
      fail("{}: holds {} weights, not {}", opts.dir.string(), kernels::weight_format_name(*stored), opts.format);
    const double rss_before = peak_rss_mb();
    auto t0 = Clock::now();
    auto model = load_llama_hf(opts.dir, opts.format, opts.mmap);
    out["load_s"] = seconds_since(t0);
    out["peak_rss_gb_after_load"] = peak_rss_mb() * 1048576 / 1e9;
    double weights = 0;
    for (const auto& t : model->parameters()) weights += t.numel() * t.element_size();
    out["weights_gb"] = weights / 1e9;
    out["layers"] = model->config().num_hidden_layers;
    const auto prompt = decode_prompt_ids(1, opts.prompt_tokens);
    // Each generation, then the read bandwidth right after it: its share of the bound against its own neighbour.
    const int64_t bytes = weight_bytes_per_token(model);
    std::vector<double> prefill, decode, decode_cpu, bandwidth, tok_s, pct;
    double peak_rss_gb = 0;
    for (int64_t r = 0; r < opts.runs; ++r) {
      const auto run = greedy_decode(model, prompt, opts.new_tokens);
      peak_rss_gb = peak_rss_mb() * 1048576 / 1e9;  // before the reading's 1 GiB buffer raises the peak
      prefill.push_back(run.prefill_s);
      decode.push_back(run.decode_s);
      decode_cpu.push_back(run.decode_cpu_s);
      tok_s.push_back(double(opts.new_tokens) / run.decode_s);
      bandwidth.push_back(read_bandwidth(int64_t{1} << 30, 3));
      pct.push_back(100.0 * tok_s.back() / (bandwidth.back() / double(bytes)));
      spdlog::info("real-size: run {}/{}: {:.2f} tok/s, read bandwidth {:.1f} GB/s, {:.1f} % of the bound", r + 1,
                   opts.runs, tok_s.back(), bandwidth.back() / 1e9, pct.back());
    }
    out["prefill_s"] = median(prefill);
    out["prefill_generate_s"] = generate_prefill(model, prompt).seconds;
    out["decode_s"] = median(decode);
    out["decode_tok_s"] = median(tok_s);
    out["decode_tok_s_runs"] = tok_s;
    out["decode_cpu_s"] = median(decode_cpu);
    out["weight_gb_per_token"] = double(bytes) / 1e9;
    out["read_bandwidth_gb_s"] = median(bandwidth) / 1e9;
    for (double b : bandwidth) out["read_bandwidth_gb_s_runs"].push_back(b / 1e9);
    out["bound_tok_s"] = median(bandwidth) / double(bytes);
    out["pct_of_bound"] = median(pct);
    out["pct_of_bound_runs"] = pct;
    out["peak_rss_gb"] = peak_rss_gb;
    out["rss_before_load_gb"] = rss_before * 1048576 / 1e9;
  }
  out["machine"] = machine_info();
  return out;
}

}  // namespace cb::bench
