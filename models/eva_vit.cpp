#include "models/eva_vit.h"

#include "framework/json_read.h"

#include <regex>

#include <cmath>

#include "framework/activation_checkpoint.h"
#include "framework/checkpoint/load.h"
#include "framework/error.h"
#include "framework/logging.h"
#include "framework/torch_compat.h"
#include "models/freeze.h"
#include "models/frozen_linear.h"

namespace cb {

namespace F = torch::nn::functional;

EvaVitConfig EvaVitConfig::from_json(const nlohmann::json& j, const std::string& source) {
  EvaVitConfig c;
  read_json_key(j, "img_size", c.img_size, source);
  read_json_key(j, "patch_size", c.patch_size, source);
  read_json_key(j, "embed_dim", c.embed_dim, source);
  read_json_key(j, "depth", c.depth, source);
  read_json_key(j, "num_heads", c.num_heads, source);
  read_json_key(j, "mlp_ratio", c.mlp_ratio, source);
  read_json_key(j, "qkv_bias", c.qkv_bias, source);
  read_json_key(j, "drop_path_rate", c.drop_path_rate, source);
  read_json_key(j, "use_checkpoint", c.use_grad_checkpoint, source);
  std::string norm;
  read_json_key(j, "norm_layer", norm, source);
  if (!norm.empty()) {  // partial(nn.LayerNorm, eps=1e-6), recorded as "LayerNorm(eps=1e-6)"
    std::smatch m;
    if (!std::regex_search(norm, m, std::regex(R"(eps=([0-9.eE+-]+))")))
      fail("{}: norm_layer '{}' names no eps", source, norm);
    c.layer_norm_eps = std::stod(m[1]);
  }
  return c;
}

EvaVitConfig EvaVitConfig::eva_vit_g(int64_t img_size, double drop_path_rate, bool use_grad_checkpoint) {
  EvaVitConfig c;
  c.img_size = img_size;
  c.patch_size = 14;
  c.embed_dim = 1408;
  c.depth = 39;
  c.num_heads = 1408 / 88;
  c.mlp_ratio = 4.3637;
  c.qkv_bias = true;
  c.layer_norm_eps = 1e-6;
  c.drop_path_rate = drop_path_rate;
  c.use_grad_checkpoint = use_grad_checkpoint;
  return c;
}

PatchEmbedImpl::PatchEmbedImpl(const EvaVitConfig& c) : img_size(c.img_size) {
  proj = register_module(
      "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(c.in_chans, c.embed_dim, c.patch_size).stride(c.patch_size)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& x) {
  if (x.dim() != 4 || x.size(2) != img_size || x.size(3) != img_size)
    fail("EVA ViT: input image size {} does not match the model ({}x{})", fmt::join(x.sizes(), "x"), img_size,
         img_size);
  // A 16-bit ViT on the CPU takes fp32 images (16-bit storage, fp32 arithmetic: encode_frame).
  const auto dtype = x.scalar_type();
  const auto y = proj->weight.scalar_type() == dtype
                     ? proj(x)
                     : F::conv2d(x, proj->weight.to(dtype),
                                 F::Conv2dFuncOptions().bias(proj->bias.to(dtype)).stride(proj->options.stride()));
  return y.flatten(2).transpose(1, 2);  // [B,D,g,g] -> [B,g*g,D]
}

EvaAttentionImpl::EvaAttentionImpl(const EvaVitConfig& c) : num_heads(c.num_heads) {
  const int64_t head_dim = c.embed_dim / c.num_heads;
  const int64_t all_head_dim = head_dim * c.num_heads;
  scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(c.embed_dim, 3 * all_head_dim).bias(false)));
  if (c.qkv_bias) {
    q_bias = register_parameter("q_bias", torch::zeros({all_head_dim}));
    v_bias = register_parameter("v_bias", torch::zeros({all_head_dim}));
  }
  proj = register_module("proj", torch::nn::Linear(all_head_dim, c.embed_dim));
}

