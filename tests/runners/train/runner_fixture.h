// A tiny ChatBridge (the chatbridge_stage1 golden case's dims, random weights from a fixed seed) and a
// generated, resumable batch source for runner tests: sample j is an image drawn from seed + j with one
// fixed caption, so every sample has the same number of target tokens (a batch of 2b on one rank then
// has the same mean loss and gradient as two ranks with b each).
#pragma once
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <string>

#include "datasets/batch_source.h"
#include "framework/config.h"
#include "framework/config_node.h"
#include "models/chatbridge.h"
#include "runners/train/tasks/tri_tasks.h"
#include "tests/support/golden.h"

namespace cb::test {

class GeneratedSource : public BatchSource {
 public:
  GeneratedSource(int64_t batch, int rank, int world, int64_t image_size)
      : batch_(batch), rank_(rank), world_(world), size_(image_size) {}
  Batch next() override {
    Batch b;
    b.task = "ti";
    std::vector<torch::Tensor> images;
    for (int64_t k = 0; k < batch_; ++k) {
      int64_t j = (pos_ * world_ + rank_) * batch_ + k;
      auto gen = at::make_generator<at::CPUGeneratorImpl>(1000 + j);
      images.push_back(torch::randn({3, size_, size_}, gen));
    }
    b.text_input.assign(batch_, "a small red cat sits on the mat");
    b.image = torch::stack(images);
    ++pos_;
    return b;
  }
  nlohmann::json state() const override { return {{"pos", pos_}}; }
  void restore(const nlohmann::json& s) override { pos_ = s.at("pos"); }

 private:
  int64_t batch_, pos_ = 0;
  int rank_, world_;
  int64_t size_;
};

inline nlohmann::json tiny_model_json() { return Fixture("chatbridge_stage1").config(); }

// The model the fixture's config describes, weights from torch::manual_seed(seed).
inline ChatBridge tiny_chatbridge(uint64_t seed = 7) {
  torch::manual_seed(seed);
  auto cfg = ChatBridgeConfig::from_json(tiny_model_json(), "chatbridge_stage1");
  return ChatBridge(cfg, LlamaTokenizer::load(golden_tokenizer()));
}

class GeneratedTask : public ChatBridgeTask {
 public:
  explicit GeneratedTask(int64_t batch) : batch_(batch) {}
  std::unique_ptr<BatchSource> build_train_source(const Config&, int rank, int world) const override {
    return std::make_unique<GeneratedSource>(batch_, rank, world, tiny_model_json().at("image_size").get<int64_t>());
  }

 private:
  int64_t batch_;
};

// A run: section for the tests (values as YAML scalars), into a Config.
inline Config run_config(const std::string& output_dir, const std::string& extra = "") {
  auto yaml =
      "run:\n  task: tri_pretrain\n  lr_sched: linear_warmup_cosine_lr\n  init_lr: 1e-3\n  min_lr: 1e-5\n"
      "  warmup_lr: 1e-6\n  warmup_steps: 2\n  weight_decay: 0.05\n  max_epoch: 2\n  iters_per_epoch: 4\n"
      "  log_freq: 1\n  seed: 42\n  output_dir: \"" +
      output_dir + "\"\n" + extra;
  return Config(parse_yaml(yaml, "runner test config"), "runner test config");
}

}  // namespace cb::test
