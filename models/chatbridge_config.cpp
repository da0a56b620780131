#include "models/chatbridge_config.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "framework/config.h"
#include "framework/error.h"
#include "framework/json_read.h"

namespace cb {
namespace {

double eps_of(const nlohmann::json& tiny, const char* key, double fallback, const std::string& source) {
  double eps = fallback;
  if (tiny.contains(key)) read_json_key(tiny.at(key), "eps", eps, source + ": tiny_dims." + key);
  return eps;
}

// The BEATs_iter3_plus_AS2M cfg (the BEATs checkpoint's own cfg), used when no checkpoint is named.
BEATsConfig beats_iter3_plus_as2m() {
  BEATsConfig b;
  b.input_patch_size = 16;
  b.embed_dim = 512;
  b.encoder_layers = 12;
  b.encoder_embed_dim = 768;
  b.encoder_ffn_embed_dim = 3072;
  b.encoder_attention_heads = 12;
  b.deep_norm = true;
  b.relative_position_embedding = true;
  b.num_buckets = 320;
  b.max_distance = 800;
  b.gru_rel_pos = true;
  return b;
}

// Vicuna-13B's config.json values (vicuna-13b/config.json).
LlamaConfig vicuna_13b() {
  LlamaConfig l;
  l.vocab_size = 32000;
  l.hidden_size = 5120;
  l.intermediate_size = 13824;
  l.num_hidden_layers = 40;
  l.num_attention_heads = l.num_key_value_heads = 40;
  return l;
}

bool weights_named(const std::string& s) { return !s.empty() && s != "None"; }

// Applies tiny_dims (if any) over the part configs; returns true if it described the LLaMA.
bool apply_tiny_dims(ChatBridgeConfig& c, const nlohmann::json& tiny, const std::string& source) {
  const auto src = source + ": tiny_dims";
  if (tiny.contains("vit")) c.vit = EvaVitConfig::from_json(tiny.at("vit"), src + ".vit");
  c.ln_vision_eps = eps_of(tiny, "ln_vision", c.ln_vision_eps, source);
  if (tiny.contains("beats")) c.beats = BEATsConfig::from_json(tiny.at("beats"), src + ".beats");
  c.ln_audio_eps = eps_of(tiny, "ln_audio", c.ln_audio_eps, source);
  if (tiny.contains("audio_trans")) {
    auto at = tiny.at("audio_trans").get<std::vector<int64_t>>();
    if (at.size() != 2 || at[0] != c.audio_width() || at[1] != c.vision_width())
      fail("{}.audio_trans: expected [{}, {}] (BEATs width -> ViT width), got {}", src, c.audio_width(),
           c.vision_width(), tiny.at("audio_trans").dump());
  }
  if (tiny.contains("qformer_bert_config")) c.qformer = BertConfig::from_json(tiny.at("qformer_bert_config"));
  if (tiny.contains("llama_config")) {
    c.llama = LlamaConfig::from_json(tiny.at("llama_config"), src + ".llama_config");
    return true;
  }
  return false;
}

// `use_grad_checkpoint` over whatever part configs tiny_dims gave: the ViT blocks (the original's
// use) and the Q-Former layers (LAVIS's BertEncoder path, which the original's config leaves off; the
// ViT is frozen, so the Q-Former is where checkpointing saves training memory). The numbers are the
// same either way.
void apply_grad_checkpoint(ChatBridgeConfig& c, bool on) {
  if (!on) return;
  c.vit.use_grad_checkpoint = true;
  c.qformer.gradient_checkpointing = true;
}

// Blip2Base.init_Qformer on whatever BERT config we have: encoder width from the ViT, query count and
// dropouts from the model keys.
void finish_qformer(ChatBridgeConfig& c) {
  c.qformer = BertConfig::for_qformer(c.qformer, c.num_query_token, c.vision_width(), c.qformer.cross_attention_freq,
                                      c.effective_drop());
}

}  // namespace

int64_t ParamSpec::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

ChatBridgeConfig ChatBridgeConfig::from_json(const nlohmann::json& j, const std::string& source) {
  ChatBridgeConfig c;
  read_json_key(j, "stage", c.stage, source);
  read_json_key(j, "image_size", c.image_size, source);
  read_json_key(j, "num_query_token", c.num_query_token, source);
  read_json_key(j, "max_txt_len", c.max_txt_len, source);
  read_json_key(j, "end_sym", c.end_sym, source);
  read_json_key(j, "vit_precision", c.vit_precision, source);
  read_json_key(j, "freeze_vit", c.freeze_vit, source);
  read_json_key(j, "freeze_beat", c.freeze_beat, source);
  read_json_key(j, "freeze_qformer", c.freeze_qformer, source);
  read_json_key(j, "drop", c.drop, source);
  read_json_key(j, "multi_sample", c.multi_sample, source);
  read_json_key(j, "num_frames", c.num_frames, source);
  read_json_key(j, "num_audios", c.num_audios, source);
  read_json_key(j, "prompt_template", c.prompt_template, source);
  double drop_path = 0;
  bool grad_ckpt = false;
  read_json_key(j, "drop_path_rate", drop_path, source);
  read_json_key(j, "use_grad_checkpoint", grad_ckpt, source);
  c.vit = EvaVitConfig::eva_vit_g(c.image_size, drop_path, grad_ckpt);
  c.beats = beats_iter3_plus_as2m();
  c.llama = vicuna_13b();
  if (j.contains("tiny_dims")) c.llama_random_init = apply_tiny_dims(c, j.at("tiny_dims"), source);
  apply_grad_checkpoint(c, grad_ckpt);
  if (c.vit.img_size != c.image_size)
    fail("{}: image_size {} differs from tiny_dims.vit.img_size {}", source, c.image_size, c.vit.img_size);
  finish_qformer(c);
  return c;
}

ChatBridgeConfig ChatBridgeConfig::from_config(const Config& m) {
  ChatBridgeConfig c;
  c.stage = m.get<int64_t>("stage");
  c.image_size = m.get<int64_t>("image_size");
  c.num_query_token = m.get<int64_t>("num_query_token");
  c.max_txt_len = m.get<int64_t>("max_txt_len");
  c.end_sym = m.get<std::string>("end_sym");
  c.vit_precision = m.get<std::string>("vit_precision");
  c.freeze_vit = m.get<bool>("freeze_vit");
  c.freeze_beat = m.get<bool>("freeze_beat");
  c.freeze_qformer = m.get<bool>("freeze_qformer");
  c.drop = m.get<bool>("drop");
  c.multi_sample = m.get<bool>("multi_sample");
  c.num_frames = m.get<int64_t>("num_frames");
  c.num_audios = m.get<int64_t>("num_audios");
  c.prompt_template = m.get<std::string>("prompt_template");
  c.vit_ckpt = m.get<std::string>("vit_ckpt");
  c.beats_ckpt = m.get<std::string>("beats_ckpt");
  c.q_former_model = m.get<std::string>("q_former_model");
  c.llama_model = m.get<std::string>("llama_model");
  c.llama_tokenizer = m.get<std::string>("llama_tokenizer", c.llama_model);  // absent: another key's value
  c.ckpt = m.get<std::string>("ckpt");
  auto vit_model = m.get<std::string>("vit_model");
  if (vit_model != "eva_clip_g") fail("model.vit_model: only 'eva_clip_g' exists, got '{}'", vit_model);

  c.vit = EvaVitConfig::eva_vit_g(c.image_size, m.get<double>("drop_path_rate"),
                                  m.get<bool>("use_grad_checkpoint"));
  c.beats = beats_iter3_plus_as2m();
  c.llama = vicuna_13b();
  bool tiny_llama = false;
  if (m.has("tiny_dims")) {
    auto tiny = m.sub("tiny_dims").to_json();
    tiny_llama = apply_tiny_dims(c, nlohmann::json::parse(tiny.dump()), "model");
    if (c.vit.img_size != c.image_size)
      fail("model.image_size {} differs from model.tiny_dims.vit.img_size {}", c.image_size, c.vit.img_size);
  } else if (weights_named(c.beats_ckpt)) {
    c.beats = read_beats_config(c.beats_ckpt);
  }
  apply_grad_checkpoint(c, m.get<bool>("use_grad_checkpoint"));
  c.llama_random_init = tiny_llama;
  if (!tiny_llama) {
    auto cfg_json = std::filesystem::path(c.llama_model) / "config.json";
    if (std::filesystem::exists(cfg_json)) c.llama = LlamaConfig::from_file(cfg_json);
    else spdlog::warn("model.llama_model: {} not found; describing Vicuna-13B's architecture", cfg_json.string());
  }
  finish_qformer(c);
  return c;
}

std::vector<ParamSpec> describe_parameters(const ChatBridgeConfig& c) {
  std::vector<ParamSpec> out;
  bool trainable = true;
  std::string prefix;
  auto param = [&](const std::string& name, std::vector<int64_t> shape) {
    out.push_back({prefix + name, std::move(shape), trainable, false});
  };
  auto buffer = [&](const std::string& name, std::vector<int64_t> shape) {
    out.push_back({prefix + name, std::move(shape), false, true});
  };
  auto linear = [&](const std::string& name, int64_t in, int64_t outf, bool bias = true) {
    param(name + ".weight", {outf, in});
    if (bias) param(name + ".bias", {outf});
  };
  auto norm = [&](const std::string& name, int64_t d) {
    param(name + ".weight", {d});
    param(name + ".bias", {d});
  };

  // Parameters registered on ChatBridge itself come first, as in module order.
  const int64_t H = c.qformer.hidden_size, Dv = c.vision_width(), Da = c.audio_width(), Dl = c.llama.hidden_size;
  trainable = !c.freeze_qformer;
  param("image_query_tokens", {1, c.num_query_token, H});
  param("audio_query_tokens", {1, c.num_query_token, H});
  trainable = true;
  if (c.multi_sample) {
    param("visual_temporal_pos_embeds", {1, c.num_frames, 1, Dv});
    param("audio_temporal_pos_embeds", {1, c.num_audios, 1, Dv});
  }

  // EVA ViT
  const auto& v = c.vit;
  prefix = "visual_encoder.";
  trainable = !c.freeze_vit;
  param("cls_token", {1, 1, Dv});
  param("pos_embed", {1, v.num_patches() + 1, Dv});
  param("patch_embed.proj.weight", {Dv, v.in_chans, v.patch_size, v.patch_size});
  param("patch_embed.proj.bias", {Dv});
  for (int64_t i = 0; i < v.depth; ++i) {
    auto b = "blocks." + std::to_string(i) + ".";
    norm(b + "norm1", Dv);
    linear(b + "attn.qkv", Dv, 3 * Dv, false);
    if (v.qkv_bias) {
      param(b + "attn.q_bias", {Dv});
      param(b + "attn.v_bias", {Dv});
    }
    linear(b + "attn.proj", Dv, Dv);
    norm(b + "norm2", Dv);
    linear(b + "mlp.fc1", Dv, v.mlp_hidden());
    linear(b + "mlp.fc2", v.mlp_hidden(), Dv);
  }
  prefix = "";
  norm("ln_vision", Dv);

  // BEATs
  const auto& a = c.beats;
  prefix = "audio_encoder.";
  trainable = !c.freeze_beat;
  param("patch_embedding.weight", {a.embed_dim, 1, a.input_patch_size, a.input_patch_size});
  if (a.conv_bias) param("patch_embedding.bias", {a.embed_dim});
  norm("layer_norm", a.embed_dim);
  if (a.embed_dim != Da) linear("post_extract_proj", a.embed_dim, Da);
  param("encoder.pos_conv.0.weight_g", {1, 1, a.conv_pos});
  param("encoder.pos_conv.0.weight_v", {Da, Da / a.conv_pos_groups, a.conv_pos});
  param("encoder.pos_conv.0.bias", {Da});
  for (int64_t j = 0; j < a.encoder_layers; ++j) {
    auto l = "encoder.layers." + std::to_string(j) + ".";
    if (a.relative_position_embedding)
      param(l + "self_attn.relative_attention_bias.weight", {a.num_buckets, a.encoder_attention_heads});
    for (const char* p : {"k_proj", "v_proj", "q_proj", "out_proj"}) linear(l + "self_attn." + p, Da, Da);
    if (a.gru_rel_pos) {
      linear(l + "self_attn.grep_linear", Da / a.encoder_attention_heads, 8);
      param(l + "self_attn.grep_a", {1, a.encoder_attention_heads, 1, 1});
    }
    norm(l + "self_attn_layer_norm", Da);
    linear(l + "fc1", Da, a.encoder_ffn_embed_dim);
    linear(l + "fc2", a.encoder_ffn_embed_dim, Da);
    norm(l + "final_layer_norm", Da);
  }
  norm("encoder.layer_norm", Da);
  if (a.finetuned_model) linear("predictor", Da, a.predictor_class);
  prefix = "";
  norm("ln_audio", Da);
  trainable = !c.freeze_qformer;
  linear("audio_trans", Da, Dv);

  // Q-Former
  const auto& q = c.qformer;
  prefix = "Qformer.bert.";
  norm("embeddings.LayerNorm", H);
  buffer("embeddings.position_ids", {1, q.max_position_embeddings});
  for (int64_t i = 0; i < q.num_hidden_layers; ++i) {
    auto l = "encoder.layer." + std::to_string(i) + ".";
    auto attention = [&](const std::string& name, int64_t kv_width) {
      linear(l + name + ".self.query", H, H);
      linear(l + name + ".self.key", kv_width, H);
      linear(l + name + ".self.value", kv_width, H);
      linear(l + name + ".output.dense", H, H);
      norm(l + name + ".output.LayerNorm", H);
    };
    attention("attention", H);
    if (q.has_cross_attention(i)) attention("crossattention", q.encoder_width);
    linear(l + "intermediate_query.dense", H, q.intermediate_size);
    linear(l + "output_query.dense", q.intermediate_size, H);
    norm(l + "output_query.LayerNorm", H);
  }

  // LLaMA (always frozen)
  const auto& m = c.llama;
  prefix = "llama_model.";
  trainable = false;
  const int64_t kv = m.num_key_value_heads * m.head_dim();
  param("model.embed_tokens.weight", {m.vocab_size, Dl});
  for (int64_t i = 0; i < m.num_hidden_layers; ++i) {
    auto l = "model.layers." + std::to_string(i) + ".";
    linear(l + "self_attn.q_proj", Dl, Dl, false);
    linear(l + "self_attn.k_proj", Dl, kv, false);
    linear(l + "self_attn.v_proj", Dl, kv, false);
    linear(l + "self_attn.o_proj", Dl, Dl, false);
    buffer(l + "self_attn.rotary_emb.inv_freq", {m.head_dim() / 2});
    linear(l + "mlp.gate_proj", Dl, m.intermediate_size, false);
    linear(l + "mlp.up_proj", Dl, m.intermediate_size, false);
    linear(l + "mlp.down_proj", m.intermediate_size, Dl, false);
    param(l + "input_layernorm.weight", {Dl});
    param(l + "post_attention_layernorm.weight", {Dl});
  }
  param("model.norm.weight", {Dl});
  linear("lm_head", Dl, m.vocab_size, false);

  prefix = "";
  trainable = true;
  linear("llama_proj", H, Dl);
  return out;
}

}  // namespace cb
