#include "models/beats.h"

#include <cmath>

#include "framework/checkpoint/load.h"
#include "framework/checkpoint/torch_load.h"
#include "framework/error.h"
#include "framework/json_read.h"

namespace cb {

namespace {

// The original's `gelu` computes in fp32 and casts back; `relu` is plain.
torch::Tensor activate(const std::string& name, const torch::Tensor& x) {
  if (name == "gelu") return torch::gelu(x.to(torch::kFloat)).to(x.scalar_type());
  return torch::relu(x);
}

torch::nn::LayerNorm make_layer_norm(int64_t dim) {  // torch.nn.LayerNorm defaults (eps 1e-5, affine)
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5));
}

// The scalar leaves of a pickled cfg dict as JSON (nested containers are not BEATs settings).
nlohmann::json cfg_to_json(const pickle::Value& dict, const std::string& source) {
  using pickle::Kind;
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : dict.entries) {
    if (k->kind != Kind::Str) fail("{}: cfg has a non-string key", source);
    switch (v->kind) {
      case Kind::Bool: out[k->s] = v->b; break;
      case Kind::Int: out[k->s] = v->i; break;
      case Kind::Float: out[k->s] = v->f; break;
      case Kind::Str: out[k->s] = v->s; break;
      case Kind::None: out[k->s] = nullptr; break;
      default: break;
    }
  }
  return out;
}

}  // namespace

BEATsConfig BEATsConfig::from_json(const nlohmann::json& cfg, const std::string& source) {
  if (!cfg.is_object()) fail("{}: the BEATs cfg must be a dict, got {}", source, cfg.dump());
  BEATsConfig c;
  read_json_key(cfg, "input_patch_size", c.input_patch_size, source);
  read_json_key(cfg, "embed_dim", c.embed_dim, source);
  read_json_key(cfg, "conv_bias", c.conv_bias, source);
  read_json_key(cfg, "encoder_layers", c.encoder_layers, source);
  read_json_key(cfg, "encoder_embed_dim", c.encoder_embed_dim, source);
  read_json_key(cfg, "encoder_ffn_embed_dim", c.encoder_ffn_embed_dim, source);
  read_json_key(cfg, "encoder_attention_heads", c.encoder_attention_heads, source);
  read_json_key(cfg, "activation_fn", c.activation_fn, source);
  read_json_key(cfg, "layer_norm_first", c.layer_norm_first, source);
  read_json_key(cfg, "deep_norm", c.deep_norm, source);
  read_json_key(cfg, "conv_pos", c.conv_pos, source);
  read_json_key(cfg, "conv_pos_groups", c.conv_pos_groups, source);
  read_json_key(cfg, "relative_position_embedding", c.relative_position_embedding, source);
  read_json_key(cfg, "num_buckets", c.num_buckets, source);
  read_json_key(cfg, "max_distance", c.max_distance, source);
  read_json_key(cfg, "gru_rel_pos", c.gru_rel_pos, source);
  read_json_key(cfg, "finetuned_model", c.finetuned_model, source);
  read_json_key(cfg, "predictor_class", c.predictor_class, source);

  if (c.input_patch_size <= 0) fail("{}: input_patch_size must be positive, got {}", source, c.input_patch_size);
  if (c.embed_dim <= 0 || c.encoder_embed_dim <= 0 || c.encoder_ffn_embed_dim <= 0 || c.encoder_layers <= 0)
    fail("{}: embed_dim, encoder_embed_dim, encoder_ffn_embed_dim and encoder_layers must be positive", source);
  if (c.encoder_attention_heads <= 0 || c.encoder_embed_dim % c.encoder_attention_heads != 0)
    fail("{}: encoder_embed_dim {} is not divisible by encoder_attention_heads {}", source, c.encoder_embed_dim,
         c.encoder_attention_heads);
  if (c.activation_fn != "gelu" && c.activation_fn != "relu")
    fail("{}: activation_fn '{}' is not supported (gelu, relu)", source, c.activation_fn);
  if (c.conv_pos <= 0 || c.conv_pos_groups <= 0 || c.encoder_embed_dim % c.conv_pos_groups != 0)
    fail("{}: conv_pos {} / conv_pos_groups {} do not fit encoder_embed_dim {}", source, c.conv_pos, c.conv_pos_groups,
         c.encoder_embed_dim);
  if (c.relative_position_embedding && (c.num_buckets < 4 || c.max_distance <= c.num_buckets / 4))
    fail("{}: num_buckets {} / max_distance {} are not a usable bucket table", source, c.num_buckets, c.max_distance);
  if (c.deep_norm && c.layer_norm_first) fail("{}: deep_norm and layer_norm_first exclude each other", source);
  return c;
}

