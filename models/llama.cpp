#include "models/llama.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <limits>

#include "framework/error.h"
#include "framework/json_file.h"
#include "framework/json_read.h"
#include "framework/kernels/attention.h"
#include "framework/kernels/rms_norm.h"
#include "framework/kernels/rope.h"
#include "models/llama_decode_step.h"

namespace cb {
namespace F = torch::nn::functional;

// ---------------------------------------------------------------------------------------------
// Config

LlamaConfig LlamaConfig::from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) fail("{}: expected a JSON object", source);
  LlamaConfig c;
  c.vocab_size = require_json_key<int64_t>(j, "vocab_size", source);
  c.hidden_size = require_json_key<int64_t>(j, "hidden_size", source);
  c.intermediate_size = require_json_key<int64_t>(j, "intermediate_size", source);
  c.num_hidden_layers = require_json_key<int64_t>(j, "num_hidden_layers", source);
  c.num_attention_heads = require_json_key<int64_t>(j, "num_attention_heads", source);
  c.num_key_value_heads = c.num_attention_heads;
  read_json_key(j, "num_key_value_heads", c.num_key_value_heads, source);
  read_json_key(j, "rms_norm_eps", c.rms_norm_eps, source);
  read_json_key(j, "max_position_embeddings", c.max_position_embeddings, source);
  read_json_key(j, "rope_theta", c.rope_theta, source);
  read_json_key(j, "pad_token_id", c.pad_token_id, source);
  read_json_key(j, "bos_token_id", c.bos_token_id, source);
  read_json_key(j, "eos_token_id", c.eos_token_id, source);

  if (j.contains("hidden_act") && j.at("hidden_act") != "silu")
    fail("{}: hidden_act {} is not supported (only \"silu\")", source, j.at("hidden_act").dump());
  if (j.value("tie_word_embeddings", false))
    fail("{}: tie_word_embeddings=true is not supported (LLaMA/Vicuna keep a separate lm_head)", source);
  if (j.contains("rope_scaling") && !j.at("rope_scaling").is_null())
    fail("{}: rope_scaling {} is not supported", source, j.at("rope_scaling").dump());
  if (c.vocab_size <= 0 || c.hidden_size <= 0 || c.intermediate_size <= 0 || c.num_hidden_layers <= 0 ||
      c.num_attention_heads <= 0 || c.num_key_value_heads <= 0 || c.max_position_embeddings <= 0)
    fail("{}: sizes must be positive", source);
  if (c.hidden_size % c.num_attention_heads != 0)
    fail("{}: hidden_size {} is not a multiple of num_attention_heads {}", source, c.hidden_size,
         c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", source, c.num_attention_heads,
         c.num_key_value_heads);
  if (c.head_dim() % 2 != 0) fail("{}: head dim {} must be even for rotary embeddings", source, c.head_dim());
  return c;
}

LlamaConfig LlamaConfig::from_file(const std::filesystem::path& config_json) {
  return from_json(read_json_file(config_json, "LLaMA config"), config_json.string());
}

