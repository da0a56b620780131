#include "models/qformer.h"

#include <cmath>
#include <limits>

#include "framework/activation_checkpoint.h"
#include "framework/checkpoint/load.h"
#include "framework/error.h"
#include "framework/json_read.h"
#include "framework/logging.h"

namespace cb {

namespace F = torch::nn::functional;

BertConfig BertConfig::from_json(const nlohmann::json& j) {
  BertConfig c;
  read_json_key(j, "hidden_size", c.hidden_size, "BERT config");
  read_json_key(j, "num_hidden_layers", c.num_hidden_layers, "BERT config");
  read_json_key(j, "num_attention_heads", c.num_attention_heads, "BERT config");
  read_json_key(j, "intermediate_size", c.intermediate_size, "BERT config");
  read_json_key(j, "hidden_act", c.hidden_act, "BERT config");
  read_json_key(j, "hidden_dropout_prob", c.hidden_dropout_prob, "BERT config");
  read_json_key(j, "attention_probs_dropout_prob", c.attention_probs_dropout_prob, "BERT config");
  read_json_key(j, "max_position_embeddings", c.max_position_embeddings, "BERT config");
  read_json_key(j, "layer_norm_eps", c.layer_norm_eps, "BERT config");
  read_json_key(j, "initializer_range", c.initializer_range, "BERT config");
  read_json_key(j, "encoder_width", c.encoder_width, "BERT config");
  read_json_key(j, "add_cross_attention", c.add_cross_attention, "BERT config");
  read_json_key(j, "cross_attention_freq", c.cross_attention_freq, "BERT config");
  read_json_key(j, "query_length", c.query_length, "BERT config");
  read_json_key(j, "gradient_checkpointing", c.gradient_checkpointing, "BERT config");
  if (c.hidden_act != "gelu")
    fail("BERT config: hidden_act '{}' is not supported (the Q-Former uses 'gelu')", c.hidden_act);
  if (c.hidden_size % c.num_attention_heads != 0)
    fail("BERT config: hidden_size {} is not a multiple of num_attention_heads {}", c.hidden_size,
         c.num_attention_heads);
  if (c.add_cross_attention && c.cross_attention_freq < 1)
    fail("BERT config: cross_attention_freq must be >= 1, got {}", c.cross_attention_freq);
  return c;
}

BertConfig BertConfig::for_qformer(BertConfig base, int64_t num_query_token, int64_t vision_width,
                                   int64_t cross_attention_freq, bool drop) {
  base.encoder_width = vision_width;
  base.add_cross_attention = true;
  base.cross_attention_freq = cross_attention_freq;
  base.query_length = num_query_token;
  if (!drop) base.hidden_dropout_prob = base.attention_probs_dropout_prob = 0.0;
  return base;
}

BertSelfAttentionImpl::BertSelfAttentionImpl(const BertConfig& c, int64_t kv_width)
    : num_heads(c.num_attention_heads), head_dim(c.hidden_size / c.num_attention_heads) {
  query = register_module("query", torch::nn::Linear(c.hidden_size, c.hidden_size));
  key = register_module("key", torch::nn::Linear(kv_width, c.hidden_size));
  value = register_module("value", torch::nn::Linear(kv_width, c.hidden_size));
  dropout = register_module("dropout", torch::nn::Dropout(c.attention_probs_dropout_prob));
}

torch::Tensor BertSelfAttentionImpl::forward(const torch::Tensor& h, const torch::Tensor& kv,
                                             const torch::Tensor& mask) {
  const int64_t B = h.size(0);
  auto heads = [&](const torch::Tensor& t) { return t.view({B, -1, num_heads, head_dim}).permute({0, 2, 1, 3}); };
  auto q = heads(query(h)), k = heads(key(kv)), v = heads(value(kv));  // [B,heads,L,d]
  // As the original: scores / sqrt(d) + mask, softmax, dropout on the probabilities.
  auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(head_dim)) + mask;
  auto probs = dropout(torch::softmax(scores, -1));
  auto ctx = torch::matmul(probs, v).permute({0, 2, 1, 3}).contiguous();  // [B,Nq,heads,d]
  return ctx.view({B, -1, num_heads * head_dim});
}