// ---------------------------------------------------------------------------------------------

WeightNormConv1dImpl::WeightNormConv1dImpl(int64_t channels, int64_t kernel_, int64_t groups_)
    : kernel(kernel_), groups(groups_) {
  // The original's init: v ~ N(0, sqrt(4 / (k·E))), then weight_norm sets g = ||v|| per tap, so a
  // freshly built encoder is finite (zeros in v would make g·v/||v|| NaN).
  auto v = torch::randn({channels, channels / groups, kernel}) * std::sqrt(4.0 / double(kernel * channels));
  weight_g = register_parameter("weight_g", at::norm(v, 2, at::IntArrayRef{0, 1}, /*keepdim=*/true));
  weight_v = register_parameter("weight_v", v);
  bias = register_parameter("bias", torch::zeros({channels}));
}

torch::Tensor WeightNormConv1dImpl::forward(const torch::Tensor& x) {
  auto w = at::_weight_norm(weight_v, weight_g, 2);  // g · v / ||v||_(dims 0,1)
  return torch::conv1d(x, w, bias, /*stride=*/1, /*padding=*/kernel / 2, /*dilation=*/1, groups);
}

// ---------------------------------------------------------------------------------------------

BEATsAttentionImpl::BEATsAttentionImpl(const BEATsConfig& cfg, torch::nn::Embedding shared_bias_table)
    : heads(cfg.encoder_attention_heads),
      head_dim(cfg.encoder_embed_dim / cfg.encoder_attention_heads),
      num_buckets(cfg.num_buckets),
      max_distance(cfg.max_distance),
      gru_rel_pos(cfg.gru_rel_pos) {
  const int64_t e = cfg.encoder_embed_dim;
  if (shared_bias_table) relative_attention_bias = register_module("relative_attention_bias", shared_bias_table);
  k_proj = register_module("k_proj", torch::nn::Linear(e, e));
  v_proj = register_module("v_proj", torch::nn::Linear(e, e));
  q_proj = register_module("q_proj", torch::nn::Linear(e, e));
  out_proj = register_module("out_proj", torch::nn::Linear(e, e));
  if (gru_rel_pos) {
    grep_linear = register_module("grep_linear", torch::nn::Linear(head_dim, 8));
    grep_a = register_parameter("grep_a", torch::ones({1, heads, 1, 1}));
  }
}

torch::Tensor BEATsAttentionImpl::compute_bias(int64_t batch, int64_t length) {
  // T5-style bidirectional buckets of rel = key − query, computed in float32 like the original.
  auto pos = torch::arange(length, torch::kLong);
  auto rel = pos.unsqueeze(0) - pos.unsqueeze(1);  // [L,L]
  const int64_t half = num_buckets / 2, max_exact = half / 2;
  auto bucket = (rel > 0).to(torch::kLong) * half;
  auto dist = rel.abs();
  auto large = max_exact + (torch::log(dist.to(torch::kFloat) / max_exact) /
                            std::log(double(max_distance) / double(max_exact)) * (half - max_exact))
                               .to(torch::kLong);
  large = torch::minimum(large, torch::full_like(large, half - 1));
  bucket = bucket + torch::where(dist < max_exact, dist, large);
  // Buckets are computed on the CPU (as the original) and looked up where the table lives.
  auto values =
      relative_attention_bias(bucket.to(relative_attention_bias->weight.device())).permute({2, 0, 1});  // [H,L,L]
  return values.unsqueeze(0).repeat({batch, 1, 1, 1}).view({batch * heads, length, length});
}

