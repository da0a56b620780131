// ChatBridge (chatbridge/models/chatbridge.py): a frozen EVA ViT and a frozen BEATs feed ONE
// Q-Former (separate image and audio query tokens; audio lifted to the ViT width by `audio_trans`),
// whose outputs `llama_proj` maps into a frozen LLaMA's embedding space. Module names are the
// original's, so state dicts and ChatBridge checkpoints load without renaming.
//
// Training losses (ChatBridge.forward in chatbridge/models/chatbridge.py):
//  * stage 1: [bos, Nq feature slots, caption + end_sym]; targets are the caption ids.
//  * stage 2/3: conversations with `<query>` markers; every answer after "###Assistant:" up to and
//    including the next "###" is a target; pieces are tokenised one by one; left padding.
#pragma once
#include <torch/torch.h>

#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "framework/autocast.h"
#include "framework/batch.h"
#include "framework/checkpoint/state_dict.h"
#include "framework/registry.h"
#include "models/beats.h"
#include "models/chatbridge_config.h"
#include "models/eva_vit.h"
#include "models/layer_norm_fp32.h"
#include "models/llama.h"
#include "models/qformer.h"
#include "models/tokenizer.h"

namespace cb {

class Config;

// Q-Former output in LLaMA space and its attention bits.
struct Features {
  torch::Tensor embeds;  // [B,Nq,D_l]
  torch::Tensor atts;    // [B,Nq] int64 ones
};

// What the LLaMA is fed (and the intermediate process_prompt_instruct result in stage 2).
struct LlamaFeed {
  torch::Tensor inputs_embeds;   // [B,L,D_l]
  torch::Tensor attention_mask;  // [B,L] int64
  torch::Tensor targets;         // [B,L] int64, -100 = ignored
};

struct ChatBridgeOutput {
  torch::Tensor loss;  // 0-dim fp32
  std::vector<Features> features;
  std::optional<LlamaFeed> prompt;  // stage 2/3: process_prompt_instruct's result (before bos)
  LlamaFeed llama;                  // the LLaMA's inputs
};

struct ChatBridgeImpl : torch::nn::Module {
  // Builds every part with fresh weights (the original's initialisation of the new parts: ln_vision/
  // ln_audio 1/0, image queries N(0, 0.02), audio queries 0, temporal embeddings 0) and applies
  // the freezing rules. Loading weights is separate (load_pretrained / load_state_dict).
  ChatBridgeImpl(ChatBridgeConfig config, LlamaTokenizer tokenizer);

  // The original's from_config weight loading, in its order: eva_vit_g.pth, BEATs checkpoint,
  // BLIP-2 (non-strict, over the whole model), the LLaMA folder, then `ckpt` (non-strict).
  void load_pretrained();

  // Moves the model to `device` and gives the frozen encoders their 16-bit precision there
  // (vit_precision, beats_precision: fp16 needs CUDA, so a model built on the CPU converts once on the
  // GPU). Training, evaluation and chat all place the model through here.
  void place(const torch::Device& device);
  // The frozen ViT's and BEATs' Linear/Conv weights in vit_precision / beats_precision for `device`
  // (fp16 stays fp32 off CUDA): what load_pretrained and place do after loading or moving, and what the
  // --dry-run skeleton does so that its memory plan counts the bytes the built model holds.
  void apply_encoder_precision(const torch::Device& device);
  // The original's maybe_autocast(): fp16 autocast while the model is on CUDA (its fp16 ViT only runs
  // so), nothing on the CPU. Around encoding, the training loss and generation.
  AutocastGuard maybe_autocast() const;

  // encode_img: [B,3,S,S] or [B,n,3,S,S] -> Features (frames' tokens concatenated before the Q-Former).
  Features encode_img(const torch::Tensor& image);
  // encode_audio: [B,n,T,F] -> Features.
  Features encode_audio(const torch::Tensor& audio);
  // Modality dispatch of forward(): one random '%'-alternative of the task, then substring tests.
  std::vector<Features> encode(const Batch& batch);

  // Stage-1 LLaMA inputs for captions.
  LlamaFeed caption_inputs(const Features& f, const std::vector<std::string>& texts) const;
  // process_prompt_instruct: conversations with one <query> per feature -> left-padded pieces, each
  // row cut after `max_len` positions (training: max_txt_len; inference prompts are never cut).
  LlamaFeed process_prompt_instruct(const std::vector<Features>& feats, const std::vector<std::string>& conversations,
                                    int64_t max_len) const;
  // What the LLaMA is fed for conversations, in training (forward), evaluation and chat alike:
  // prepend_bos(process_prompt_instruct(...)). One path, so what training taught is what inference asks.
  LlamaFeed instruct_inputs(const std::vector<Features>& feats, const std::vector<std::string>& conversations,
                            int64_t max_len = std::numeric_limits<int64_t>::max()) const;
  // bos embedding prepended, its mask bit copied from column 0 (the original's quirk), target -100.
  LlamaFeed prepend_bos(const LlamaFeed& p) const;

  ChatBridgeOutput forward(const Batch& batch);

  // Frozen parts stay in eval mode whatever train() is asked (the original's disabled_train).
  void train(bool on = true) override;
  // Seeds the task-alternative choice (python `random` in the original; seeded per rank there too).
  void seed(uint64_t s) { task_rng_.seed(s); }

  torch::Tensor embed_tokens(const torch::Tensor& ids) const;  // LLaMA input embeddings
  const ChatBridgeConfig& config() const { return config_; }
  const LlamaTokenizer& tokenizer() const { return *tokenizer_; }

  VisionTransformer visual_encoder{nullptr};
  LayerNormFp32 ln_vision{nullptr};
  BEATs audio_encoder{nullptr};
  LayerNormFp32 ln_audio{nullptr};
  torch::nn::Linear audio_trans{nullptr};
  cb::Qformer qformer{nullptr};                          // registered as "Qformer"
  torch::Tensor image_query_tokens, audio_query_tokens;  // [1,Nq,H]
  LlamaForCausalLM llama_model{nullptr};
  torch::nn::Linear llama_proj{nullptr};
  torch::Tensor visual_temporal_pos_embeds, audio_temporal_pos_embeds;  // multi_sample only

 private:
  Features bridge(const torch::Tensor& encoder_tokens, const torch::Tensor& query_tokens);
  torch::Tensor encode_frame(const torch::Tensor& frame);  // ln_vision(visual_encoder(x))
  void apply_freezing();

  ChatBridgeConfig config_;
  std::shared_ptr<const LlamaTokenizer> tokenizer_;
  std::mt19937_64 task_rng_{0};
};
TORCH_MODULE(ChatBridge);

// Builds a ChatBridge from a resolved `model:` section: config, tokenizer, weights.
ChatBridge build_chatbridge(const Config& model_cfg);

// Names of the trainable parameters (requires_grad), in module order.
std::vector<std::string> trainable_parameter_names(const torch::nn::Module& m);

}  // namespace cb
