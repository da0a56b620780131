#include "models/llama_decode_step.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "framework/kernels/attention.h"
#include "framework/kernels/linear.h"
#include "framework/kernels/rms_norm.h"
#include "framework/kernels/rope.h"

namespace cb {
namespace {

bool cpu_long(const torch::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == torch::kLong && t.is_contiguous();
}

bool cpu_dense(const torch::Tensor& t) {
  const auto dt = t.scalar_type();
  return t.device().is_cpu() && t.is_contiguous() &&
         (dt == torch::kFloat || dt == torch::kBFloat16 || dt == torch::kHalf);
}

LlamaDecoderLayerImpl& layer_at(const LlamaModelImpl& m, size_t i) {
  return *m.layers->ptr(i)->as<LlamaDecoderLayerImpl>();
}

int64_t rows_of(const LlamaInputs& in) {
  return in.input_ids.defined() ? in.input_ids.size(0) : in.inputs_embeds.size(0);
}

// Row `r` of a dense [V, D] table, widened to fp32 (exact).
template <class T>
void widen_row(const torch::Tensor& table, int64_t r, float* out) {
  const int64_t D = table.size(1);
  const T* src = table.data_ptr<T>() + r * D;
  for (int64_t d = 0; d < D; ++d) out[d] = static_cast<float>(src[d]);
}

// One position's keys or values x [B, Hkv·Dh] fp32 appended to a cache slot [B,Hkv,T,Dh] in the slot's
// dtype, as llama_append_to_cache appends them (the same rounding to fp16); the slot then views T + 1.
void append_position(torch::Tensor& slot, const float* x, int64_t B, int64_t Hkv, int64_t Dh) {
  const int64_t T = slot.size(2);
  if (llama_cache_room(slot) < T + 1) {  // no room left: the general append makes a larger buffer
    const auto xt = torch::from_blob(const_cast<float*>(x), {B, 1, Hkv, Dh}, torch::kFloat).transpose(1, 2);
    llama_append_to_cache(slot, xt, slot.scalar_type());
    return;
  }
  const int64_t s0 = slot.stride(0), s1 = slot.stride(1), s2 = slot.stride(2);
  const bool half = slot.scalar_type() == torch::kHalf;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hkv; ++h) {
      const float* src = x + (b * Hkv + h) * Dh;
      const int64_t at = b * s0 + h * s1 + T * s2;
      if (half) {
        c10::Half* dst = slot.data_ptr<c10::Half>() + at;
        for (int64_t d = 0; d < Dh; ++d) dst[d] = c10::Half(src[d]);
      } else {
        std::memcpy(slot.data_ptr<float>() + at, src, static_cast<size_t>(Dh) * sizeof(float));
      }
    }
  slot = slot.as_strided({B, Hkv, T + 1, Dh}, slot.strides());
}

void add_into(float* h, const float* t, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] += t[i];
}

}  // namespace

bool llama_decode_step_applies(const LlamaModelImpl& m, const LlamaInputs& in) {
  if (torch::GradMode::is_enabled() || !in.cache || in.labels.defined()) return false;
  const auto& c = m.config;
  const size_t layers = m.layers->size();
  if (layers == 0 || in.cache->keys.size() != layers || in.cache->values.size() != layers) return false;
  if (!m.norm->weight.device().is_cpu() || c.head_dim() % 2 || c.num_key_value_heads < 1) return false;
  int64_t B = 0;
  if (in.input_ids.defined()) {
    const auto& ids = in.input_ids;
    if (in.inputs_embeds.defined() || !cpu_long(ids) || ids.dim() != 2 || ids.size(1) != 1) return false;
    if (!cpu_dense(m.embed_tokens->weight)) return false;
    B = ids.size(0);
    const int64_t* p = ids.data_ptr<int64_t>();
    if (std::any_of(p, p + B, [&](int64_t id) { return id < 0 || id >= m.embed_tokens->weight.size(0); }))
      return false;  // the modules' embedding reports it
  } else {
    const auto& e = in.inputs_embeds;
    if (!e.defined() || !e.device().is_cpu() || e.scalar_type() != torch::kFloat || !e.is_contiguous() ||
        e.dim() != 3 || e.size(1) != 1 || e.size(2) != c.hidden_size)
      return false;
    B = e.size(0);
  }
  if (B < 1 || B > kernels::kSmallBatchRows) return false;
  for (size_t i = 0; i < layers; ++i) {
    const auto& k = in.cache->keys[i];
    const auto& v = in.cache->values[i];
    const auto& attn = *layer_at(m, i).self_attn;
    if (!k.defined() || !v.defined() || !k.device().is_cpu() || !v.device().is_cpu() || k.dim() != 4 ||
        k.scalar_type() != attn.cpu_kv_cache || v.scalar_type() != k.scalar_type() || k.sizes() != v.sizes() ||
        k.size(0) != B || k.size(1) != attn.num_kv_heads || k.size(3) != attn.head_dim || k.stride(3) != 1 ||
        v.stride(3) != 1 || k.size(2) != in.cache->keys.front().size(2))
      return false;
  }
  const int64_t past = in.cache->length();
  if (in.position_ids.defined()) {
    const auto& pos = in.position_ids;
    if (!cpu_long(pos) || pos.dim() != 2 || pos.size(0) != B || pos.size(1) != 1) return false;
    const int64_t rows = std::max(c.max_position_embeddings, past + 1);  // the tables' length (rope_tables)
    const int64_t* p = pos.data_ptr<int64_t>();
    if (std::any_of(p, p + B, [&](int64_t q) { return q < 0 || q >= rows; })) return false;
  }
  if (in.attention_mask.defined()) {  // nothing padded: the modules then use no mask either
    const auto& mask = in.attention_mask;
    if (!cpu_long(mask) || mask.dim() != 2 || mask.size(0) != B || mask.size(1) != past + 1) return false;
    const int64_t* p = mask.data_ptr<int64_t>();
    if (std::any_of(p, p + mask.numel(), [](int64_t a) { return a != 1; })) return false;
  }
  return true;
}