LlamaStorage LlamaStorage::from_precision(const std::string& precision, bool init) {
  LlamaStorage s;
  s.linear = kernels::parse_weight_format(precision, "model.llama_precision");
  s.dense = s.linear == kernels::WeightFormat::f32    ? torch::kFloat
            : s.linear == kernels::WeightFormat::bf16 ? torch::kBFloat16
                                                      : torch::kHalf;
  s.cpu_kv_cache = s.linear == kernels::WeightFormat::f32 ? torch::kFloat : torch::kHalf;
  s.init = init;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Layers

namespace {

// inv_freq = 1 / theta^(arange(0, Dh, 2) / Dh), in fp32 like the original.
torch::Tensor rope_inv_freq(int64_t head_dim, double theta) {
  auto exponent = torch::arange(0, head_dim, 2, torch::kFloat) / static_cast<double>(head_dim);
  return torch::reciprocal(torch::pow(theta, exponent));
}

double finfo_min(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat: return std::numeric_limits<float>::lowest();
    case torch::kDouble: return std::numeric_limits<double>::lowest();
    case torch::kHalf: return static_cast<float>(std::numeric_limits<c10::Half>::lowest());
    case torch::kBFloat16: return static_cast<float>(std::numeric_limits<c10::BFloat16>::lowest());
    default: fail("LLaMA: unsupported compute dtype {}", c10::toString(dtype));
  }
}

torch::Tensor rotate_half(const torch::Tensor& x) {  // [..., Dh] -> cat(-x2, x1)
  auto half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

FrozenLinear linear(int64_t in, int64_t out, const LlamaStorage& s) {
  FrozenLinearOptions o(in, out);
  o.format = s.linear;
  o.init = s.init;
  o.map_packed = s.map_packed;
  return FrozenLinear(o);
}

}  // namespace

int64_t llama_cache_room(const torch::Tensor& slot) {
  if (!slot.defined() || slot.dim() != 4) return 0;
  const int64_t B = slot.size(0), H = slot.size(1), T = slot.size(2), Dh = slot.size(3);
  const int64_t room = Dh > 0 ? slot.stride(1) / Dh : 0;
  const bool view = slot.stride(3) == 1 && slot.stride(2) == Dh && slot.stride(1) == room * Dh &&
                    slot.stride(0) == H * room * Dh && slot.storage_offset() == 0 && T <= room &&
                    slot.storage().nbytes() >= size_t(B * H * room * Dh) * slot.element_size();
  return view ? room : 0;
}

// Without autograd (generation) the slot is a view of a buffer with room to spare and x is written
// (converted) into that room: torch::cat would copy the whole cache every step, O(T) per token. The room
// grows by a quarter of the length (at least 32 positions), so the copies stay amortised O(1) per
// position and the spare memory small (a 13B model's fp32 caches are ~1.6 MB a position). Two copies of
// one LlamaKVCache extended separately would share that room: extend one cache per generation.
torch::Tensor llama_append_to_cache(torch::Tensor& cache, const torch::Tensor& x, torch::Dtype dtype) {
  if (!cache.defined()) return cache = x.to(dtype);
  if (torch::GradMode::is_enabled()) return cache = torch::cat({cache, x.to(dtype)}, 2);
  const int64_t B = cache.size(0), H = cache.size(1), T = cache.size(2), Dh = cache.size(3), L = x.size(2);
  const int64_t room = llama_cache_room(cache);
  torch::Tensor buffer;
  if (room >= T + L) {
    buffer = cache.as_strided({B, H, room, Dh}, cache.strides());
  } else {
    buffer = torch::empty({B, H, T + L + std::max<int64_t>(32, (T + L) / 4), Dh}, cache.options());
    buffer.narrow(2, 0, T).copy_(cache);
  }
  buffer.narrow(2, T, L).copy_(x);
  return cache = buffer.narrow(2, 0, T + L);
}

LlamaRMSNormImpl::LlamaRMSNormImpl(int64_t dim, double eps, torch::Dtype dtype) : eps(eps) {
  weight = register_parameter("weight", torch::ones({dim}, dtype));
}

torch::Tensor LlamaRMSNormImpl::forward(const torch::Tensor& x) {
  if (kernels::rms_norm_applies(x, weight)) return kernels::rms_norm(x, weight, eps);  // a decode step's rows
  auto variance = x.to(torch::kFloat).pow(2).mean(-1, /*keepdim=*/true);
  auto h = x * torch::rsqrt(variance + eps);  // promotes to fp32
  const bool half = weight.scalar_type() == torch::kHalf || weight.scalar_type() == torch::kBFloat16;
  if (half && !weight.device().is_cpu()) h = h.to(weight.scalar_type());
  return weight * h;  // CPU: a 16-bit weight promotes to fp32
}

LlamaRotaryEmbeddingImpl::LlamaRotaryEmbeddingImpl(int64_t head_dim, double base) {
  inv_freq = register_buffer("inv_freq", rope_inv_freq(head_dim, base));
}

void LlamaRotaryEmbeddingImpl::to(torch::Device device, torch::Dtype, bool non_blocking) {
  torch::nn::Module::to(device, non_blocking);
}

void LlamaRotaryEmbeddingImpl::to(torch::Dtype, bool) {}

LlamaAttentionImpl::LlamaAttentionImpl(const LlamaConfig& c, const LlamaStorage& s)
    : num_heads(c.num_attention_heads),
      num_kv_heads(c.num_key_value_heads),
      head_dim(c.head_dim()),
      cpu_kv_cache(s.cpu_kv_cache) {
  q_proj = register_module("q_proj", linear(c.hidden_size, num_heads * head_dim, s));
  k_proj = register_module("k_proj", linear(c.hidden_size, num_kv_heads * head_dim, s));
  v_proj = register_module("v_proj", linear(c.hidden_size, num_kv_heads * head_dim, s));
  o_proj = register_module("o_proj", linear(num_heads * head_dim, c.hidden_size, s));
  rotary_emb = register_module("rotary_emb", LlamaRotaryEmbedding(head_dim, c.rope_theta));
}

torch::Tensor LlamaAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                          const torch::Tensor& mask, torch::Tensor* past_k, torch::Tensor* past_v) {
  const auto B = x.size(0), L = x.size(1);
  const auto qkv = forward_shared_input(x, {q_proj.get(), k_proj.get(), v_proj.get()});
  auto q = qkv[0].view({B, L, num_heads, head_dim}).transpose(1, 2);     // [B,H,L,Dh]
  auto k = qkv[1].view({B, L, num_kv_heads, head_dim}).transpose(1, 2);  // [B,Hkv,L,Dh]
  auto v = qkv[2].view({B, L, num_kv_heads, head_dim}).transpose(1, 2);
  if (kernels::rope_applies(q, cos, sin) && kernels::rope_applies(k, cos, sin)) {  // a decode step
    q = kernels::rope(q, cos, sin);
    k = kernels::rope(k, cos, sin);
  } else {
    q = q * cos + rotate_half(q) * sin;
    k = k * cos + rotate_half(k) * sin;
  }
  if (past_k) {
    const auto dtype = x.device().is_cpu() ? cpu_kv_cache : k.scalar_type();
    k = llama_append_to_cache(*past_k, k, dtype);  // [B,Hkv,T,Dh]
    v = llama_append_to_cache(*past_v, v, dtype);
  }
  // A decode step (few new positions, no autograd, CPU): one fused pass per head over the cache.
  if (kernels::decode_attention_applies(q, k, v, mask)) return o_proj(kernels::decode_attention(q, k, v, mask));
  k = k.to(q.scalar_type());  // a 16-bit cache, widened for the matmuls (prefill)
  v = v.to(q.scalar_type());
  if (num_kv_heads != num_heads) {  // grouped-query attention: each kv head serves H/Hkv query heads
    k = k.repeat_interleave(num_heads / num_kv_heads, 1);
    v = v.repeat_interleave(num_heads / num_kv_heads, 1);
  }
  auto s = torch::matmul(q, k.transpose(2, 3)) / std::sqrt(static_cast<double>(head_dim));  // [B,H,L,T]
  if (mask.defined()) s = s + mask;  // the mask is >= finfo.min: see llama_decoder_mask
  auto p = torch::softmax(s, -1, torch::kFloat).to(q.scalar_type());
  auto o = torch::matmul(p, v).transpose(1, 2).reshape({B, L, num_heads * head_dim});  // [B,L,D]
  return o_proj(o);
}