torch::Tensor EvaAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), N = x.size(1);
  torch::Tensor bias;  // k has no bias: (q_bias, 0, v_bias)
  if (q_bias.defined()) bias = torch::cat({q_bias, torch::zeros_like(v_bias), v_bias});
  auto qkv_out = dense_linear(x, qkv->weight, bias);                                // [B,N,3*H*d]
  auto parts = qkv_out.reshape({B, N, 3, num_heads, -1}).permute({2, 0, 3, 1, 4});  // [3,B,H,N,d]
  auto out = compat::attention(parts[0], parts[1], parts[2], {}, scale);            // [B,H,N,d]
  return dense_linear(out.transpose(1, 2).reshape({B, N, -1}), proj->weight, proj->bias);
}

EvaMlpImpl::EvaMlpImpl(const EvaVitConfig& c) {
  fc1 = register_module("fc1", torch::nn::Linear(c.embed_dim, c.mlp_hidden()));
  fc2 = register_module("fc2", torch::nn::Linear(c.mlp_hidden(), c.embed_dim));
}

torch::Tensor EvaMlpImpl::forward(const torch::Tensor& x) {  // exact (erf) GELU
  return dense_linear(F::gelu(dense_linear(x, fc1->weight, fc1->bias)), fc2->weight, fc2->bias);
}

// Stochastic depth (timm drop_path): zero a sample's whole residual branch with probability p and
// rescale the survivors by 1/(1-p); identity in eval mode.
static torch::Tensor drop_path(const torch::Tensor& x, double p, bool training) {
  if (p == 0.0 || !training) return x;
  const double keep = 1.0 - p;
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  auto mask = torch::empty(shape, x.options()).bernoulli_(keep);
  return x.div(keep) * mask;
}

EvaBlockImpl::EvaBlockImpl(const EvaVitConfig& c, double drop_path) : drop_path(drop_path) {
  const auto ln = torch::nn::LayerNormOptions({c.embed_dim}).eps(c.layer_norm_eps);
  norm1 = register_module("norm1", torch::nn::LayerNorm(ln));
  attn = register_module("attn", EvaAttention(c));
  norm2 = register_module("norm2", torch::nn::LayerNorm(ln));
  mlp = register_module("mlp", EvaMlp(c));
}

torch::Tensor EvaBlockImpl::forward(const torch::Tensor& x) {
  auto h = x + cb::drop_path(attn(norm1(x)), drop_path, is_training());
  return h + cb::drop_path(mlp(norm2(h)), drop_path, is_training());
}

