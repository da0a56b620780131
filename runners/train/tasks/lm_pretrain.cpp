// `lm_pretrain`: causal-LM training of a LLaMA (model `llama_causal_lm`) on text — stage 0 of the
// tiny main job. ChatBridge freezes its LLaMA, so the tiny runs need a LLaMA that has already seen
// the kind of text it will be asked to produce; this task trains one on the captions and
// conversations of the stage-1/2 data and exports it as a Hugging Face directory for `llama_model`.
//
//   run:
//     task: lm_pretrain
//     lm_data_opts_paths: [train_configs/tiny_pretrain_data.json, ...]   valor data-options JSONs
//     prompt_path: instructiontuning_configs/task_prompt.json           stage-2 instruction templates
//     batch_size_train: 8                                                texts per rank and step
//     caption_end_sym: "\n"                                              after stage-1 captions
//     lm_fill_query_slots: false                                       slots hold their media's caption text
//     (lm_corpus.h) export_dir: <output_dir>/llama                                     the Hugging Face directory
//
// Loss: mean next-token cross-entropy over [bos] + tokens (right padding ignored), HF's shift. A
// conversation is tokenised piece by piece (models/instruct_prompt.h) as ChatBridge feeds it later.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "datasets/text/lm_corpus.h"
#include "models/instruct_prompt.h"
#include "models/llama_causal_lm.h"
#include "models/tokenizer.h"
#include "runners/train/task.h"

namespace cb {
namespace {

constexpr int64_t kIgnore = -100;

std::filesystem::path tokenizer_path(const Config& cfg) {
  auto p = cfg.get<std::string>("model.llama_tokenizer", cfg.get<std::string>("model.llama_model"));
  if (p.empty()) fail("model.llama_tokenizer / model.llama_model: lm_pretrain needs a tokenizer");
  return p;
}

class LmPretrainTask : public Task {
 public:
  explicit LmPretrainTask(const Config& cfg)
      : tokenizer_path_(tokenizer_path(cfg)),
        tokenizer_(LlamaTokenizer::load(tokenizer_path_)),
        max_len_(cfg.get<int64_t>("model.max_txt_len", 128)) {}  // a corpus length, not ChatBridge's 32

  std::unique_ptr<BatchSource> build_train_source(const Config& cfg, int rank, int world_size) const override {
    LmCorpusOptions o;
    for (const auto& p : cfg.get<std::vector<std::string>>("run.lm_data_opts_paths")) o.data_opts.emplace_back(p);
    o.prompt_path = cfg.get<std::string>("run.prompt_path", "");  // optional here, tri_instruct requires it
    o.caption_end_sym = cfg.get<std::string>("run.caption_end_sym");
    o.fill_query_slots = cfg.get<bool>("run.lm_fill_query_slots");
    o.batch_size = cfg.get<int64_t>("run.batch_size_train");
    o.seed = cfg.get<int64_t>("run.seed");
    o.rank = rank;
    o.world_size = world_size;
    return make_lm_corpus_source(o);
  }

  StepOutput train_step(torch::nn::Module& model, const Batch& batch, uint64_t) const override {
    auto& lm = model_as<LlamaForCausalLMImpl>(model, "lm_pretrain");
    // [bos] + each piece tokenised on its own, as stages 1/2 and inference feed the frozen LLaMA
    // (feature slots dropped); right padding with pad ids, masked.
    const int64_t B = batch.size();
    std::vector<std::vector<int64_t>> rows(static_cast<size_t>(B));
    int64_t longest = 0;
    for (int64_t b = 0; b < B; ++b) {
      auto& r = rows[size_t(b)];
      r.push_back(tokenizer_.bos_id());
      for (const auto& piece : split_instruct_prompt(batch.text_input[size_t(b)]))
        for (int64_t id : tokenizer_.encode(piece.text, false)) r.push_back(id);
      if (int64_t(r.size()) > max_len_) r.resize(size_t(max_len_));
      longest = std::max<int64_t>(longest, int64_t(r.size()));
    }
    auto ids = torch::full({B, longest}, tokenizer_.pad_id(), torch::kLong);
    auto mask = torch::zeros({B, longest}, torch::kLong);
    for (int64_t b = 0; b < B; ++b) {
      const auto& r = rows[size_t(b)];
      const auto n = int64_t(r.size());
      ids[b].narrow(0, 0, n).copy_(torch::tensor(r, torch::kLong));
      mask[b].narrow(0, 0, n).fill_(1);
    }
    LlamaInputs in;
    in.input_ids = ids.to(lm.device());
    in.attention_mask = mask.to(lm.device());
    in.labels = in.input_ids.masked_fill(in.attention_mask == 0, kIgnore);
    in.loss_only = true;
    return {lm.forward(in).loss, mask.sum().item<int64_t>()};
  }

  void finish(const torch::nn::Module& model, const Config& cfg) const override {
    const auto* lm = dynamic_cast<const LlamaForCausalLMImpl*>(&model);
    if (!lm) fail("lm_pretrain: the trained model is not a LLaMA (model.arch)");
    const std::filesystem::path out = cfg.get<std::string>("run.output_dir");
    // run.export_dir's default depends on run.output_dir, so it is given here, not declared.
    save_llama_hf(*lm, tokenizer_path_, cfg.get<std::string>("run.export_dir", (out / "llama").string()));
  }

 private:
  std::filesystem::path tokenizer_path_;
  LlamaTokenizer tokenizer_;
  int64_t max_len_;
};

}  // namespace

CB_REGISTER(task, "lm_pretrain",
            [](const Config& cfg) -> std::unique_ptr<Task> { return std::make_unique<LmPretrainTask>(cfg); });

}  // namespace cb
