// LLaMA / Vicuna as Hugging Face transformers 4.28 `LlamaForCausalLM` (ChatBridge's
// `chatbridge/models/modeling_llama.py` copy): same module tree and state-dict names
// (`model.embed_tokens.weight`, `model.layers.{i}.self_attn.{q,k,v,o}_proj.weight`,
// `model.layers.{i}.self_attn.rotary_emb.inv_freq`, `model.layers.{i}.mlp.{gate,up,down}_proj.weight`,
// `model.layers.{i}.{input,post_attention}_layernorm.weight`, `model.norm.weight`, `lm_head.weight`),
// same numerics (mask arithmetic, fp32 RMSNorm and softmax, rotate-half RoPE).
//
// Storage and compute dtypes (docs/precision.md): the projections are FrozenLinear layers holding
// their weight in fp32, bf16, fp16, q8_0 or q4_0; the embedding and the RMSNorm weights are fp32 or
// 16-bit. On the CPU every activation is fp32 whatever the storage; on CUDA the compute dtype is the
// RMSNorm weights' dtype (fp16 for the original's torch_dtype=float16 Vicuna).
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "framework/kernels/weight_format.h"
#include "models/frozen_linear.h"

namespace cb {

struct LlamaConfig {
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;  // = num_attention_heads when config.json has no such key
  double rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 2048;
  double rope_theta = 10000.0;
  // transformers 4.28 LlamaConfig defaults; a JSON null means "none".
  std::optional<int64_t> pad_token_id = 0, bos_token_id = 1, eos_token_id = 2;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }

  // From a parsed HF config.json object; `source` names it in errors. Rejects what this
  // implementation does not do (other activations, tied embeddings, rope scaling).
  static LlamaConfig from_json(const nlohmann::json& j, const std::string& source = "llama config");
  static LlamaConfig from_file(const std::filesystem::path& config_json);
};

// How the LLaMA's weights are stored.
struct LlamaStorage {
  kernels::WeightFormat linear = kernels::WeightFormat::f32;  // q/k/v/o, gate/up/down, lm_head
  torch::Dtype dense = torch::kFloat;                         // embed_tokens and the RMSNorm weights
  // Fresh weights as torch::nn::Linear/Embedding draw them; false: storage left uninitialised for a
  // loader to fill (nothing is initialised, nothing is held in fp32 on the way).
  bool init = true;
  // model.llama_mmap: packed weights of a quantized file used from its mapping instead of copied in
  // (FrozenLinearOptions::map_packed).
  bool map_packed = false;
  // The KV cache's dtype on the CPU, where activations are fp32 (other devices keep the activations'
  // dtype): fp32 beside fp32 weights (the original's numbers), fp16 beside 16-bit and quantized ones, as
  // llama.cpp's default cache: half the bytes a decode step reads per cached position.
  torch::Dtype cpu_kv_cache = torch::kFloat;

  // `model.llama_precision` (fp32, bf16, fp16, q8_0, q4_0; "auto" is resolved by the caller):
  // 16-bit precisions store everything 16-bit, as an HF torch_dtype load; quantized ones keep the
  // embedding and norms in fp16.
  static LlamaStorage from_precision(const std::string& precision, bool init = true);
};

// Per-layer keys/values of the tokens seen so far, [B, H_kv, T, head_dim] each (before the GQA
// repeat): views of buffers with room to grow in place (llama_append_to_cache).
struct LlamaKVCache {
  std::vector<torch::Tensor> keys, values;
  int64_t length() const { return keys.empty() ? 0 : keys.front().size(2); }
  bool empty() const { return keys.empty(); }
};

// Appends x [B,Hkv,L,Dh] to a layer's cache slot [B,Hkv,T,Dh], converted to `dtype`, and returns the slot
// (also stored in it). Without autograd the slot becomes a view of a buffer with room to grow in place.
torch::Tensor llama_append_to_cache(torch::Tensor& slot, const torch::Tensor& x, torch::Dtype dtype);
// The positions the buffer behind a slot holds when the slot is such a view (its first T), else 0.
int64_t llama_cache_room(const torch::Tensor& slot);

// x·rsqrt(mean(x²)+eps) in fp32 times weight. A 16-bit weight on CUDA casts the normed x to its dtype
// first (HF's order); on the CPU the result stays fp32 (the activations' dtype there).
struct LlamaRMSNormImpl : torch::nn::Module {
  LlamaRMSNormImpl(int64_t dim, double eps, torch::Dtype dtype = torch::kFloat);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(LlamaRMSNorm);

// Holds only the persistent `inv_freq` buffer (state-dict compatibility). It stays fp32 whatever
// dtype the model is cast to, as in the original (created with an explicit .float()).
// The cos/sin tables live in LlamaModel, shared by all layers.
struct LlamaRotaryEmbeddingImpl : torch::nn::Module {
  LlamaRotaryEmbeddingImpl(int64_t head_dim, double base);
  using torch::nn::Module::to;
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Dtype dtype, bool non_blocking = false) override;
  torch::Tensor inv_freq;  // [head_dim/2] fp32
};
TORCH_MODULE(LlamaRotaryEmbedding);

