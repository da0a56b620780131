#include "runners/train/memory_plan.h"

#include <spdlog/fmt/fmt.h>

#include <unistd.h>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "models/chatbridge.h"
#include "models/frozen_linear.h"
#include "models/llama.h"

namespace cb {
namespace {

std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return "fp32";
    case torch::kHalf: return "fp16";
    case torch::kBFloat16: return "bf16";
    case torch::kByte: return "u8";
    case torch::kLong: return "i64";
    default: return c10::toString(t);
  }
}

std::string gib(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= (1LL << 30)) return fmt::format("{:.2f} GiB", b / double(1LL << 30));
  return fmt::format("{:.1f} MiB", b / double(1LL << 20));
}

// Bytes of what one LLaMA decoder layer keeps for backward on [B, L] positions (frozen or not, as
// long as gradients flow to its input): RMSNorm inputs/outputs, q/k/v and their rotated copies, the
// attention output, the residuals (~10 [B,L,D]); gate, up, silu(gate) and their product (4 [B,L,I]);
// softmax probabilities and the masked scores (2 [B,H,L,L], fp32 on every device: the softmax is fp32).
int64_t llama_layer_saved(const LlamaConfig& c, int64_t B, int64_t L, int64_t a) {
  return 10 * B * L * c.hidden_size * a + 4 * B * L * c.intermediate_size * a +
         2 * B * c.num_attention_heads * L * L * 4;
}

// Bytes of a KV-cache element: where activations are fp32 the cache's dtype beside this model's weights
// (models/llama.h LlamaStorage::cpu_kv_cache, which a 16-bit model on a GPU matches), else the activations'.
int64_t kv_cache_bytes(const LlamaForCausalLMImpl& lm, int64_t a) {
  if (a != 4) return a;
  for (const auto& m : lm.modules(/*include_self=*/false))
    if (const auto* attn = dynamic_cast<const LlamaAttentionImpl*>(m.get()))
      return static_cast<int64_t>(c10::elementSize(attn->cpu_kv_cache));
  return a;
}

// A train or decode step of LlamaForCausalLM on [B, L] positions of which `rows` are supervised; `kv`:
// kv_cache_bytes.
int64_t llama_activations(const LlamaConfig& c, int64_t B, int64_t L, int64_t rows, bool train, int64_t a, int64_t kv) {
  const int64_t layer = llama_layer_saved(c, B, L, a);
  if (!train)  // one layer's working set, the KV cache, the last position's logits
    return layer + 2 * c.num_hidden_layers * B * L * c.hidden_size * kv + B * c.vocab_size * 4;
  // Every layer's saved tensors + one layer's gradients in flight; logits, log-softmax and their
  // gradient on the supervised rows only (fp32).
  return c.num_hidden_layers * layer + layer + 3 * rows * c.vocab_size * 4;
}

struct Shapes {
  int64_t B, F, L, rows;
};

int64_t chatbridge_activations(const ChatBridgeConfig& c, const Shapes& s, bool train, int64_t a, int64_t vit_a,
                               int64_t kv, std::string& note) {
  const auto& v = c.vit;
  const int64_t N = v.num_patches() + 1, C = v.embed_dim, M = v.mlp_hidden(), Hv = v.num_heads;
  // Frozen ViT under no_grad, one frame batch at a time: the largest block transient (q/k/v, scores
  // and probabilities, or the MLP hidden pair), and the image tokens it hands on (ViT output,
  // ln_vision output, frames concatenated).
  const int64_t vit_transient = std::max(3 * s.B * N * C + 2 * s.B * Hv * N * N, 2 * s.B * N * M) * vit_a;
  const int64_t tokens = 3 * s.B * s.F * N * C * a;
  // Trainable Q-Former on Nq queries: self-attention and FFN tensors per layer, cross-attention keys
  // and values over the frames' tokens every cross_attention_freq layers.
  const auto& q = c.qformer;
  const int64_t Nq = c.num_query_token, W = q.hidden_size, K = s.F * N;
  int64_t qformer = s.B * K * C * a;  // the encoder states the k/v projections keep for their weight gradients
  for (int64_t l = 0; l < q.num_hidden_layers; ++l) {
    qformer += (10 * s.B * Nq * W + 3 * s.B * Nq * q.intermediate_size + 2 * s.B * q.num_attention_heads * Nq * Nq) * a;
    if (q.has_cross_attention(l))
      qformer += (2 * s.B * K * W + 4 * s.B * Nq * W + 2 * s.B * q.num_attention_heads * Nq * K) * a;
  }
  if (!train) qformer /= std::max<int64_t>(1, q.num_hidden_layers);
  const int64_t llama = llama_activations(c.llama, s.B, s.L, s.rows, train, a, kv);
  note = fmt::format("batch {}, {} image(s) of {} tokens per sample, LLM on {} positions ({} supervised rows)", s.B,
                     s.F, N, s.L, s.rows);
  return std::max(vit_transient, qformer) + tokens + qformer + llama;
}

int64_t element_size_of(const torch::nn::Module& m) {
  for (const auto& p : m.parameters()) return static_cast<int64_t>(p.element_size());
  return 4;
}

}  // namespace

int64_t MemoryPlan::total_bytes() const {
  int64_t t = grad_sync_bytes + activation_bytes + baseline_bytes;
  for (const auto& p : parts) t += p.weight_bytes + p.grad_bytes + p.optimizer_bytes;
  return t;
}