VisionTransformerImpl::VisionTransformerImpl(const EvaVitConfig& c) : config(c) {
  if (c.embed_dim % c.num_heads != 0)
    fail("EVA ViT config: embed_dim {} is not a multiple of num_heads {}", c.embed_dim, c.num_heads);
  patch_embed = register_module("patch_embed", PatchEmbed(c));
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, c.embed_dim}));
  pos_embed = register_parameter("pos_embed", torch::zeros({1, c.num_patches() + 1, c.embed_dim}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  // Stochastic-depth rates as the original computes them: float32 torch.linspace(0, rate, depth).
  // Built without storage (framework/meta_device.h) there is no value to read: the same ramp in double.
  const auto dpr = torch::linspace(0.0, c.drop_path_rate, c.depth);
  auto rate = [&](int64_t i) {
    return dpr.is_meta() ? c.drop_path_rate * i / std::max<int64_t>(c.depth - 1, 1) : dpr[i].item<double>();
  };
  for (int64_t i = 0; i < c.depth; ++i) blocks->push_back(EvaBlock(c, rate(i)));
  // The original's init (_init_weights + fix_init_weight); real weights come from eva_vit_g.pth.
  torch::NoGradGuard no_grad;
  // timm's trunc_normal_ cuts at +-2 absolute, i.e. 100 std: a plain normal is the same distribution.
  cls_token.normal_(0.0, 0.02);
  pos_embed.normal_(0.0, 0.02);
  for (const auto& m : modules(/*include_self=*/false))
    if (auto* linear = m->as<torch::nn::LinearImpl>()) {
      linear->weight.normal_(0.0, 0.02);
      if (linear->bias.defined()) linear->bias.zero_();
    }
  for (size_t i = 0; i < blocks->size(); ++i) {
    auto block = blocks[i]->as<EvaBlockImpl>();
    const double rescale = std::sqrt(2.0 * static_cast<double>(i + 1));
    block->attn->proj->weight.div_(rescale);
    block->mlp->fc2->weight.div_(rescale);
  }
}

torch::Tensor VisionTransformerImpl::forward(const torch::Tensor& image) {
  auto x = patch_embed(image);                                    // [B,g*g,D]
  x = torch::cat({cls_token.expand({x.size(0), -1, -1}), x}, 1);  // [B,1+g*g,D] (cat promotes, as under autocast)
  x = x + pos_embed;
  const bool checkpointing = config.use_grad_checkpoint && torch::GradMode::is_enabled();
  for (const auto& m : *blocks) {
    auto block = std::dynamic_pointer_cast<EvaBlockImpl>(m);  // shared: backward may outlive this call
    x = checkpointing ? checkpoint([block](const torch::Tensor& t) { return block->forward(t); }, x)
                      : block->forward(x);
  }
  return x;
}

torch::Tensor interpolate_pos_embed(const torch::Tensor& ckpt_pos_embed, int64_t grid) {
  if (ckpt_pos_embed.dim() != 3 || ckpt_pos_embed.size(0) != 1)
    fail("interpolate_pos_embed: pos_embed has shape {}, expected [1, 1+g*g, D]",
         fmt::join(ckpt_pos_embed.sizes(), "x"));
  auto pe = ckpt_pos_embed.to(torch::kFloat);
  const int64_t D = pe.size(2);
  const auto orig = static_cast<int64_t>(std::sqrt(static_cast<double>(pe.size(1) - 1)));  // int(n ** 0.5)
  if (orig == grid) return pe;
  spdlog::info("EVA ViT: position embedding interpolated from {}x{} to {}x{}", orig, orig, grid, grid);
  auto cls = pe.slice(1, 0, 1);                                                     // [1,1,D]
  auto tokens = pe.slice(1, 1).reshape({-1, orig, orig, D}).permute({0, 3, 1, 2});  // [1,D,g0,g0]
  tokens = F::interpolate(
      tokens,
      F::InterpolateFuncOptions().size(std::vector<int64_t>{grid, grid}).mode(torch::kBicubic).align_corners(false));
  tokens = tokens.permute({0, 2, 3, 1}).flatten(1, 2);  // [1,g*g,D]
  return torch::cat({cls, tokens}, 1);
}

LoadReport load_eva_vit_state_dict(VisionTransformer& model, const StateDict& sd, const std::string& source) {
  StateDict adjusted;
  for (const auto& kv : sd)
    adjusted.insert(kv.key(),
                    kv.key() == "pos_embed" ? interpolate_pos_embed(kv.value(), model->config.grid()) : kv.value());
  auto report = load_state_dict(*model, adjusted, /*strict=*/false, source);
  spdlog::info("EVA ViT: loaded {} tensors from {} ({} missing, {} ignored)", report.loaded, source,
               report.missing.size(), report.unexpected.size());
  return report;
}

LoadReport load_eva_vit_checkpoint(VisionTransformer& model, const std::filesystem::path& path) {
  return load_eva_vit_state_dict(model, load_state_dict_file(path), path.string());
}

void apply_vit_precision(VisionTransformer& model, const std::string& precision, const torch::Device& device) {
  apply_frozen_precision(*model, precision, device, "model.vit_precision");
}

}  // namespace cb