std::pair<torch::Tensor, torch::Tensor> BEATsAttentionImpl::forward(const torch::Tensor& x, torch::Tensor pos_bias) {
  const int64_t B = x.size(0), L = x.size(1), E = x.size(2);
  const double scaling = std::pow(double(head_dim), -0.5);
  const double alpha = 32;
  if (relative_attention_bias && !pos_bias.defined()) pos_bias = compute_bias(B, L);

  // q is scaled by head_dim^-½ and 1/alpha; scores are (qk − rowmax)·alpha (the original's
  // overflow guard — reproduced op for op).
  auto q = q_proj(x) * scaling;
  q = q * (1 / alpha);
  auto k = k_proj(x), v = v_proj(x);
  auto heads_first = [&](const torch::Tensor& t) {  // [B,L,E] -> [B*H,L,d] (index b*H + h)
    return t.view({B, L, heads, head_dim}).permute({0, 2, 1, 3}).reshape({B * heads, L, head_dim});
  };
  q = heads_first(q), k = heads_first(k), v = heads_first(v);

  auto scores = torch::bmm(q, k.transpose(1, 2));  // [B*H,L,L]
  scores = (scores - std::get<0>(scores.max(-1, /*keepdim=*/true))) * alpha;

  if (pos_bias.defined()) {
    auto rel = pos_bias;
    if (gru_rel_pos) {
      // Gate per (batch, head, query) from the unscaled query: σ(grep_linear(q_h)) summed in pairs of 4.
      auto qh = q.view({B, heads, L, head_dim}) * alpha / scaling;
      auto g = torch::sigmoid(grep_linear(qh).view({B, heads, L, 2, 4}).sum(-1));  // [B,H,L,2]
      auto gate_a = g.narrow(-1, 0, 1), gate_b = g.narrow(-1, 1, 1);
      auto gate = gate_a * (gate_b * grep_a - 1.0) + 2.0;  // [B,H,L,1]
      rel = gate.view({B * heads, L, 1}) * pos_bias;
    }
    scores = scores + rel.view(scores.sizes());
  }
  auto probs = torch::softmax(scores, -1).to(scores.scalar_type());
  auto out = torch::bmm(probs, v);  // [B*H,L,d]
  out = out.view({B, heads, L, head_dim}).permute({0, 2, 1, 3}).reshape({B, L, E});
  return {out_proj(out), pos_bias};
}

// ---------------------------------------------------------------------------------------------

BEATsLayerImpl::BEATsLayerImpl(const BEATsConfig& cfg, torch::nn::Embedding shared_bias_table)
    : layer_norm_first(cfg.layer_norm_first),
      deep_norm_alpha(cfg.deep_norm ? std::pow(2.0 * double(cfg.encoder_layers), 0.25) : 1.0),
      activation(cfg.activation_fn) {
  self_attn = register_module("self_attn", BEATsAttention(cfg, shared_bias_table));
  self_attn_layer_norm = register_module("self_attn_layer_norm", make_layer_norm(cfg.encoder_embed_dim));
  fc1 = register_module("fc1", torch::nn::Linear(cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim));
  fc2 = register_module("fc2", torch::nn::Linear(cfg.encoder_ffn_embed_dim, cfg.encoder_embed_dim));
  final_layer_norm = register_module("final_layer_norm", make_layer_norm(cfg.encoder_embed_dim));
}

std::pair<torch::Tensor, torch::Tensor> BEATsLayerImpl::forward(const torch::Tensor& x, torch::Tensor pos_bias) {
  if (layer_norm_first) {  // pre-LN
    auto [a, bias] = self_attn(self_attn_layer_norm(x), pos_bias);
    auto h = x + a;
    return {h + fc2(activate(activation, fc1(final_layer_norm(h)))), bias};
  }
  // post-LN; deep-norm scales the residual by alpha
  auto [a, bias] = self_attn(x, pos_bias);
  auto h = self_attn_layer_norm(x * deep_norm_alpha + a);
  auto f = fc2(activate(activation, fc1(h)));
  return {final_layer_norm(h * deep_norm_alpha + f), bias};
}

// ---------------------------------------------------------------------------------------------

BEATsEncoderImpl::BEATsEncoderImpl(const BEATsConfig& cfg) : layer_norm_first(cfg.layer_norm_first) {
  conv = WeightNormConv1d(cfg.encoder_embed_dim, cfg.conv_pos, cfg.conv_pos_groups);
  pos_conv = register_module("pos_conv", torch::nn::ModuleList(conv));
  // One relative-bias table for all layers (the original aliases layers[i>0] to layer 0's).
  torch::nn::Embedding table{nullptr};
  if (cfg.relative_position_embedding) table = torch::nn::Embedding(cfg.num_buckets, cfg.encoder_attention_heads);
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.encoder_layers; ++i) layers->push_back(BEATsLayer(cfg, table));
  layer_norm = register_module("layer_norm", make_layer_norm(cfg.encoder_embed_dim));
}