std::string MemoryPlan::describe(std::optional<int64_t> budget_bytes) const {
  std::ostringstream o;
  o << "memory plan per rank:\n";
  o << fmt::format("  {:<26} {:>10} {:>10}  {:<10} {:>11} {:>11} {:>11}\n", "part", "params", "trainable", "dtype",
                   "weights", "grads", "AdamW");
  int64_t w = 0, g = 0, opt = 0;
  for (const auto& p : parts) {
    o << fmt::format("  {:<26} {:>10} {:>10}  {:<10} {:>11} {:>11} {:>11}\n", p.name, p.params, p.trainable, p.dtypes,
                     gib(p.weight_bytes), gib(p.grad_bytes), gib(p.optimizer_bytes));
    w += p.weight_bytes, g += p.grad_bytes, opt += p.optimizer_bytes;
  }
  o << fmt::format("  {:<26} {:>10} {:>10}  {:<10} {:>11} {:>11} {:>11}\n", "all parts", "", "", "", gib(w), gib(g),
                   gib(opt));
  if (grad_sync_bytes) o << fmt::format("  gradient-sync buckets: {}\n", gib(grad_sync_bytes));
  o << fmt::format("  activations (estimate): {} ({})\n", gib(activation_bytes), activation_note);
  if (baseline_bytes) o << fmt::format("  process baseline (libraries, measured now): {}\n", gib(baseline_bytes));
  o << fmt::format("  total per rank: {}\n", gib(total_bytes()));
  if (budget_bytes)
    o << fmt::format("  budget {}: {}\n", gib(*budget_bytes),
                     total_bytes() <= *budget_bytes
                         ? fmt::format("fits ({} to spare)", gib(*budget_bytes - total_bytes()))
                         : fmt::format("does NOT fit ({} over)", gib(total_bytes() - *budget_bytes)));
  return o.str();
}

std::map<std::string, int64_t> parameter_counts(const torch::nn::Module& model) {
  std::map<std::string, int64_t> packed;  // FrozenLinear weights by name: in x out
  for (const auto& m : model.named_modules())
    if (const auto* f = dynamic_cast<const FrozenLinearImpl*>(m.value().get()))
      packed[m.key() + ".weight"] = f->in_features * f->out_features;
  std::map<std::string, int64_t> out;
  for (const auto& p : model.named_parameters()) {
    const auto it = packed.find(p.key());
    out[p.key()] = p.value().scalar_type() == torch::kByte && it != packed.end() ? it->second : p.value().numel();
  }
  return out;
}

MemoryPlan plan_memory(const torch::nn::Module& model, const MemoryPlanOptions& o) {
  MemoryPlan plan;
  plan.baseline_bytes = o.baseline_bytes;
  std::map<std::string, size_t> index;
  std::map<std::string, std::set<std::string>> dtypes;
  auto part_of = [&](const std::string& name) -> PartMemory& {
    const auto top = name.substr(0, name.find('.'));
    if (!index.count(top)) index[top] = plan.parts.size(), plan.parts.emplace_back().name = top;
    return plan.parts[index[top]];
  };
  const auto counts = parameter_counts(model);
  int64_t trainable_bytes = 0;
  for (const auto& p : model.named_parameters()) {
    auto& part = part_of(p.key());
    const auto& t = p.value();
    part.params += counts.at(p.key());
    part.weight_bytes += t.numel() * static_cast<int64_t>(t.element_size());
    dtypes[part.name].insert(dtype_name(t.scalar_type()));
    if (!t.requires_grad() || !o.train) continue;
    // Gradients and both AdamW moments in the parameter's dtype (fp32: trainable parts stay fp32).
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    part.trainable += t.numel();
    part.grad_bytes += bytes;
    part.optimizer_bytes += 2 * bytes;
    trainable_bytes += bytes;
  }
  for (const auto& b : model.named_buffers()) {
    auto& part = part_of(b.key());
    part.weight_bytes += b.value().numel() * static_cast<int64_t>(b.value().element_size());
    dtypes[part.name].insert(dtype_name(b.value().scalar_type()));
  }
  for (auto& p : plan.parts) p.dtypes = fmt::format("{}", fmt::join(dtypes[p.name], "+"));
  if (o.train && o.world_size > 1) plan.grad_sync_bytes = trainable_bytes;  // GradSync's flat buckets

  const Shapes s{o.batch_size, o.images_per_sample, 0, 0};
  if (const auto* cb = dynamic_cast<const ChatBridgeImpl*>(&model)) {
    const auto& c = cb->config();
    // Stage 1: the queries, then the caption (all supervised); stage 2: max_txt_len positions in all.
    const int64_t L = c.stage == 1 ? c.num_query_token + o.text_len : o.text_len;
    const int64_t rows = o.batch_size * (c.stage == 1 ? o.text_len : o.text_len - c.num_query_token);
    const int64_t vit_a = std::min<int64_t>(o.compute_bytes, element_size_of(*cb->visual_encoder));
    const int64_t kv = kv_cache_bytes(*cb->llama_model, o.compute_bytes);
    plan.activation_bytes = chatbridge_activations(c, {s.B, s.F, L, std::max<int64_t>(rows, o.batch_size)}, o.train,
                                                   o.compute_bytes, vit_a, kv, plan.activation_note);
  } else if (const auto* lm = dynamic_cast<const LlamaForCausalLMImpl*>(&model)) {
    plan.activation_bytes = llama_activations(lm->config(), o.batch_size, o.text_len, o.batch_size * o.text_len,
                                              o.train, o.compute_bytes, kv_cache_bytes(*lm, o.compute_bytes));
    plan.activation_note = fmt::format("batch {}, {} positions", o.batch_size, o.text_len);
  } else {
    plan.activation_note = "no estimate for this model type";
  }
  return plan;
}

int64_t current_rss_bytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return resident * sysconf(_SC_PAGESIZE);
}

int64_t total_memory_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key, unit;
  int64_t kib = 0;
  while (f >> key >> kib >> unit)
    if (key == "MemTotal:") return kib * 1024;
  return 0;
}

}  // namespace cb
