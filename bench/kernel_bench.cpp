#include "bench/kernel_bench.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>

#include "bench/timing.h"
#include "framework/kernels/linear.h"
#include "framework/kernels/row_threads.h"
#include "framework/kernels/weight_memory.h"

namespace cb::bench {
namespace {

using kernels::LinearKernel;
using kernels::PackedWeight;
using kernels::WeightFormat;

// One kind of linear layer of the LLaMA: W [rows, cols], `count` of them per token.
struct Shape {
  std::string name;
  int64_t rows, cols, count;
};

std::vector<Shape> llama_linears(const LlamaConfig& c) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, L = c.num_hidden_layers;
  const int64_t kv = c.num_key_value_heads * c.head_dim();
  return {{"q_proj+o_proj", H, H, 2 * L},
          {"k_proj+v_proj", kv, H, 2 * L},
          {"gate_proj+up_proj", I, H, 2 * L},
          {"down_proj", H, I, L},
          {"lm_head", c.vocab_size, H, 1}};
}

// Every linear weight of one token, in one format (random, scaled as a trained LLaMA's: ~0.02).
struct WeightSet {
  std::vector<PackedWeight> weights;
  std::vector<size_t> shape_of;  // index into the shapes, per weight
  int64_t bytes = 0;
};

WeightSet make_weights(const std::vector<Shape>& shapes, WeightFormat f) {
  WeightSet set;
  for (size_t s = 0; s < shapes.size(); ++s)
    for (int64_t i = 0; i < shapes[s].count; ++i) {
      auto w = kernels::pack_weight(torch::randn({shapes[s].rows, shapes[s].cols}) * 0.02, f);
      // On the 2 MB pages a model's frozen weights get, in the layout they hold.
      w.data = kernels::copy_to_weight_storage(w.data);
      if (kernels::preferred_layout(f) == kernels::BlockLayout::panels) {
        kernels::storage_to_panels(w.data, f);
        w.layout = kernels::BlockLayout::panels;
      }
      set.weights.push_back(w);
      set.shape_of.push_back(s);
      set.bytes += set.weights.back().bytes();
    }
  return set;
}

// One pass over the set: y = layer(x) for every weight, x [M, cols] (or [M, rows] for the input gradient,
// picked by width); seconds spent per shape added to
// `per_shape` (each call clocked on its own: calls take 0.1-10 ms, the clock ~20 ns).
using Layer = std::function<torch::Tensor(const torch::Tensor&, const PackedWeight&)>;
void pass(const WeightSet& set, const std::map<int64_t, torch::Tensor>& x_by_width, const Layer& layer,
          std::vector<double>* per_shape, bool by_rows = false) {
  using clock = std::chrono::steady_clock;
  for (size_t i = 0; i < set.weights.size(); ++i) {
    const auto& w = set.weights[i];
    const auto t0 = clock::now();
    layer(x_by_width.at(by_rows ? w.rows : w.cols), w);
    if (per_shape) (*per_shape)[set.shape_of[i]] += std::chrono::duration<double>(clock::now() - t0).count();
  }
}

std::map<int64_t, torch::Tensor> inputs(const std::vector<Shape>& shapes, int64_t M, bool by_rows = false,
                                        torch::Dtype dtype = torch::kFloat) {
  std::map<int64_t, torch::Tensor> x;
  for (const auto& s : shapes) {
    const int64_t width = by_rows ? s.rows : s.cols;
    x.emplace(width, torch::randn({M, width}).to(dtype));
  }
  return x;
}

// Decode: the set at M = 1, `repeats` passes: the median pass and GB/s of weights read.
nlohmann::json decode_pass(const WeightSet& set, const std::vector<Shape>& shapes, const Layer& layer, double bandwidth,
                           torch::Dtype x_dtype = torch::kFloat) {
  const auto x = inputs(shapes, 1, false, x_dtype);
  std::vector<double> per_shape(shapes.size(), 0.0);
  pass(set, x, layer, nullptr);  // warm-up
  const int repeats = 5;
  const auto t = time_repeats(0, repeats, [&] { pass(set, x, layer, &per_shape); });
  const double gb_s = double(set.bytes) / t.median() / 1e9;
  nlohmann::json by_shape;
  for (size_t s = 0; s < shapes.size(); ++s) {
    int64_t bytes = 0;
    for (size_t i = 0; i < set.weights.size(); ++i)
      if (set.shape_of[i] == s) bytes += set.weights[i].bytes();
    const double sec = per_shape[s] / repeats;
    by_shape[shapes[s].name] = {{"s", sec}, {"gb_s", double(bytes) / sec / 1e9}};
  }
  return {{"token_s", t.median()},
          {"token_s_min", t.min()},
          {"weight_bytes", set.bytes},
          {"gb_s", gb_s},
          {"pct_of_read_bandwidth", 100.0 * gb_s * 1e9 / bandwidth},
          {"bound_token_s", double(set.bytes) / bandwidth},
          {"by_shape", by_shape}};
}

// A decode pass grouped as the LLaMA calls it (models/llama.cpp): per layer q/k/v and gate/up through
// linear_shared_input (one hand-off of the threads each), against one call per weight, alternating pass
// by pass: the medians and the per-weight pass's time over the grouped one's.
nlohmann::json decode_calls(const WeightSet& set, const std::vector<Shape>& shapes, const Layer& ours,
                            LinearKernel kernel) {
  std::vector<std::vector<const PackedWeight*>> of_shape(shapes.size());  // llama_linears' order
  for (size_t i = 0; i < set.weights.size(); ++i) of_shape[set.shape_of[i]].push_back(&set.weights[i]);
  const auto& qo = of_shape[0];
  const auto& kv = of_shape[1];
  const auto& gu = of_shape[2];
  const auto& down = of_shape[3];
  const auto x = inputs(shapes, 1);
  const auto grouped = [&] {
    const auto& xh = x.at(qo[0]->cols);
    for (size_t l = 0; l < down.size(); ++l) {
      kernels::linear_shared_input(xh, {*qo[2 * l], *kv[2 * l], *kv[2 * l + 1]}, kernel);
      kernels::linear(xh, *qo[2 * l + 1], kernel);
      kernels::linear_shared_input(xh, {*gu[2 * l], *gu[2 * l + 1]}, kernel);
      kernels::linear(x.at(down[l]->cols), *down[l], kernel);
    }
    kernels::linear(xh, *of_shape[4][0], kernel);
  };
  Timings per_weight, shared;
  grouped();  // warm-up
  for (int r = 0; r < 7; ++r) {
    per_weight.seconds.push_back(time_repeats(0, 1, [&] { pass(set, x, ours, nullptr); }).median());
    shared.seconds.push_back(time_repeats(0, 1, grouped).median());
  }
  return {{"per_weight_token_s", per_weight.median()},
          {"shared_input_token_s", shared.median()},
          {"per_weight_over_shared", per_weight.median() / shared.median()}};
}

double median_pass(const WeightSet& set, const std::map<int64_t, torch::Tensor>& x, const Layer& layer, int repeats,
                   bool by_rows = false) {
  return time_repeats(1, repeats, [&] { pass(set, x, layer, nullptr, by_rows); }).median();
}

}  // namespace