torch::Tensor BEATsEncoderImpl::forward(torch::Tensor x) {
  // Convolutional position embedding: conv -> SamePad (even kernel: drop the last frame) -> GELU.
  auto xc = conv(x.transpose(1, 2));  // [B,E,L(+1)]
  if (conv->kernel % 2 == 0) xc = xc.narrow(2, 0, xc.size(2) - 1);
  x = x + torch::gelu(xc).transpose(1, 2);
  if (!layer_norm_first) x = layer_norm(x);

  torch::Tensor pos_bias;  // computed by layer 0, reused by the rest
  for (const auto& m : *layers) std::tie(x, pos_bias) = m->as<BEATsLayer>()->forward(x, pos_bias);
  if (layer_norm_first) x = layer_norm(x);
  return x;
}

// ---------------------------------------------------------------------------------------------

BEATsImpl::BEATsImpl(BEATsConfig c) : cfg(std::move(c)) {
  if (cfg.embed_dim != cfg.encoder_embed_dim)
    post_extract_proj = register_module("post_extract_proj", torch::nn::Linear(cfg.embed_dim, cfg.encoder_embed_dim));
  patch_embedding = register_module("patch_embedding",
                                    torch::nn::Conv2d(torch::nn::Conv2dOptions(1, cfg.embed_dim, cfg.input_patch_size)
                                                          .stride(cfg.input_patch_size)
                                                          .bias(cfg.conv_bias)));
  encoder = register_module("encoder", BEATsEncoder(cfg));
  layer_norm = register_module("layer_norm", make_layer_norm(cfg.embed_dim));
  if (cfg.finetuned_model)
    predictor = register_module("predictor", torch::nn::Linear(cfg.encoder_embed_dim, cfg.predictor_class));
}

torch::Tensor BEATsImpl::forward(const torch::Tensor& fbank) {
  if (fbank.dim() != 3 || fbank.size(1) < cfg.input_patch_size || fbank.size(2) < cfg.input_patch_size)
    fail("BEATs: expected a fbank [B, T, F] with T, F >= the patch size {}, got {}", cfg.input_patch_size,
         fmt::join(fbank.sizes(), "x"));
  auto x = patch_embedding(fbank.unsqueeze(1));               // [B,C,T/p,F/p]
  x = x.reshape({x.size(0), x.size(1), -1}).transpose(1, 2);  // [B,N,C], frequency fastest
  x = layer_norm(x);
  if (post_extract_proj) x = post_extract_proj(x);  // [B,N,E]
  return encoder(x);
}

torch::Tensor BEATsImpl::predict(const torch::Tensor& fbank) {
  if (!predictor) fail("BEATs: predict() needs a fine-tuned checkpoint (finetuned_model: true)");
  return torch::sigmoid(predictor(forward(fbank)).mean(1));
}

// ---------------------------------------------------------------------------------------------

void load_beats_state_dict(BEATs& model, const StateDict& sd, const std::string& source, const std::string& prefix) {
  StateDict full = sd;
  if (model->cfg.relative_position_embedding) {
    const std::string suffix = ".self_attn.relative_attention_bias.weight";
    const auto first = prefix + "encoder.layers.0" + suffix;
    const auto* table = sd.find(first);
    if (!table) fail("{}: missing '{}' (the shared relative position bias table)", source, first);
    for (int64_t i = 1; i < model->cfg.encoder_layers; ++i) {
      const auto key = prefix + "encoder.layers." + std::to_string(i) + suffix;
      if (const auto* copy = sd.find(key)) {
        if (!copy->sizes().equals(table->sizes()) || !torch::equal(*copy, *table))
          fail("{}: '{}' differs from '{}', but BEATs shares one relative position bias table", source, key, first);
      } else {
        full.insert(key, *table);
      }
    }
  }
  load_state_dict(*model, full, /*strict=*/true, source, prefix);
}

BEATsConfig read_beats_config(const std::filesystem::path& path) {
  const std::string source = path.string();
  const auto obj = torch_load(path);
  const auto* cfg = obj.root->is_dict() ? obj.root->get("cfg") : nullptr;
  if (!cfg || !cfg->is_dict()) fail("{}: not a BEATs checkpoint (no 'cfg' dict at the root)", source);
  return BEATsConfig::from_json(cfg_to_json(*cfg, source), source + " cfg");
}

BEATs load_beats_checkpoint(const std::filesystem::path& path) {
  const std::string source = path.string();
  BEATs model(read_beats_config(path));
  load_beats_state_dict(model, load_state_dict_file(path, "model"), source);
  model->eval();
  return model;
}

}  // namespace cb
