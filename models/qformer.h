// The Q-Former as ChatBridge uses it: LAVIS Qformer.py `BertLMHeadModel` after ChatBridge's pruning
// (no MLM head, no word/position embeddings, no text-branch FFN), i.e. only the query branch:
// queries -> embeddings.LayerNorm -> layers of [self-attention, cross-attention to the encoder tokens
// every `cross_attention_freq` layers, intermediate_query/output_query FFN]. State-dict names as the
// original below `bert.` (ChatBridge registers this module as `Qformer`).
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "framework/checkpoint/state_dict.h"

namespace cb {

struct BertConfig {
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  std::string hidden_act = "gelu";
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  int64_t max_position_embeddings = 512;
  double layer_norm_eps = 1e-12;
  double initializer_range = 0.02;
  // Q-Former additions (Blip2Base.init_Qformer).
  int64_t encoder_width = 1408;
  bool add_cross_attention = true;
  int64_t cross_attention_freq = 2;
  int64_t query_length = 32;
  // LAVIS BertEncoder: activation checkpointing per layer while training (HF config key).
  bool gradient_checkpointing = false;

  // A Hugging Face BERT config.json object; keys it lacks keep the defaults above (bert-base-uncased
  // plus the Q-Former fields as ChatBridge sets them).
  static BertConfig from_json(const nlohmann::json& j);
  // Blip2Base.init_Qformer(num_query_token, vision_width, cross_attention_freq, drop) applied to `base`
  // (bert-base-uncased): without `drop` both dropout probabilities become 0.
  static BertConfig for_qformer(BertConfig base, int64_t num_query_token, int64_t vision_width,
                                int64_t cross_attention_freq = 2, bool drop = false);

  bool has_cross_attention(int64_t layer) const { return add_cross_attention && layer % cross_attention_freq == 0; }
};

// BertSelfAttention: query from the hidden states; key/value from `kv_width`-wide inputs (the hidden
// states themselves, or the encoder tokens for cross-attention).
struct BertSelfAttentionImpl : torch::nn::Module {
  BertSelfAttentionImpl(const BertConfig& c, int64_t kv_width);
  // h [B,Nq,H], kv [B,K,kv_width], additive mask broadcastable to [B,heads,Nq,K] -> [B,Nq,H]
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& kv, const torch::Tensor& mask);

  int64_t num_heads, head_dim;
  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertSelfAttention);

// dense -> dropout -> LayerNorm(x + residual): BertSelfOutput and (with in = intermediate) BertOutput.
struct BertResidualOutputImpl : torch::nn::Module {
  BertResidualOutputImpl(const BertConfig& c, int64_t in_features);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual);

  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertResidualOutput);

struct BertAttentionImpl : torch::nn::Module {
  BertAttentionImpl(const BertConfig& c, int64_t kv_width);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& kv, const torch::Tensor& mask);

  BertSelfAttention self{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertAttention);

struct BertIntermediateImpl : torch::nn::Module {
  explicit BertIntermediateImpl(const BertConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // gelu(dense(x)) [.., intermediate]

  torch::nn::Linear dense{nullptr};
};
TORCH_MODULE(BertIntermediate);

struct QformerLayerImpl : torch::nn::Module {
  QformerLayerImpl(const BertConfig& c, int64_t index);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& self_mask, const torch::Tensor& encoder,
                        const torch::Tensor& encoder_mask);

  BertAttention attention{nullptr}, crossattention{nullptr};  // crossattention only on cross layers
  BertIntermediate intermediate_query{nullptr};
  BertResidualOutput output_query{nullptr};
};
TORCH_MODULE(QformerLayer);

// BertEmbeddings reduced to what survives pruning: LayerNorm + dropout over the query embeddings,
// and the `position_ids` buffer [1, max_position_embeddings] that stays in the state dict.
struct QformerEmbeddingsImpl : torch::nn::Module {
  explicit QformerEmbeddingsImpl(const BertConfig& c);
  torch::Tensor forward(const torch::Tensor& query_embeds);

  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
  torch::Tensor position_ids;
};
TORCH_MODULE(QformerEmbeddings);

struct QformerEncoderImpl : torch::nn::Module {
  explicit QformerEncoderImpl(const BertConfig& c);
  torch::nn::ModuleList layer{nullptr};
};
TORCH_MODULE(QformerEncoder);

// `bert` of the pruned BertLMHeadModel (BertModel without pooler).
struct QformerBertImpl : torch::nn::Module {
  explicit QformerBertImpl(const BertConfig& c);
  // query_embeds [B,Nq,H], encoder_hidden_states [B,K,encoder_width], encoder_attention_mask [B,K]
  // (1 = attend) -> last_hidden_state [B,Nq,H]
  torch::Tensor forward(const torch::Tensor& query_embeds, const torch::Tensor& encoder_hidden_states,
                        const torch::Tensor& encoder_attention_mask);

  BertConfig config;
  QformerEmbeddings embeddings{nullptr};
  QformerEncoder encoder{nullptr};
};
TORCH_MODULE(QformerBert);

// What ChatBridge holds as `Qformer`; its only child is `bert`.
struct QformerImpl : torch::nn::Module {
  explicit QformerImpl(const BertConfig& c);
  torch::Tensor forward(const torch::Tensor& query_embeds, const torch::Tensor& encoder_hidden_states,
                        const torch::Tensor& encoder_attention_mask) {
    return bert(query_embeds, encoder_hidden_states, encoder_attention_mask);
  }

  QformerBert bert{nullptr};
};
TORCH_MODULE(Qformer);

// Query tokens as init_Qformer creates them: [1, num_query_token, hidden] ~ N(0, initializer_range).
torch::Tensor init_query_tokens(const BertConfig& c, int64_t num_query_token);

// The BLIP-2 checkpoint's `model` state dict in ChatBridge's key space, as load_from_pretrained does:
// `query_tokens` is also offered as `image_query_tokens` unless the checkpoint already has that key.
// Loading the result non-strictly into ChatBridge ignores the pruned text-branch keys
// (`Qformer.cls.*`, word/position embeddings, per-layer `intermediate`/`output`) and BLIP-2's heads.
StateDict blip2_to_chatbridge_keys(const StateDict& blip2_model);

// The `model` entry of a LAVIS BLIP-2 checkpoint (blip2_pretrained*.pth), other top-level entries ignored.
StateDict read_blip2_checkpoint(const std::filesystem::path& path);

// Loads the `Qformer.` part of a BLIP-2 (or ChatBridge) state dict into `qformer` non-strictly and
// logs how many keys matched; keys of the pruned text branch are ignored.
LoadReport load_qformer_state_dict(Qformer& qformer, const StateDict& sd, const std::string& source);

}  // namespace cb
