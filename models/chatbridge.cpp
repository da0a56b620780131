#include "models/chatbridge.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "framework/checkpoint/load.h"
#include "framework/config.h"
#include "framework/error.h"
#include "framework/meta_device.h"
#include "framework/text/python_str.h"
#include "models/freeze.h"
#include "models/instruct_prompt.h"
#include "models/llama_hf.h"
#include "models/model_factory.h"

namespace cb {
namespace {

constexpr int64_t kIgnore = -100;

bool weights_named(const std::string& s) { return !s.empty() && s != "None"; }

bool contains(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

void log_load(const LoadReport& r, const std::string& what, const std::string& source) {
  spdlog::info("{}: loaded {} tensors from {} ({} model keys not in the file, {} file keys unused)", what, r.loaded,
               source, r.missing.size(), r.unexpected.size());
}

}  // namespace

ChatBridgeImpl::ChatBridgeImpl(ChatBridgeConfig c, LlamaTokenizer tokenizer)
    : config_(std::move(c)), tokenizer_(std::make_shared<const LlamaTokenizer>(std::move(tokenizer))) {
  const auto& cfg = config_;
  const int64_t Dv = cfg.vision_width(), Da = cfg.audio_width(), H = cfg.qformer.hidden_size;
  visual_encoder = register_module("visual_encoder", VisionTransformer(cfg.vit));
  ln_vision = register_module("ln_vision", LayerNormFp32(Dv, cfg.ln_vision_eps));
  audio_encoder = register_module("audio_encoder", BEATs(cfg.beats));
  ln_audio = register_module("ln_audio", LayerNormFp32(Da, cfg.ln_audio_eps));
  audio_trans = register_module("audio_trans", torch::nn::Linear(Da, Dv));  // BEATs width -> ViT width
  qformer = register_module("Qformer", cb::Qformer(cfg.qformer));
  image_query_tokens = register_parameter("image_query_tokens", init_query_tokens(cfg.qformer, cfg.num_query_token));
  // Zeros, as the original: nothing loads them, stage 1 trains them from zero.
  audio_query_tokens = register_parameter("audio_query_tokens", torch::zeros({1, cfg.num_query_token, H}));
  // Fresh LLaMA weights only where no file fills them, or in fp32 (the same RNG draws as before, so
  // the parts built after it start from the same values).
  const bool init_llama = cfg.llama_random_init || cfg.llama_precision == "fp32";
  auto llama_storage = LlamaStorage::from_precision(cfg.llama_precision, init_llama);
  llama_storage.map_packed = cfg.llama_mmap;
  llama_model = register_module("llama_model", LlamaForCausalLM(cfg.llama, llama_storage));
  llama_proj = register_module("llama_proj", torch::nn::Linear(H, cfg.llama.hidden_size));
  if (cfg.multi_sample) {
    visual_temporal_pos_embeds =
        register_parameter("visual_temporal_pos_embeds", torch::zeros({1, cfg.num_frames, 1, Dv}));
    audio_temporal_pos_embeds =
        register_parameter("audio_temporal_pos_embeds", torch::zeros({1, cfg.num_audios, 1, Dv}));
  }
  if (tokenizer_->vocab_size() > cfg.llama.vocab_size)
    fail("tokenizer has {} ids but the LLaMA embeds only {}", tokenizer_->vocab_size(), cfg.llama.vocab_size);
  apply_freezing();
}

void ChatBridgeImpl::apply_freezing() {
  if (config_.freeze_vit) {
    freeze_module(*visual_encoder);
    freeze_module(*ln_vision);
  }
  if (config_.freeze_beat) {
    freeze_module(*audio_encoder);
    freeze_module(*ln_audio);
  }
  if (config_.freeze_qformer) {
    freeze_module(*qformer);
    freeze_module(*audio_trans);
    image_query_tokens.set_requires_grad(false);
    audio_query_tokens.set_requires_grad(false);
  }
  freeze_module(*llama_model);  // always
}

void ChatBridgeImpl::train(bool on) {
  torch::nn::Module::train(on);
  if (on) apply_freezing();
}

void ChatBridgeImpl::load_pretrained() {
  const auto& c = config_;
  if (weights_named(c.vit_ckpt))
    log_load(load_eva_vit_checkpoint(visual_encoder, c.vit_ckpt), "visual_encoder", c.vit_ckpt);
  if (weights_named(c.beats_ckpt)) {
    load_beats_state_dict(audio_encoder, load_state_dict_file(c.beats_ckpt, "model"), c.beats_ckpt);
    spdlog::info("audio_encoder: loaded {}", c.beats_ckpt);
  }
  apply_encoder_precision(image_query_tokens.device());
  if (!c.freeze_beat && c.beats_precision != "fp32")
    spdlog::warn("model.beats_precision {} ignored: a trained BEATs (freeze_beat False) stays fp32", c.beats_precision);
  if (weights_named(c.q_former_model)) {
    auto sd = blip2_to_chatbridge_keys(read_blip2_checkpoint(c.q_former_model));
    log_load(load_state_dict(*this, sd, false, c.q_former_model), "BLIP-2 Q-Former", c.q_former_model);
  }
  if (!c.llama_random_init) {
    if (!weights_named(c.llama_model)) fail("model.llama_model: no LLaMA folder given");
    auto r = load_llama_weights(*llama_model, c.llama_model);  // shard by shard, into the storage format
    if (!r.missing.empty()) fail("{}: LLaMA weights missing: {}", c.llama_model, fmt::join(r.missing, ", "));
    log_load(r, "llama_model (" + c.llama_precision + ")", c.llama_model);
  }
  if (weights_named(c.ckpt)) {
    // The original's checkpoint_*.pth ("model" entry), a training checkpoint directory of ours, or a
    // flat state dict in safetensors (chatbridge-convert --chatbridge, or a directory's model.safetensors).
    const std::filesystem::path ckpt(c.ckpt);
    auto sd = std::filesystem::is_directory(ckpt)  ? load_state_dict_file(ckpt / "model.safetensors")
              : ckpt.extension() == ".safetensors" ? load_state_dict_file(ckpt)
                                                   : load_state_dict_file(ckpt, "model");
    auto r = load_state_dict_into_frozen(*this, sd, false, c.ckpt);
    log_load(r, "ChatBridge checkpoint", c.ckpt);
    for (const auto& k : r.unexpected) spdlog::warn("{}: unexpected key '{}' ignored", c.ckpt, k);
  }
}

void ChatBridgeImpl::place(const torch::Device& device) {
  to(device);
  if (device.is_cuda()) apply_encoder_precision(device);
}

void ChatBridgeImpl::apply_encoder_precision(const torch::Device& device) {
  apply_vit_precision(visual_encoder, config_.vit_precision, device);
  if (config_.freeze_beat)
    apply_frozen_precision(*audio_encoder, config_.beats_precision, device, "model.beats_precision");
}

AutocastGuard ChatBridgeImpl::maybe_autocast() const {
  const auto device = image_query_tokens.device();
  return AutocastGuard(device.is_cuda(), device);
}

torch::Tensor ChatBridgeImpl::embed_tokens(const torch::Tensor& ids) const { return llama_model->embed(ids); }

Features ChatBridgeImpl::bridge(const torch::Tensor& encoder_tokens, const torch::Tensor& query_tokens) {
  const int64_t B = encoder_tokens.size(0);
  auto E = encoder_tokens.to(torch::kFloat);                                            // [B,K,Dv]
  auto M = torch::ones({B, E.size(1)}, torch::dtype(torch::kLong).device(E.device()));  // always all ones
  auto h = qformer(query_tokens.expand({B, -1, -1}), E, M);                             // [B,Nq,H]
  auto embeds = llama_proj(h);                                                          // [B,Nq,D_l]
  return {embeds, torch::ones({B, embeds.size(1)}, torch::dtype(torch::kLong).device(embeds.device()))};
}

torch::Tensor ChatBridgeImpl::encode_frame(const torch::Tensor& frame) {
  // A frozen ViT's output is a constant of the step: no autograd graph through it.
  std::optional<torch::NoGradGuard> no_grad;
  if (config_.freeze_vit) no_grad.emplace();
  const auto& w = visual_encoder->patch_embed->proj->weight;
  // On CUDA the frames take the ViT's dtype (fp16 under the model's autocast, as the original). A bf16
  // ViT on the CPU (vit_precision bf16; the original has no CPU path) keeps fp32 activations: its
  // 16-bit Linear/Conv weights are storage, read by the frozen-linear kernels (dense_linear).
  const auto dtype = w.device().is_cpu() ? torch::kFloat : w.scalar_type();
  // Non-blocking: a batch pinned by the loader (run.pin_memory) is copied to the GPU asynchronously.
  return ln_vision(visual_encoder(frame.to(w.device(), dtype, /*non_blocking=*/true)));  // [B,1+P,Dv]
}

Features ChatBridgeImpl::encode_img(const torch::Tensor& image) {
  const auto autocast = maybe_autocast();
  auto x = image.dim() == 4 ? image.unsqueeze(1) : image;  // [B,n,3,S,S]
  if (x.dim() != 5) fail("encode_img: expected [B,3,S,S] or [B,n,3,S,S], got {}", fmt::join(image.sizes(), "x"));
  const int64_t n = x.size(1);
  if (config_.multi_sample && n > config_.num_frames)
    fail("encode_img: {} frames but only {} temporal embeddings (num_frames)", n, config_.num_frames);
  if (config_.stage == 3 && image.dim() == 5) {  // every frame its own image, blocks concatenated
    std::vector<torch::Tensor> embeds, atts;
    for (int64_t t = 0; t < n; ++t) {
      auto f = encode_img(x.select(1, t));
      embeds.push_back(f.embeds);
      atts.push_back(f.atts);
    }
    return {torch::cat(embeds, 1), torch::cat(atts, 1)};  // [B,n·Nq,D_l]
  }
  std::vector<torch::Tensor> tokens;
  for (int64_t t = 0; t < n; ++t) {
    auto e = encode_frame(x.select(1, t));                                      // [B,1+P,Dv]
    if (config_.multi_sample) e = e + visual_temporal_pos_embeds.select(1, t);  // [1,1,Dv] after ln_vision
    tokens.push_back(e);
  }
  return bridge(torch::cat(tokens, 1), image_query_tokens);  // keys: frame-major [B,n·(1+P),Dv]
}

Features ChatBridgeImpl::encode_audio(const torch::Tensor& audio) {
  const auto autocast = maybe_autocast();
  if (audio.dim() != 4) fail("encode_audio: expected [B,n,T,F] fbank slices, got {}", fmt::join(audio.sizes(), "x"));
  const int64_t n = audio.size(1);
  if (config_.multi_sample && n > config_.num_audios)
    fail("encode_audio: {} slices but only {} temporal embeddings (num_audios)", n, config_.num_audios);
  std::vector<torch::Tensor> tokens;
  for (int64_t i = 0; i < n; ++i) {
    torch::Tensor a;
    {
      std::optional<torch::NoGradGuard> no_grad;
      if (config_.freeze_beat) no_grad.emplace();
      a = ln_audio(
          audio_encoder(audio.select(1, i).to(audio_trans->weight.device(), /*non_blocking=*/true)));  // [B,L,Da]
    }
    a = audio_trans(a);  // [B,L,Dv]
    if (config_.multi_sample) a = a + audio_temporal_pos_embeds.select(1, i);
    tokens.push_back(a);
  }
  return bridge(torch::cat(tokens, 1), audio_query_tokens);
}

std::vector<Features> ChatBridgeImpl::encode(const Batch& batch) {
  auto alternatives = pystr::split(batch.task, "%");
  const auto& task = alternatives[std::uniform_int_distribution<size_t>(0, alternatives.size() - 1)(task_rng_)];
  const bool img = batch.image.defined(), aud = batch.audio.defined();
  // First match wins, by substring, as the original routes.
  if ((contains(task, "tia") || contains(task, "tva")) && img && aud)
    return {encode_img(batch.image), encode_audio(batch.audio)};
  if (contains(task, "ta") && aud) return {encode_audio(batch.audio)};
  if ((contains(task, "ti") || contains(task, "tv")) && img) return {encode_img(batch.image)};
  fail("task '{}' selects no modality for this batch (image {}, audio {})", task, img ? "given" : "absent",
       aud ? "given" : "absent");
}

LlamaFeed ChatBridgeImpl::caption_inputs(const Features& f, const std::vector<std::string>& texts) const {
  const auto& tok = *tokenizer_;
  std::vector<std::string> with_end;
  for (const auto& t : texts) with_end.push_back(t + config_.end_sym);
  auto batch = tok.encode_batch(with_end, false, config_.max_txt_len);  // right padding with eos
  const auto dev = f.embeds.device();
  auto ids = batch.input_ids.to(dev), mask = batch.attention_mask.to(dev);
  const int64_t B = ids.size(0), Nq = f.embeds.size(1);
  auto dtype = llama_model->dtype();
  // Every eos id is masked, padding or not (pad == eos).
  auto text_targets = ids.masked_fill(ids == tok.eos_id(), kIgnore);
  auto bos = torch::full({B, 1}, tok.bos_id(), torch::dtype(torch::kLong).device(dev));
  LlamaFeed out;
  out.inputs_embeds = torch::cat({embed_tokens(bos), f.embeds.to(dtype), embed_tokens(ids)}, 1);  // [B,1+Nq+Lt,D]
  out.attention_mask = torch::cat({f.atts.slice(1, 0, 1), f.atts, mask}, 1);
  out.targets = torch::cat({torch::full({B, 1 + Nq}, kIgnore, ids.options()), text_targets}, 1);
  return out;
}

LlamaFeed ChatBridgeImpl::process_prompt_instruct(const std::vector<Features>& feats,
                                                  const std::vector<std::string>& conversations,
                                                  int64_t max_len) const {
  const auto& tok = *tokenizer_;
  // A text-only conversation (a chat before any upload) has no features.
  const auto dev = feats.empty() ? llama_model->device() : feats.front().embeds.device();
  const auto dtype = llama_model->dtype();
  const auto long_opts = torch::dtype(torch::kLong).device(dev);
  const int64_t B = int64_t(conversations.size()), K = int64_t(feats.size());

  // Every position is a row of one pool: [a zero row for padding | feature k's B*Nq_k rows, k = 0.. |
  // all text tokens]. The text of all conversations is embedded in one lookup and the inputs gathered
  // by one index_select: the same values (and gradients into the features) as embedding and
  // concatenating piece by piece, in a dozen ops instead of a few hundred.
  constexpr int64_t kPadRow = 0;
  std::vector<int64_t> feature_start(static_cast<size_t>(K));
  int64_t first_text_row = kPadRow + 1;
  for (int64_t k = 0; k < K; ++k) {
    feature_start[size_t(k)] = first_text_row;
    first_text_row += B * feats[size_t(k)].embeds.size(1);
  }
  std::vector<int64_t> text_ids;
  std::vector<std::vector<int64_t>> rows(static_cast<size_t>(B)), row_targets(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    auto& r = rows[size_t(b)];
    auto& tr = row_targets[size_t(b)];
    // Each piece is tokenised on its own (its own dummy-prefix '▁'), as the original.
    auto piece = [&](const std::string& text, bool target) {
      for (int64_t id : tok.encode(text, false)) {
        r.push_back(first_text_row + int64_t(text_ids.size()));
        tr.push_back(target ? id : kIgnore);
        text_ids.push_back(id);
      }
    };
    const auto pieces = split_instruct_prompt(conversations[size_t(b)]);
    const auto slots =
        std::count_if(pieces.begin(), pieces.end(), [](const auto& p) { return p.kind == PromptPiece::Kind::query; });
    if (slots != K)
      fail("conversation {} has {} <query> markers for {} features: '{}'", b, slots, K, conversations[size_t(b)]);
    int64_t k = 0;
    for (const auto& p : pieces) {
      if (p.kind != PromptPiece::Kind::query) {
        piece(p.text, p.kind == PromptPiece::Kind::answer);
        continue;
      }
      const int64_t nq = feats[size_t(k)].embeds.size(1);
      for (int64_t j = 0; j < nq; ++j) {
        r.push_back(feature_start[size_t(k)] + b * nq + j);
        tr.push_back(kIgnore);
      }
      ++k;
    }
    // Per-conversation truncation after concatenation: the feature slots count.
    if (int64_t(r.size()) > max_len) {
      r.resize(size_t(max_len));
      tr.resize(size_t(max_len));
    }
  }

  int64_t longest = 0;
  for (const auto& r : rows) longest = std::max(longest, int64_t(r.size()));
  // LEFT padding (the original flips, right-pads, flips back): embeds 0, mask 0, targets -100.
  std::vector<int64_t> index, targets;
  index.reserve(size_t(B * longest));
  targets.reserve(size_t(B * longest));
  for (int64_t b = 0; b < B; ++b) {
    const auto& r = rows[size_t(b)];
    index.insert(index.end(), size_t(longest) - r.size(), kPadRow);
    targets.insert(targets.end(), size_t(longest) - r.size(), kIgnore);
    index.insert(index.end(), r.begin(), r.end());
    targets.insert(targets.end(), row_targets[size_t(b)].begin(), row_targets[size_t(b)].end());
  }

  const auto text_embeds = embed_tokens(torch::tensor(text_ids, long_opts));  // [n_text, D]
  std::vector<torch::Tensor> embeds{torch::zeros({1, text_embeds.size(1)}, text_embeds.options())},
      masks{torch::zeros({1}, long_opts)};
  for (const auto& f : feats) {
    embeds.push_back(f.embeds.to(dtype).reshape({-1, f.embeds.size(2)}));
    masks.push_back(f.atts.reshape({-1}).to(torch::kLong));
  }
  embeds.push_back(text_embeds);
  masks.push_back(torch::ones({text_embeds.size(0)}, long_opts));
  const auto at = torch::tensor(index, long_opts);
  LlamaFeed out;
  out.inputs_embeds = torch::cat(embeds).index_select(0, at).view({B, longest, -1});
  out.attention_mask = torch::cat(masks).index_select(0, at).view({B, longest});
  out.targets = torch::tensor(targets, long_opts).view({B, longest});
  return out;
}

LlamaFeed ChatBridgeImpl::instruct_inputs(const std::vector<Features>& feats,
                                          const std::vector<std::string>& conversations, int64_t max_len) const {
  return prepend_bos(process_prompt_instruct(feats, conversations, max_len));
}

LlamaFeed ChatBridgeImpl::prepend_bos(const LlamaFeed& p) const {
  const int64_t B = p.inputs_embeds.size(0);
  const auto& tok = *tokenizer_;
  auto bos = torch::full({B, 1}, tok.bos_id(), p.targets.options());
  LlamaFeed out;
  out.inputs_embeds = torch::cat({embed_tokens(bos), p.inputs_embeds}, 1);
  // Quirk reproduced: bos takes column 0's bit, so it is masked on every left-padded row.
  out.attention_mask = torch::cat({p.attention_mask.slice(1, 0, 1), p.attention_mask}, 1);
  out.targets = torch::cat({torch::full({B, 1}, kIgnore, p.targets.options()), p.targets}, 1);
  return out;
}

ChatBridgeOutput ChatBridgeImpl::forward(const Batch& batch) {
  const auto autocast = maybe_autocast();
  ChatBridgeOutput out;
  out.features = encode(batch);
  if (config_.stage == 1) {
    if (batch.text_input.empty()) fail("stage 1 needs text_input captions");
    out.llama = caption_inputs(out.features.front(), batch.text_input);  // only the first feature
  } else {
    if (batch.conversation.empty()) fail("stage {} needs conversations", config_.stage);
    out.prompt = process_prompt_instruct(out.features, batch.conversation, config_.max_txt_len);
    out.llama = prepend_bos(*out.prompt);  // = instruct_inputs, keeping the intermediate for the golden check
  }
  LlamaInputs in;
  in.inputs_embeds = out.llama.inputs_embeds;
  in.attention_mask = out.llama.attention_mask;
  in.labels = out.llama.targets;
  in.loss_only = true;
  out.loss = llama_model->forward(in).loss;
  return out;
}

std::vector<std::string> trainable_parameter_names(const torch::nn::Module& m) {
  std::vector<std::string> names;
  for (const auto& p : m.named_parameters(true))
    if (p.value().requires_grad()) names.push_back(p.key());
  return names;
}

ChatBridge build_chatbridge(const Config& model_cfg) {
  auto c = ChatBridgeConfig::from_config(model_cfg);
  c.check_weight_files(model_cfg);
  auto tok_path = c.llama_tokenizer.empty() ? c.llama_model : c.llama_tokenizer;
  if (tok_path.empty()) fail("model.llama_tokenizer / model.llama_model: no tokenizer given");
  ChatBridge model(c, LlamaTokenizer::load(tok_path));
  model->load_pretrained();
  return model;
}

namespace {

// The module tree of build_chatbridge without storage or weights. The tokenizer only bounds the
// vocabulary (a real one is checked against the LLaMA's when the model is built), so this one has just
// the three special pieces and needs no file.
ChatBridge chatbridge_skeleton(const Config& model_cfg) {
  auto c = ChatBridgeConfig::from_config(model_cfg);  // reads config files: outside the meta device
  SentencePieceModel sp;
  sp.source = "the module-tree placeholder tokenizer";
  sp.trainer_spec.model_type = SentencePieceModel::ModelType::Bpe;
  using T = SentencePieceModel::PieceType;
  sp.pieces = {{"<unk>", 0.f, T::Unknown}, {"<s>", 0.f, T::Control}, {"</s>", 0.f, T::Control}};
  LlamaTokenizer tokenizer(std::move(sp));
  return on_meta_device([&] {
    ChatBridge model(std::move(c), std::move(tokenizer));
    // The device the built model's 16-bit encoders are decided for: CUDA when there is one, as
    // llama_precision auto decides.
    model->apply_encoder_precision(torch::cuda::is_available() ? torch::Device(torch::kCUDA)
                                                               : torch::Device(torch::kCPU));
    return model;
  });
}

}  // namespace

CB_REGISTER(model, "chatbridge",
            ModelFactory{.build = [](const Config& m) -> std::shared_ptr<torch::nn::Module> {
                           return build_chatbridge(m).ptr();
                         },
                         .skeleton = [](const Config& m) -> std::shared_ptr<torch::nn::Module> {
                           return chatbridge_skeleton(m).ptr();
                         }});
// The original's PRETRAINED_MODEL_CONFIG_DICT.
CB_REGISTER_DEFAULT_CONFIG(model, "chatbridge", "pretrain_vicuna", "models/configs/chatbridge.yaml");

}  // namespace cb