torch::Tensor llama_decode_step(LlamaModelImpl& m, const LlamaInputs& in) {
  if (!llama_decode_step_applies(m, in)) return {};
  const auto& c = m.config;
  const int64_t B = rows_of(in), D = c.hidden_size, Dh = c.head_dim(), I = c.intermediate_size;
  const int64_t H = c.num_attention_heads, Hkv = c.num_key_value_heads, past = in.cache->length();

  // The calling thread's buffers, kept between steps: h, x, t [B,D]; q [B,H·Dh]; k, v [B,Hkv·Dh]; g, u [B,I].
  thread_local std::vector<float> work;
  const int64_t need = B * (3 * D + (H + 2 * Hkv) * Dh + 2 * I);
  if (static_cast<int64_t>(work.size()) < need) work.resize(static_cast<size_t>(need));
  float* h = work.data();
  float* x = h + B * D;
  float* t = x + B * D;
  float* q = t + B * D;
  float* k = q + B * H * Dh;
  float* v = k + B * Hkv * Dh;
  float* g = v + B * Hkv * Dh;
  float* u = g + B * I;

  // h = the new positions' embeddings (fp32)
  if (in.input_ids.defined()) {
    const auto& table = m.embed_tokens->weight;
    const int64_t* ids = in.input_ids.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) switch (table.scalar_type()) {
        case torch::kFloat: widen_row<float>(table, ids[b], h + b * D); break;
        case torch::kBFloat16: widen_row<c10::BFloat16>(table, ids[b], h + b * D); break;
        default: widen_row<c10::Half>(table, ids[b], h + b * D); break;
      }
  } else {
    std::memcpy(h, in.inputs_embeds.data_ptr<float>(), static_cast<size_t>(B * D) * sizeof(float));
  }
  // cos/sin rows [Dh] at each row's position (arange(past, past + 1) when none are given)
  const auto [cos_table, sin_table] = m.rope_tables(past + 1, torch::kCPU);
  std::array<const float*, kernels::kSmallBatchRows> cos{}, sin{};
  for (int64_t b = 0; b < B; ++b) {
    const int64_t pos = in.position_ids.defined() ? in.position_ids.data_ptr<int64_t>()[b] : past;
    cos[b] = cos_table.data_ptr<float>() + pos * Dh;
    sin[b] = sin_table.data_ptr<float>() + pos * Dh;
  }

  for (size_t i = 0; i < m.layers->size(); ++i) {
    auto& layer = layer_at(m, i);
    auto& attn = *layer.self_attn;
    auto& mlp = *layer.mlp;
    // x = RMSNorm(h); q, k, v = x · W{q,k,v}ᵀ; RoPE on q and k
    kernels::rms_norm(h, B, layer.input_layernorm->weight, layer.input_layernorm->eps, x);
    {
      const auto wq = attn.q_proj->packed(), wk = attn.k_proj->packed(), wv = attn.v_proj->packed();
      const kernels::PackedWeight* ws[] = {&wq, &wk, &wv};
      float* ys[] = {q, k, v};
      kernels::linear_rows(x, B, D, ws, ys, 3);
    }
    for (int64_t b = 0; b < B; ++b) {
      kernels::rope(q + b * H * Dh, H, Dh, cos[b], sin[b], q + b * H * Dh);
      kernels::rope(k + b * Hkv * Dh, Hkv, Dh, cos[b], sin[b], k + b * Hkv * Dh);
    }
    // the cache grows by this position; attention over it: [B,1,H·Dh]
    auto& keys = in.cache->keys[i];
    auto& values = in.cache->values[i];
    append_position(keys, k, B, Hkv, Dh);
    append_position(values, v, B, Hkv, Dh);
    const auto qt = torch::from_blob(q, {B, H, 1, Dh}, {H * Dh, Dh, H * Dh, 1}, torch::kFloat);
    const auto o = kernels::decode_attention(qt, keys, values, torch::Tensor());
    // h += o · Woᵀ
    {
      const auto wo = attn.o_proj->packed();
      const kernels::PackedWeight* ws[] = {&wo};
      kernels::linear_rows(o.data_ptr<float>(), B, H * Dh, ws, &t, 1);
    }
    add_into(h, t, B * D);
    // h += (silu(x · Wgateᵀ) ⊙ (x · Wupᵀ)) · Wdownᵀ, x = RMSNorm(h)
    kernels::rms_norm(h, B, layer.post_attention_layernorm->weight, layer.post_attention_layernorm->eps, x);
    {
      const auto wg = mlp.gate_proj->packed(), wu = mlp.up_proj->packed();
      const kernels::PackedWeight* ws[] = {&wg, &wu};
      float* ys[] = {g, u};
      kernels::linear_rows(x, B, D, ws, ys, 2);
    }
    auto gate = torch::from_blob(g, {B * I}, torch::kFloat);
    at::silu_(gate);  // LibTorch's SiLU: the modules' bits
    for (int64_t j = 0; j < B * I; ++j) g[j] *= u[j];
    {
      const auto wd = mlp.down_proj->packed();
      const kernels::PackedWeight* ws[] = {&wd};
      kernels::linear_rows(g, B, I, ws, &t, 1);
    }
    add_into(h, t, B * D);
  }
  auto out = torch::empty({B, 1, D}, torch::kFloat);
  kernels::rms_norm(h, B, m.norm->weight, m.norm->eps, out.data_ptr<float>());
  return out;
}

}  // namespace cb
