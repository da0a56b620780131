// EVA-CLIP ViT (chatbridge/models/eva_vit.py `VisionTransformer`) with exactly the options
// `create_eva_vit_g` uses: absolute position embedding, q/v biases with a zero k bias, pre-norm blocks,
// no relative position bias, no layer scale, no final norm or head. State-dict names as the original
// (`cls_token`, `pos_embed`, `patch_embed.proj.*`, `blocks.{i}.{norm1,attn,norm2,mlp}.*`).
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

#include "framework/checkpoint/state_dict.h"

namespace cb {

struct EvaVitConfig {
  int64_t img_size = 224;
  int64_t patch_size = 14;
  int64_t in_chans = 3;
  int64_t embed_dim = 1408;
  int64_t depth = 39;
  int64_t num_heads = 16;
  double mlp_ratio = 4.3637;
  bool qkv_bias = true;
  double layer_norm_eps = 1e-6;
  double drop_path_rate = 0.0;       // stochastic depth, ramped linearly over the blocks
  bool use_grad_checkpoint = false;  // activation checkpointing per block (training only)

  // ViT-g/14 as ChatBridge builds it: 39 of EVA-CLIP's 40 blocks, 1408 wide, 16 heads of 88.
  // The VisionTransformer constructor arguments as a fixture/config records them (img_size,
  // patch_size, embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path_rate, use_checkpoint,
  // norm_layer "LayerNorm(eps=...)"); absent keys keep the ViT-g values.
  static EvaVitConfig from_json(const nlohmann::json& j, const std::string& source = "ViT config");
  static EvaVitConfig eva_vit_g(int64_t img_size = 224, double drop_path_rate = 0.0, bool use_grad_checkpoint = false);

  int64_t grid() const { return img_size / patch_size; }  // patches per side
  int64_t num_patches() const { return grid() * grid(); }
  int64_t mlp_hidden() const {
    return static_cast<int64_t>(static_cast<double>(embed_dim) * mlp_ratio);
  }  // int(), as Python
};

struct PatchEmbedImpl : torch::nn::Module {
  explicit PatchEmbedImpl(const EvaVitConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // [B,C,H,W] -> [B, grid*grid, D]

  int64_t img_size;
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

struct EvaAttentionImpl : torch::nn::Module {
  explicit EvaAttentionImpl(const EvaVitConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // [B,N,D] -> [B,N,D]

  int64_t num_heads;
  double scale;
  torch::nn::Linear qkv{nullptr}, proj{nullptr};  // qkv has no bias parameter of its own
  torch::Tensor q_bias, v_bias;                   // undefined unless qkv_bias
};
TORCH_MODULE(EvaAttention);

struct EvaMlpImpl : torch::nn::Module {
  explicit EvaMlpImpl(const EvaVitConfig& c);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(EvaMlp);

struct EvaBlockImpl : torch::nn::Module {
  EvaBlockImpl(const EvaVitConfig& c, double drop_path);
  torch::Tensor forward(const torch::Tensor& x);  // [B,N,D] -> [B,N,D]

  double drop_path;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  EvaAttention attn{nullptr};
  EvaMlp mlp{nullptr};
};
TORCH_MODULE(EvaBlock);

struct VisionTransformerImpl : torch::nn::Module {
  explicit VisionTransformerImpl(const EvaVitConfig& c);
  // [B,3,img,img] -> [B, 1 + grid*grid, D] (cls token first): the token sequence after the last block.
  torch::Tensor forward(const torch::Tensor& image);

  int64_t num_features() const { return config.embed_dim; }

  EvaVitConfig config;
  PatchEmbed patch_embed{nullptr};
  torch::Tensor cls_token, pos_embed;  // [1,1,D], [1,1+grid*grid,D]
  torch::nn::ModuleList blocks{nullptr};
};
TORCH_MODULE(VisionTransformer);

// interpolate_pos_embed: a checkpoint position embedding [1, 1+g*g, D] resized to the model's grid
// (`grid` per side). The cls row is kept; the g*g grid is resampled bicubically
// (align_corners=false) in fp32. Returned unchanged (as fp32) when g == grid.
torch::Tensor interpolate_pos_embed(const torch::Tensor& ckpt_pos_embed, int64_t grid);

// What create_eva_vit_g does with the LAVIS eva_vit_g.pth state dict (flat keys, no prefix):
// interpolate `pos_embed` to the model's grid, then load non-strictly (extra blocks of the 40-block
// checkpoint and any other unknown key are ignored; values are cast to the model's dtypes).
LoadReport load_eva_vit_state_dict(VisionTransformer& model, const StateDict& sd, const std::string& source);

// The same from the LAVIS `eva_vit_g.pth` file (a bare torch.save'd state dict, fp16 values).
LoadReport load_eva_vit_checkpoint(VisionTransformer& model, const std::filesystem::path& path);

// `vit_precision` on the ViT: apply_frozen_precision (models/freeze.h).
void apply_vit_precision(VisionTransformer& model, const std::string& precision, const torch::Device& device);

}  // namespace cb