struct LlamaAttentionImpl : torch::nn::Module {
  LlamaAttentionImpl(const LlamaConfig& c, const LlamaStorage& s);
  // x [B,L,D]; cos/sin [B,1,L,Dh] (gathered at the positions); mask additive [B,1,L,T] or undefined;
  // past_k/past_v: this layer's cache slots or null (no cache); an undefined slot is empty; the slot
  // is replaced by the keys/values extended with this call's.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, torch::Tensor* past_k, torch::Tensor* past_v);
  FrozenLinear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  LlamaRotaryEmbedding rotary_emb{nullptr};
  int64_t num_heads, num_kv_heads, head_dim;
  torch::Dtype cpu_kv_cache;  // LlamaStorage::cpu_kv_cache
};
TORCH_MODULE(LlamaAttention);

struct LlamaMLPImpl : torch::nn::Module {
  LlamaMLPImpl(const LlamaConfig& c, const LlamaStorage& s);
  torch::Tensor forward(const torch::Tensor& x);  // down(silu(gate(x)) * up(x))
  FrozenLinear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMLP);

struct LlamaDecoderLayerImpl : torch::nn::Module {
  LlamaDecoderLayerImpl(const LlamaConfig& c, const LlamaStorage& s);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, torch::Tensor* past_k, torch::Tensor* past_v);
  LlamaAttention self_attn{nullptr};
  LlamaMLP mlp{nullptr};
  LlamaRMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(LlamaDecoderLayer);

// What one forward consumes. Exactly one of input_ids / inputs_embeds.
struct LlamaInputs {
  torch::Tensor input_ids;        // [B,L] int64
  torch::Tensor inputs_embeds;    // [B,L,D] (cast to the compute dtype)
  torch::Tensor attention_mask;   // [B,past+L], 1 = attend; undefined = all ones
  torch::Tensor position_ids;     // [B,L]; undefined = arange(past, past+L) for every row (NOT from the mask)
  torch::Tensor labels;           // [B,L] int64, -100 ignored; gives `loss`
  LlamaKVCache* cache = nullptr;  // read, then extended in place with this call's keys/values
  bool last_logits_only = false;  // lm_head on the last position only (decoding)
  // Training: only `loss` is wanted. The last position predicts nothing and unsupervised positions
  // need no logits, so the decoder runs on L-1 positions and lm_head on the supervised rows alone
  // (the loss of the full forward; `logits` stays undefined).
  bool loss_only = false;
};

struct LlamaOutput {
  torch::Tensor logits;  // [B,L,V] (or [B,1,V]) in the compute dtype
  torch::Tensor loss;    // 0-dim fp32: mean CE of logits[:, :-1] vs labels[:, 1:]; undefined without labels
};

// Additive decoder mask of HF 4.28 (`_prepare_decoder_attention_mask`): finfo(dtype).min above the
// causal diagonal (only when L > 1) and where attention_mask != 1, clamped at finfo.min where both
// apply (HF clamps the masked scores instead; same result). attention_mask [B,T] with T = past+L ->
// [B,1,L,T], or [1,1,L,T] when nothing is padded.
torch::Tensor llama_decoder_mask(const torch::Tensor& attention_mask, int64_t L, torch::Dtype dtype);

struct LlamaModelImpl : torch::nn::Module {
  LlamaModelImpl(const LlamaConfig& c, const LlamaStorage& s);
  // Final-normed hidden states [B,L,D].
  torch::Tensor forward(const LlamaInputs& in);
  // The activations' dtype: fp32 on the CPU, the RMSNorm weights' dtype elsewhere.
  torch::Dtype compute_dtype() const;
  // cos/sin [B,1,L,Dh] in `dtype` at `position_ids` [B,L]; the tables cover at least
  // max(max_position_embeddings, seq_len) positions (grown on demand, as HF does).
  std::pair<torch::Tensor, torch::Tensor> rope_at(const torch::Tensor& position_ids, int64_t seq_len,
                                                  torch::Dtype dtype);
  // The cos/sin tables themselves, [T,Dh] fp32 on `device` (contiguous), T as above.
  std::pair<torch::Tensor, torch::Tensor> rope_tables(int64_t seq_len, torch::Device device);

  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  LlamaRMSNorm norm{nullptr};
  LlamaConfig config;
  // A CPU decode step's forward runs through llama_decode_step.h (the same bits, a tenth of the LibTorch
  // ops); false runs every forward through the modules (tests compare the two).
  bool cpu_decode_step = true;

 private:
  // HF's non-persistent cos_cached/sin_cached [T,Dh] fp32, computed from the config formula
  // (1/theta^(2i/Dh)) like the original, not from the loaded inv_freq buffers.
  torch::Tensor rope_cos_, rope_sin_;
};
TORCH_MODULE(LlamaModel);

struct LlamaForCausalLMImpl : torch::nn::Module {
  explicit LlamaForCausalLMImpl(const LlamaConfig& c, const LlamaStorage& s = {});
  LlamaOutput forward(const LlamaInputs& in);
  torch::Tensor embed(const torch::Tensor& input_ids) const;  // embed_tokens(ids) in the compute dtype
  torch::Dtype dtype() const;                                 // compute dtype (LlamaModel::compute_dtype)
  torch::Device device() const;
  const LlamaConfig& config() const { return model->config; }
  kernels::WeightFormat linear_format() const { return lm_head->format(); }

  LlamaModel model{nullptr};
  FrozenLinear lm_head{nullptr};

 private:
  LlamaOutput loss_from_supervised_rows(const LlamaInputs& in);  // forward with loss_only
};
TORCH_MODULE(LlamaForCausalLM);

}  // namespace cb