double read_bandwidth(int64_t bytes, int repeats) {
  const int64_t n = bytes / 8;
  // On the frozen weights' kind of memory (2 MB pages where the kernel gives them), written once: every
  // page resident.
  auto buffer = kernels::empty_weight_storage({n}, torch::kLong).fill_(1);
  const auto* p = reinterpret_cast<const uint64_t*>(buffer.data_ptr<int64_t>());
  std::atomic<uint64_t> sink{0};
  const auto t = time_repeats(1, repeats, [&] {
    // The row kernels' threads (at::parallel_for runs on one thread in this tree: row_threads.h).
    kernels::parallel_rows(n, int64_t{1} << 16, [&](int64_t a, int64_t b) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // independent sums: the loop is bound by the loads
      int64_t i = a;
      for (; i + 4 <= b; i += 4) s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
      for (; i < b; ++i) s0 += p[i];
      sink += s0 + s1 + s2 + s3;
    });
  });
  if (sink.load() != uint64_t(n) * uint64_t(repeats + 1)) spdlog::warn("read_bandwidth: the sums are off");
  return double(n * 8) / t.median();
}

nlohmann::json run_kernels(const Workload& w) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(w.seed);
  const auto shapes = llama_linears(w.model_config(1).llama);
  const double bandwidth = read_bandwidth();
  spdlog::info("kernels: read bandwidth {:.1f} GB/s with {} threads", bandwidth / 1e9, at::get_num_threads());
  const auto kernel = kernels::default_linear_kernel();

  nlohmann::json out = {{"read_bandwidth_gb_s", bandwidth / 1e9},
                        {"threads", at::get_num_threads()},
                        {"kernel", kernels::linear_kernel_name(kernel)}};
  for (const auto& s : shapes)
    out["shapes"].push_back({{"name", s.name}, {"rows", s.rows}, {"cols", s.cols}, {"count", s.count}});

  const Layer ours = [&](const torch::Tensor& x, const PackedWeight& pw) { return kernels::linear(x, pw, kernel); };
  const Layer scalar = [](const torch::Tensor& x, const PackedWeight& pw) {
    return kernels::linear(x, pw, LinearKernel::scalar);
  };
  const Layer grad = [&](const torch::Tensor& dy, const PackedWeight& pw) {
    return kernels::linear_input_grad(dy, pw, kernel);
  };
  const Layer torch_matmul = [](const torch::Tensor& x, const PackedWeight& pw) {
    return torch::matmul(x, pw.data.t());
  };
  const Layer torch_matmul_grad = [](const torch::Tensor& dy, const PackedWeight& pw) {
    return torch::matmul(dy, pw.data);
  };

  const int64_t prefill_rows = 128;
  for (const auto f :
       {WeightFormat::f32, WeightFormat::bf16, WeightFormat::f16, WeightFormat::q8_0, WeightFormat::q4_0}) {
    const std::string name = kernels::weight_format_name(f);
    auto& j = out["formats"][name];
    // Block formats pack rows of whole blocks: a model with another width (the small workload's 344)
    // cannot hold its LLaMA in them.
    const auto odd = std::find_if(shapes.begin(), shapes.end(), [&](const Shape& s) {
      return kernels::is_block_format(f) && s.cols % kernels::kQuantBlock;
    });
    if (odd != shapes.end()) {
      j["skipped"] = fmt::format("{} has {} input features, not a multiple of the {}-weight block", odd->name,
                                 odd->cols, kernels::kQuantBlock);
      spdlog::warn("kernels: {} skipped: {}", name, j["skipped"].get<std::string>());
      continue;
    }
    spdlog::info("kernels: {} weights", name);
    const auto set = make_weights(shapes, f);
    j["decode"] = decode_pass(set, shapes, ours, bandwidth);
    j["decode_calls"] = decode_calls(set, shapes, ours, kernel);
    j["decode_scalar_token_s"] = median_pass(set, inputs(shapes, 1), scalar, 3);
    for (const int64_t M : {int64_t{4}, int64_t{16}, prefill_rows})
      j["linear_s"][std::to_string(M)] = median_pass(set, inputs(shapes, M), ours, M > 16 ? 2 : 3);
    j["input_grad_s"][std::to_string(prefill_rows)] =
        median_pass(set, inputs(shapes, prefill_rows, true), grad, 2, true);
    // The peers: LibTorch's own matmul on the same fp32 weights, and on bf16 weights with bf16 x (its
    // bf16 GEMM is slow on CPUs without AVX-512 BF16, so only the decode and the smallest batch).
    if (f == WeightFormat::f32) {
      auto& p = out["peers"]["torch_matmul_fp32"];
      p["decode"] = decode_pass(set, shapes, torch_matmul, bandwidth);
      for (const int64_t M : {int64_t{4}, int64_t{16}, prefill_rows})
        p["linear_s"][std::to_string(M)] = median_pass(set, inputs(shapes, M), torch_matmul, M > 16 ? 2 : 3);
      p["input_grad_s"][std::to_string(prefill_rows)] =
          median_pass(set, inputs(shapes, prefill_rows, true), torch_matmul_grad, 2, true);
    } else if (f == WeightFormat::bf16) {
      auto& p = out["peers"]["torch_matmul_bf16"];
      p["decode"] = decode_pass(set, shapes, torch_matmul, bandwidth, torch::kBFloat16);
      p["linear_s"]["4"] = median_pass(set, inputs(shapes, 4, false, torch::kBFloat16), torch_matmul, 1);
    }
  }
  return out;
}

}  // namespace cb::bench
