// BEATs audio encoder (chatbridge/models/beats/{BEATs,backbone}.py) as ChatBridge runs it:
// patch-embedded log-mel fbank -> post-LN / deep-norm transformer with a convolutional position
// embedding and a gated, bucketed relative position bias. Parameter names are the original's.
// The original: chatbridge/models/beats/; golden case `beats`.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "framework/checkpoint/state_dict.h"

namespace cb {

// BEATsConfig: the original's class defaults, overridden by a cfg dict (the `cfg` entry of
// BEATs_iter3_plus_AS2M.pt or a fixture's `beats_cfg`). Dropout settings are read but irrelevant:
// ChatBridge keeps BEATs frozen in eval mode.
struct BEATsConfig {
  int64_t input_patch_size = -1;
  int64_t embed_dim = 512;
  bool conv_bias = false;
  int64_t encoder_layers = 12;
  int64_t encoder_embed_dim = 768;
  int64_t encoder_ffn_embed_dim = 3072;
  int64_t encoder_attention_heads = 12;
  std::string activation_fn = "gelu";
  bool layer_norm_first = false;
  bool deep_norm = false;
  int64_t conv_pos = 128;
  int64_t conv_pos_groups = 16;
  bool relative_position_embedding = false;
  int64_t num_buckets = 320;
  int64_t max_distance = 1280;
  bool gru_rel_pos = false;
  bool finetuned_model = false;
  int64_t predictor_class = 527;

  // Unknown keys are ignored (the original stores them as attributes nobody reads); a known key
  // with the wrong JSON type or an impossible value throws cb::Error naming `source` and the key.
  static BEATsConfig from_json(const nlohmann::json& cfg, const std::string& source = "BEATs cfg");
};

// Conv1d(E, E, k, padding k/2, groups) with weight norm over dim 2 (weight = g * v / ||v||, the
// norm taken over dims 0 and 1 for each kernel tap): parameters `weight_g` [1,1,k], `weight_v`, `bias`.
struct WeightNormConv1dImpl : torch::nn::Module {
  WeightNormConv1dImpl(int64_t channels, int64_t kernel, int64_t groups);
  torch::Tensor forward(const torch::Tensor& x);  // [B,E,T] -> [B,E,T+1-k%2] (SamePad trims later)
  torch::Tensor weight_g, weight_v, bias;
  int64_t kernel, groups;
};
TORCH_MODULE(WeightNormConv1d);

struct BEATsAttentionImpl : torch::nn::Module {
  BEATsAttentionImpl(const BEATsConfig& cfg, torch::nn::Embedding shared_bias_table);
  // x: [B,L,E]; pos_bias: [B*H,L,L] from an earlier layer or undefined (then computed here when the
  // config has relative position embedding). Returns (attention output [B,L,E], pos_bias).
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, torch::Tensor pos_bias);
  torch::Tensor compute_bias(int64_t batch, int64_t length);  // [B*H,L,L]

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
  torch::nn::Linear grep_linear{nullptr};
  torch::Tensor grep_a;
  torch::nn::Embedding relative_attention_bias{nullptr};
  int64_t heads, head_dim, num_buckets, max_distance;
  bool gru_rel_pos;
};
TORCH_MODULE(BEATsAttention);

struct BEATsLayerImpl : torch::nn::Module {
  BEATsLayerImpl(const BEATsConfig& cfg, torch::nn::Embedding shared_bias_table);
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, torch::Tensor pos_bias);

  BEATsAttention self_attn{nullptr};
  torch::nn::LayerNorm self_attn_layer_norm{nullptr}, final_layer_norm{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  bool layer_norm_first;
  double deep_norm_alpha;  // (2·layers)^(1/4) with deep_norm, else 1
  std::string activation;
};
TORCH_MODULE(BEATsLayer);

struct BEATsEncoderImpl : torch::nn::Module {
  explicit BEATsEncoderImpl(const BEATsConfig& cfg);
  torch::Tensor forward(torch::Tensor x);  // [B,L,E] -> [B,L,E]

  torch::nn::ModuleList pos_conv{nullptr};  // holds the WeightNormConv1d as "pos_conv.0"
  WeightNormConv1d conv{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};
  torch::nn::ModuleList layers{nullptr};
  bool layer_norm_first;
};
TORCH_MODULE(BEATsEncoder);

struct BEATsImpl : torch::nn::Module {
  explicit BEATsImpl(BEATsConfig cfg);
  // fbank: [B,T,F] normalised log-mel (T, F multiples of the patch size) -> [B,(T/p)·(F/p),E]
  // (`BEATs.forward`: no padding mask).
  torch::Tensor forward(const torch::Tensor& fbank);
  // Fine-tuned checkpoints only: clip-level class probabilities sigmoid(mean_t predictor(x)) [B,C].
  torch::Tensor predict(const torch::Tensor& fbank);

  BEATsConfig cfg;
  torch::nn::Conv2d patch_embedding{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};
  torch::nn::Linear post_extract_proj{nullptr};  // absent when embed_dim == encoder_embed_dim
  BEATsEncoder encoder{nullptr};
  torch::nn::Linear predictor{nullptr};  // finetuned_model only
};
TORCH_MODULE(BEATs);

// Strict load of a BEATs state dict (keys without `prefix`, e.g. "audio_encoder."). The shared
// relative-attention-bias table may appear under layer 0 only (Microsoft's file) or under every
// layer with identical values (ChatBridge's state dict); differing copies are an error.
void load_beats_state_dict(BEATs& model, const StateDict& sd, const std::string& source,
                           const std::string& prefix = "");

// The `cfg` dict of a BEATs checkpoint file, without reading the weights.
BEATsConfig read_beats_config(const std::filesystem::path& path);

// Microsoft's checkpoint file (BEATs_iter3_plus_AS2M.pt): {'cfg': dict, 'model': state dict}.
// Builds the model from `cfg` and loads `model` strictly; the result is in eval mode.
BEATs load_beats_checkpoint(const std::filesystem::path& path);

}  // namespace cb