LlamaMLPImpl::LlamaMLPImpl(const LlamaConfig& c, const LlamaStorage& s) {
  gate_proj = register_module("gate_proj", linear(c.hidden_size, c.intermediate_size, s));
  up_proj = register_module("up_proj", linear(c.hidden_size, c.intermediate_size, s));
  down_proj = register_module("down_proj", linear(c.intermediate_size, c.hidden_size, s));
}

torch::Tensor LlamaMLPImpl::forward(const torch::Tensor& x) {
  const auto gate_up = forward_shared_input(x, {gate_proj.get(), up_proj.get()});
  return down_proj(F::silu(gate_up[0]) * gate_up[1]);
}

LlamaDecoderLayerImpl::LlamaDecoderLayerImpl(const LlamaConfig& c, const LlamaStorage& s) {
  self_attn = register_module("self_attn", LlamaAttention(c, s));
  mlp = register_module("mlp", LlamaMLP(c, s));
  input_layernorm = register_module("input_layernorm", LlamaRMSNorm(c.hidden_size, c.rms_norm_eps, s.dense));
  post_attention_layernorm =
      register_module("post_attention_layernorm", LlamaRMSNorm(c.hidden_size, c.rms_norm_eps, s.dense));
}

torch::Tensor LlamaDecoderLayerImpl::forward(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin,
                                             const torch::Tensor& mask, torch::Tensor* past_k, torch::Tensor* past_v) {
  auto x = h + self_attn(input_layernorm(h), cos, sin, mask, past_k, past_v);
  return x + mlp(post_attention_layernorm(x));
}

