#include "models/chatbridge_config.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <optional>

#include "framework/checkpoint/convert.h"
#include "framework/config.h"
#include "framework/error.h"
#include "framework/json_read.h"
#include "framework/kernels/weight_format.h"

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

// model.llama_precision with `auto` and the original's low_resource resolved.
std::string resolve_llama_precision(const Config& m) {
  auto precision = m.get<std::string>("llama_precision");
  if (m.get<bool>("low_resource")) {  // the original: the LLaMA loaded in 8 bits (on device_8bit)
    if (m.has("llama_precision") && precision != "auto" && precision != "q8_0")
      fail(
          "model.low_resource: True means the LLaMA in 8 bits (q8_0), but model.llama_precision is '{}'; "
          "drop one of the two keys",
          precision);
    precision = "q8_0";
    if (const auto device = m.get<int64_t>("device_8bit"); device != 0)
      spdlog::warn(
          "model.device_8bit: {} ignored: the 8-bit LLaMA stays on the device of the rest of the model "
          "(run.device, or chat's --device), which places every part on one device",
          device);
  }
  if (precision == "auto") {
    // The original loads Vicuna with torch_dtype=float16 on the GPU; fp32 on the CPU keeps golden parity.
    // A directory chatbridge-convert --quantize wrote keeps its format on the CPU: widening a 13B q4_0
    // directory to fp32 would take 52 GB where the user made 7.3 GB.
    const bool cuda = torch::cuda::is_available();
    const std::filesystem::path dir = m.get<std::string>("llama_model");
    std::optional<kernels::WeightFormat> packed;
    if (!cuda && std::filesystem::exists(dir / "config.json")) packed = hf_weight_format(dir);
    precision = packed ? kernels::weight_format_name(*packed) : cuda ? "fp16" : "fp32";
    spdlog::info("model.llama_precision auto: {}{}", precision,
                 packed ? ", the format " + dir.string() + " holds" : "");
  }
  kernels::parse_weight_format(precision, "model.llama_precision");  // fails early on a typo
  return precision;
}

}  // namespace

ChatBridgeConfig ChatBridgeConfig::from_json(const nlohmann::json& j, const std::string& source) {
  ChatBridgeConfig c;
  read_json_key(j, "stage", c.stage, source);
  read_json_key(j, "image_size", c.image_size, source);
  read_json_key(j, "num_query_token", c.num_query_token, source);
  read_json_key(j, "max_txt_len", c.max_txt_len, source);
  read_json_key(j, "end_sym", c.end_sym, source);
  read_json_key(j, "vit_precision", c.vit_precision, source);
  read_json_key(j, "llama_precision", c.llama_precision, source);
  read_json_key(j, "beats_precision", c.beats_precision, source);
  read_json_key(j, "llama_mmap", c.llama_mmap, source);
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
  c.llama_precision = resolve_llama_precision(m);
  c.beats_precision = m.get<std::string>("beats_precision");
  c.llama_mmap = m.get<bool>("llama_mmap");
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

  c.vit = EvaVitConfig::eva_vit_g(c.image_size, m.get<double>("drop_path_rate"), m.get<bool>("use_grad_checkpoint"));
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
    else
      spdlog::warn("model.llama_model: {} not found; describing Vicuna-13B's architecture{}", cfg_json.string(),
                   m.has("tiny_dims") ? " (a tiny config's LLaMA is stage 0's export: run a llama_causal_lm config "
                                        "such as train_configs/tiny_lm_pretrain.yaml first)"
                                      : "");
  }
  finish_qformer(c);
  return c;
}

void ChatBridgeConfig::check_weight_files(const Config& m) const {
  namespace fs = std::filesystem;
  auto missing = [&](const char* key, const std::string& path, std::string_view what) {
    const ConfigNode* n = m.node().find(key);
    fail("model.{}: {}, set in {}, {}; give the path with --options model.{}=PATH", key, path,
         n ? n->where() : "the config", what, key);
  };
  const std::pair<const char*, const std::string*> files[] = {
      {"vit_ckpt", &vit_ckpt}, {"beats_ckpt", &beats_ckpt}, {"q_former_model", &q_former_model}, {"ckpt", &ckpt}};
  for (const auto& [key, path] : files)
    if (weights_named(*path) && !fs::exists(*path)) missing(key, *path, "does not exist");
  if (m.has("llama_tokenizer") && !fs::exists(llama_tokenizer))
    missing("llama_tokenizer", llama_tokenizer, "does not exist");
  if (llama_random_init) return;
  if (!weights_named(llama_model))
    missing("llama_model", "''", "names no LLaMA folder (a Hugging Face LLaMA/Vicuna folder is expected)");
  if (!fs::is_directory(llama_model))
    missing("llama_model", llama_model, "is not a folder (a Hugging Face LLaMA/Vicuna folder is expected)");
  if (!fs::exists(fs::path(llama_model) / "config.json"))
    missing("llama_model", llama_model, "has no config.json (a Hugging Face LLaMA/Vicuna folder is expected)");
}

}  // namespace cb