BertResidualOutputImpl::BertResidualOutputImpl(const BertConfig& c, int64_t in_features) {
  dense = register_module("dense", torch::nn::Linear(in_features, c.hidden_size));
  LayerNorm = register_module("LayerNorm",
                              torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", torch::nn::Dropout(c.hidden_dropout_prob));
}

torch::Tensor BertResidualOutputImpl::forward(const torch::Tensor& x, const torch::Tensor& residual) {
  return LayerNorm(dropout(dense(x)) + residual);
}

BertAttentionImpl::BertAttentionImpl(const BertConfig& c, int64_t kv_width) {
  self = register_module("self", BertSelfAttention(c, kv_width));
  output = register_module("output", BertResidualOutput(c, c.hidden_size));
}

torch::Tensor BertAttentionImpl::forward(const torch::Tensor& h, const torch::Tensor& kv, const torch::Tensor& mask) {
  return output(self(h, kv, mask), h);
}

BertIntermediateImpl::BertIntermediateImpl(const BertConfig& c) {
  dense = register_module("dense", torch::nn::Linear(c.hidden_size, c.intermediate_size));
}

torch::Tensor BertIntermediateImpl::forward(const torch::Tensor& x) { return F::gelu(dense(x)); }  // erf GELU

QformerLayerImpl::QformerLayerImpl(const BertConfig& c, int64_t index) {
  attention = register_module("attention", BertAttention(c, c.hidden_size));
  if (c.has_cross_attention(index))
    crossattention = register_module("crossattention", BertAttention(c, c.encoder_width));
  intermediate_query = register_module("intermediate_query", BertIntermediate(c));
  output_query = register_module("output_query", BertResidualOutput(c, c.intermediate_size));
}

torch::Tensor QformerLayerImpl::forward(const torch::Tensor& h, const torch::Tensor& self_mask,
                                        const torch::Tensor& encoder, const torch::Tensor& encoder_mask) {
  auto x = attention(h, h, self_mask);  // [B,Nq,H]
  if (crossattention) x = crossattention(x, encoder, encoder_mask);
  return output_query(intermediate_query(x), x);
}

QformerEmbeddingsImpl::QformerEmbeddingsImpl(const BertConfig& c) {
  LayerNorm = register_module("LayerNorm",
                              torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", torch::nn::Dropout(c.hidden_dropout_prob));
  position_ids = register_buffer("position_ids", torch::arange(c.max_position_embeddings, torch::kLong).unsqueeze(0));
}

// Without input_ids the original embeds the queries alone: no position embedding is added.
torch::Tensor QformerEmbeddingsImpl::forward(const torch::Tensor& query_embeds) {
  return dropout(LayerNorm(query_embeds));
}

QformerEncoderImpl::QformerEncoderImpl(const BertConfig& c) {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layer->push_back(QformerLayer(c, i));
}

QformerBertImpl::QformerBertImpl(const BertConfig& c) : config(c) {
  embeddings = register_module("embeddings", QformerEmbeddings(c));
  encoder = register_module("encoder", QformerEncoder(c));
  // BertPreTrainedModel._init_weights (LayerNorms already start at 1/0).
  torch::NoGradGuard no_grad;
  for (const auto& m : modules(/*include_self=*/false))
    if (auto* linear = m->as<torch::nn::LinearImpl>()) {
      linear->weight.normal_(0.0, c.initializer_range);
      linear->bias.zero_();
    }
}

// torch.finfo(dtype).min, used by HF's invert_attention_mask.
static double finfo_min(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat: return std::numeric_limits<float>::lowest();
    case torch::kDouble: return std::numeric_limits<double>::lowest();
    case torch::kHalf: return std::numeric_limits<c10::Half>::lowest();
    case torch::kBFloat16: return std::numeric_limits<c10::BFloat16>::lowest();
    default: fail("Q-Former: no finfo for dtype {}", c10::toString(dtype));
  }
}

torch::Tensor QformerBertImpl::forward(const torch::Tensor& query_embeds, const torch::Tensor& encoder_hidden_states,
                                       const torch::Tensor& encoder_attention_mask) {
  const int64_t B = query_embeds.size(0), Nq = query_embeds.size(1);
  if (encoder_hidden_states.size(-1) != config.encoder_width)
    fail("Q-Former: encoder_hidden_states width {} does not match encoder_width {}", encoder_hidden_states.size(-1),
         config.encoder_width);
  // The masks are built in the dtype of the module's parameters (`self.dtype` in the original).
  const auto dtype = embeddings->LayerNorm->weight.scalar_type();
  const auto opts = query_embeds.options().dtype(dtype);
  auto self_mask = (1.0 - torch::ones({B, 1, 1, Nq}, opts)) * -10000.0;  // all queries visible
  auto cross_mask = (1.0 - encoder_attention_mask.to(dtype).unsqueeze(1).unsqueeze(1)) * finfo_min(dtype);  // [B,1,1,K]

  auto h = embeddings(query_embeds);  // [B,Nq,H]
  // As LAVIS: checkpointed layers only while training; every tensor the layer reads is an input of the
  // checkpoint, so gradients reach the encoder states too (audio_trans, temporal embeddings).
  const bool checkpointing = config.gradient_checkpointing && is_training() && torch::GradMode::is_enabled();
  for (const auto& m : *encoder->layer) {
    auto* layer = m->as<QformerLayerImpl>();
    h = checkpointing
            ? checkpoint(
                  [layer](const std::vector<torch::Tensor>& in) { return layer->forward(in[0], in[1], in[2], in[3]); },
                  {h, self_mask, encoder_hidden_states, cross_mask})
            : layer->forward(h, self_mask, encoder_hidden_states, cross_mask);
  }
  return h;
}

QformerImpl::QformerImpl(const BertConfig& c) { bert = register_module("bert", QformerBert(c)); }

torch::Tensor init_query_tokens(const BertConfig& c, int64_t num_query_token) {
  return torch::randn({1, num_query_token, c.hidden_size}) * c.initializer_range;
}

StateDict blip2_to_chatbridge_keys(const StateDict& blip2_model) {
  StateDict out = blip2_model;
  if (!out.contains("image_query_tokens") && out.contains("query_tokens"))
    out.insert("image_query_tokens", out["query_tokens"]);
  return out;
}

StateDict read_blip2_checkpoint(const std::filesystem::path& path) { return load_state_dict_file(path, "model"); }

LoadReport load_qformer_state_dict(Qformer& qformer, const StateDict& sd, const std::string& source) {
  auto report = load_state_dict(*qformer, strip_prefix(sd, "Qformer."), /*strict=*/false, source);
  spdlog::info("Q-Former: loaded {} tensors from {} ({} missing, {} ignored)", report.loaded, source,
               report.missing.size(), report.unexpected.size());
  return report;
}

}  // namespace cb