// ---------------------------------------------------------------------------------------------
// Model

torch::Tensor llama_decoder_mask(const torch::Tensor& attention_mask, int64_t L, torch::Dtype dtype) {
  const auto B = attention_mask.size(0), T = attention_mask.size(1), past = T - L;
  const double mn = finfo_min(dtype);
  auto opts = torch::TensorOptions().dtype(dtype).device(attention_mask.device());
  torch::Tensor causal;
  if (L > 1) {
    auto i = torch::arange(L, opts.dtype(torch::kLong)).view({L, 1});
    auto j = torch::arange(T, opts.dtype(torch::kLong)).view({1, T});
    causal = torch::zeros({L, T}, opts).masked_fill(j > i + past, mn).view({1, 1, L, T});
  }
  if (attention_mask.min().item<int64_t>() == 1) return causal.defined() ? causal : torch::zeros({1, 1, L, T}, opts);
  auto mask = torch::zeros({B, 1, L, T}, opts).masked_fill((attention_mask != 1).view({B, 1, 1, T}), mn);
  // HF adds both (min + min = -inf) and clamps scores + mask at finfo.min in every layer, so that fully
  // masked rows (left padding) attend uniformly. Clamping the mask once gives the same scores (|s| is far
  // below min's ulp) and the same gradients (those entries get zero probability or no upstream gradient).
  return causal.defined() ? (mask + causal).clamp_min_(mn) : mask;
}

LlamaModelImpl::LlamaModelImpl(const LlamaConfig& c, const LlamaStorage& s) : config(c) {
  torch::nn::EmbeddingOptions o(c.vocab_size, c.hidden_size);
  if (!s.init) o._weight(torch::empty({c.vocab_size, c.hidden_size}, s.dense));  // given: not initialised
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(o));
  if (s.init && s.dense != torch::kFloat) embed_tokens->to(s.dense);
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(LlamaDecoderLayer(c, s));
  norm = register_module("norm", LlamaRMSNorm(c.hidden_size, c.rms_norm_eps, s.dense));
}

torch::Dtype LlamaModelImpl::compute_dtype() const {
  return norm->weight.device().is_cpu() ? torch::kFloat : norm->weight.scalar_type();
}

