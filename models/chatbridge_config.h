// What a ChatBridge is made of: the `model:` keys of the original (ChatBridge.from_config) plus the
// configs of its four parts and where their weights come from.
//
// Two ways to fill it:
//  * from a resolved yaml `model:` section (cb::Config). Full size by default: EVA ViT-g at
//    `image_size`, BEATs configured by its checkpoint's `cfg`, a bert-base Q-Former, LLaMA from the
//    Hugging Face folder `llama_model`. A `tiny_dims:` mapping (the golden fixtures' layout: vit,
//    ln_vision, beats, ln_audio, audio_trans, qformer_bert_config, llama_config) replaces the part
//    configs, which is how the embedded tiny model and the benchmark models are described.
//  * from a golden fixture's `config` JSON (the same keys, tiny_dims included).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "models/beats.h"
#include "models/eva_vit.h"
#include "models/llama.h"
#include "models/qformer.h"

namespace cb {

class Config;

struct ChatBridgeConfig {
  // ---- the original's model keys (defaults of ChatBridge.from_config)
  int64_t stage = 1;                   // 1 caption loss; 2/3 conversation loss; 4 forces `drop`
  int64_t image_size = 224;            // ViT input side
  int64_t num_query_token = 32;        // Nq for both query-token sets
  int64_t max_txt_len = 32;            // stage 1: caption tokens; stage 2: positions per conversation
  std::string end_sym = "\n";          // appended to stage-1 captions
  std::string vit_precision = "fp16";  // fp16 (CUDA), bf16, fp32
  // The frozen LLaMA's storage: fp32, bf16, fp16, q8_0, q4_0 (docs/precision.md). A yaml's `auto`
  // and `low_resource` are resolved by from_config; fixtures default to fp32 (golden parity).
  std::string llama_precision = "fp32";
  std::string beats_precision = "fp32";  // new key (the original keeps BEATs fp32): as vit_precision
  bool llama_mmap = false;               // new key: LlamaStorage::map_packed
  bool freeze_vit = true, freeze_beat = true, freeze_qformer = true;
  bool drop = false;                       // BERT dropouts 0.1 in the Q-Former
  bool multi_sample = false;               // temporal embeddings for frames / audio slices
  int64_t num_frames = 4, num_audios = 2;  // temporal slots (constructor arguments in the original)
  std::string prompt_template;             // stored, unused by training (as the original)

  // ---- weights (empty / "None" = keep the fresh initialisation)
  std::string vit_ckpt;         // LAVIS eva_vit_g.pth (the original downloads it; new key)
  std::string beats_ckpt;       // BEATs_iter3_plus_AS2M.pt (hard-coded path in the original; new key)
  std::string q_former_model;   // BLIP-2 checkpoint: Q-Former, query_tokens, ln_vision
  std::string llama_model;      // Hugging Face LLaMA/Vicuna folder (config, weights, tokenizer)
  std::string llama_tokenizer;  // tokenizer.model or a folder holding it; default: llama_model
  std::string ckpt;             // ChatBridge checkpoint loaded last, non-strictly (.pth or our checkpoint dir)

  // ---- the parts
  EvaVitConfig vit;
  double ln_vision_eps = 1e-5;
  BEATsConfig beats;
  double ln_audio_eps = 1e-5;
  BertConfig qformer;
  LlamaConfig llama;
  bool llama_random_init = false;  // tiny_dims.llama_config given: no LLaMA weights are read

  bool effective_drop() const { return drop || stage == 4; }
  int64_t vision_width() const { return vit.embed_dim; }
  int64_t audio_width() const { return beats.encoder_embed_dim; }

  // A fixture/benchmark JSON config (yaml keys + tiny_dims).
  static ChatBridgeConfig from_json(const nlohmann::json& j, const std::string& source = "model config");
  // A resolved `model:` section. Reads the BEATs cfg from `beats_ckpt` and LLaMA's config.json from
  // `llama_model` unless tiny_dims describe them.
  static ChatBridgeConfig from_config(const Config& model_cfg);

  // Before anything is loaded (a 13B LLaMA takes minutes, model.ckpt is read last): every weight
  // file or folder `model_cfg` names exists, and the LLaMA folder has its config.json unless tiny_dims
  // describes the LLaMA. Fails naming the key, the path and the file and line that set it.
  void check_weight_files(const Config& model_cfg) const;
};

}  // namespace cb