std::pair<torch::Tensor, torch::Tensor> LlamaModelImpl::rope_tables(int64_t seq_len, torch::Device device) {
  if (!rope_cos_.defined() || rope_cos_.size(0) < seq_len || rope_cos_.device() != device) {
    c10::InferenceMode normal_tensors(false);  // a cache made while generating also serves training
    auto t = torch::arange(std::max(config.max_position_embeddings, seq_len), torch::kFloat);
    auto freqs = torch::outer(t, rope_inv_freq(config.head_dim(), config.rope_theta));  // [T,Dh/2]
    auto emb = torch::cat({freqs, freqs}, -1);                                          // [T,Dh]
    rope_cos_ = emb.cos().to(device);
    rope_sin_ = emb.sin().to(device);
  }
  return {rope_cos_, rope_sin_};
}

std::pair<torch::Tensor, torch::Tensor> LlamaModelImpl::rope_at(const torch::Tensor& position_ids, int64_t seq_len,
                                                                torch::Dtype dtype) {
  rope_tables(seq_len, position_ids.device());
  const auto B = position_ids.size(0), L = position_ids.size(1), Dh = config.head_dim();
  auto flat = position_ids.reshape({-1});
  auto cos = rope_cos_.index_select(0, flat).view({B, 1, L, Dh}).to(dtype);
  auto sin = rope_sin_.index_select(0, flat).view({B, 1, L, Dh}).to(dtype);
  return {cos, sin};
}

torch::Tensor LlamaModelImpl::forward(const LlamaInputs& in) {
  if (cpu_decode_step)
    if (auto h = llama_decode_step(*this, in); h.defined()) return h;
  if (in.input_ids.defined() == in.inputs_embeds.defined())
    fail("LlamaModel: pass exactly one of input_ids and inputs_embeds");
  const auto dtype = compute_dtype();
  auto h = (in.input_ids.defined() ? embed_tokens(in.input_ids) : in.inputs_embeds).to(dtype);  // [B,L,D]
  if (h.dim() != 3 || h.size(2) != config.hidden_size)
    fail("LlamaModel: inputs must be [B,L] ids or [B,L,{}] embeddings, got {}", config.hidden_size,
         fmt::join(h.sizes(), "x"));
  const auto B = h.size(0), L = h.size(1);
  const int64_t past = in.cache ? in.cache->length() : 0;

  // Quirk of the original: positions are arange(past, past+L) for every row, whatever the padding.
  auto position_ids =
      in.position_ids.defined()
          ? in.position_ids
          : torch::arange(past, past + L, torch::dtype(torch::kLong).device(h.device())).unsqueeze(0).expand({B, L});
  if (position_ids.sizes() != torch::IntArrayRef({B, L}))
    fail("LlamaModel: position_ids must be [{}, {}], got {}", B, L, fmt::join(position_ids.sizes(), "x"));
  auto attention_mask = in.attention_mask.defined()
                            ? in.attention_mask
                            : torch::ones({B, past + L}, torch::dtype(torch::kLong).device(h.device()));
  if (attention_mask.sizes() != torch::IntArrayRef({B, past + L}))
    fail("LlamaModel: attention_mask must be [{}, {}] (cached + new tokens), got {}", B, past + L,
         fmt::join(attention_mask.sizes(), "x"));

  // One new position with nothing padded attends to everything: no mask (a decode step's common case).
  const bool no_mask = L == 1 && attention_mask.min().item<int64_t>() == 1;
  auto mask = no_mask ? torch::Tensor() : llama_decoder_mask(attention_mask, L, dtype);  // [B,1,L,past+L]
  auto [cos, sin] = rope_at(position_ids, past + L, dtype);                              // [B,1,L,Dh]
  if (in.cache && in.cache->empty()) {
    in.cache->keys.resize(layers->size());
    in.cache->values.resize(layers->size());
  }
  for (size_t i = 0; i < layers->size(); ++i) {
    auto* pk = in.cache ? &in.cache->keys[i] : nullptr;
    auto* pv = in.cache ? &in.cache->values[i] : nullptr;
    h = layers[i]->as<LlamaDecoderLayer>()->forward(h, cos, sin, mask, pk, pv);
  }
  return norm(h);
}

LlamaForCausalLMImpl::LlamaForCausalLMImpl(const LlamaConfig& c, const LlamaStorage& s) {
  model = register_module("model", LlamaModel(c, s));
  lm_head = register_module("lm_head", linear(c.hidden_size, c.vocab_size, s));
}

LlamaOutput LlamaForCausalLMImpl::forward(const LlamaInputs& in) {
  const auto& first = in.input_ids.defined() ? in.input_ids : in.inputs_embeds;
  if (in.loss_only && first.defined() && first.dim() >= 2 && first.size(1) >= 2) return loss_from_supervised_rows(in);
  auto h = model(in);  // [B,L,D]
  if (in.last_logits_only) {
    if (in.labels.defined()) fail("LlamaForCausalLM: labels need the logits of every position");
    if (h.size(1) != 1) h = h.narrow(1, h.size(1) - 1, 1);
  }
  LlamaOutput out;
  out.logits = lm_head(h);
  if (in.labels.defined()) {
    const auto V = out.logits.size(-1);
    if (in.labels.sizes() != out.logits.sizes().slice(0, 2))
      fail("LlamaForCausalLM: labels must be [{}], got {}", fmt::join(out.logits.sizes().slice(0, 2), "x"),
           fmt::join(in.labels.sizes(), "x"));
    // Loss in fp32, as autocast computes it in the original's training.
    auto shift_logits = out.logits.narrow(1, 0, out.logits.size(1) - 1).to(torch::kFloat).reshape({-1, V});
    auto shift_labels = in.labels.narrow(1, 1, in.labels.size(1) - 1).reshape({-1});
    out.loss = F::cross_entropy(shift_logits, shift_labels, F::CrossEntropyFuncOptions().ignore_index(-100));
  }
  return out;
}

LlamaOutput LlamaForCausalLMImpl::loss_from_supervised_rows(const LlamaInputs& in) {
  if (!in.labels.defined()) fail("LlamaForCausalLM: loss_only needs labels");
  if (in.cache) fail("LlamaForCausalLM: loss_only runs without a KV cache");
  const auto& first = in.input_ids.defined() ? in.input_ids : in.inputs_embeds;
  const int64_t B = first.size(0), L = first.size(1);
  if (in.labels.sizes() != torch::IntArrayRef({B, L}))
    fail("LlamaForCausalLM: labels must be [{}, {}], got {}", B, L, fmt::join(in.labels.sizes(), "x"));
  // Causal attention: positions 0..L-2 do not see position L-1, so dropping it changes nothing else.
  LlamaInputs head = in;
  auto drop_last = [L](const torch::Tensor& t) { return t.defined() ? t.narrow(1, 0, L - 1) : t; };
  head.input_ids = drop_last(in.input_ids);
  head.inputs_embeds = drop_last(in.inputs_embeds);
  head.attention_mask = drop_last(in.attention_mask);
  head.position_ids = drop_last(in.position_ids);
  auto h = model(head);                                                     // [B,L-1,D]
  auto targets = in.labels.narrow(1, 1, L - 1).reshape({-1});               // [B·(L-1)]
  auto rows = targets.ne(-100).nonzero().view({-1});                        // supervised rows
  auto logits = lm_head(h.reshape({-1, h.size(2)}).index_select(0, rows));  // [K,V]
  LlamaOutput out;
  // Mean over the supervised rows, as cross_entropy(ignore_index=-100) over every row; fp32 as above.
  out.loss = F::cross_entropy(logits.to(torch::kFloat), targets.index_select(0, rows));
  return out;
}

torch::Tensor LlamaForCausalLMImpl::embed(const torch::Tensor& input_ids) const {
  return torch::embedding(model->embed_tokens->weight, input_ids).to(dtype());
}

torch::Dtype LlamaForCausalLMImpl::dtype() const { return model->compute_dtype(); }

torch::Device LlamaForCausalLMImpl::device() const { return lm_head->weight.device(); }

}  // namespace cb
