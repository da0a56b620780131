// The real model's widths with few layers (what the 7B/13B models are made of, at a size this machine
// and CI hold): 2 LLaMA layers at Vicuna-7B's widths (4096 / 11008, 32 heads, vocab 32000) and 2 EVA
// ViT-g blocks (1408 / 6144, 16 heads of 88), stored in bf16.
// - Bytes: what the built model holds equals the memory plan's weight figure, which the plan computes
//   from a meta-device skeleton (as `chatbridge-train --dry-run` does); the process's RSS grows by
//   that much and not by an fp32 copy.
// - Values: the bf16 LLaMA's logits are within (7L+2)·u·max|logits| of the fp32 model with the same
//   weights (the bound of test_llama_precision, u = 2^-9); the bf16 ViT's features, computed in fp32
//   from the bf16 weights as ChatBridge runs a bf16 ViT on the CPU, within 2·6·u·max|features| per
//   block (the bound for rounding both operands of a block's 6 matrix products; only the weights are).
#include <catch2/catch.hpp>

#include <cmath>

#include "framework/checkpoint/state_dict.h"
#include "framework/meta_device.h"
#include "models/eva_vit.h"
#include "models/frozen_linear.h"
#include "models/llama.h"
#include "runners/train/memory_plan.h"
#include "tests/support/golden.h"

using namespace cb;

namespace {

const double kBf16Roundoff = std::ldexp(1.0, -9);

int64_t held_bytes(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel() * p.element_size();
  for (const auto& b : m.buffers()) n += b.numel() * b.element_size();
  return n;
}

int64_t planned_weight_bytes(const torch::nn::Module& skeleton) {
  MemoryPlanOptions o;
  o.train = false;
  int64_t n = 0;
  for (const auto& part : plan_memory(skeleton, o).parts) n += part.weight_bytes;
  return n;
}

LlamaConfig two_layers_7b() {
  LlamaConfig c;  // the defaults are LLaMA-7B's widths
  c.num_hidden_layers = 2;
  return c;
}

}  // namespace

TEST_CASE("real width: 2 LLaMA-7B layers in bf16 hold the planned bytes, logits within the bf16 bound") {
  const auto c = two_layers_7b();
  const auto bf16 = LlamaStorage::from_precision("bf16", /*init=*/false);
  const int64_t planned = planned_weight_bytes(*on_meta_device([&] { return LlamaForCausalLM(c, bf16); }));
  // 2·(4·4096² + 3·4096·11008) projections + 2·32000·4096 embedding/lm_head + 5 norms, 2 bytes each,
  // and each layer's fp32 rotary inv_freq buffer (64 values).
  CHECK(planned == 2 * (2 * (4 * 4096LL * 4096 + 3 * 4096LL * 11008) + 2 * 32000LL * 4096 + 5 * 4096LL) + 2 * 64 * 4);

  torch::manual_seed(3);
  LlamaForCausalLM fp32(c);
  fp32->eval();
  const int64_t rss_before = current_rss_bytes();
  LlamaForCausalLM model(c, bf16);
  load_state_dict_into_frozen(*model, module_state_dict(*fp32), /*strict=*/true, "fp32 model");
  model->eval();
  const int64_t grown = current_rss_bytes() - rss_before;
  CHECK(held_bytes(*model) == planned);
  INFO("RSS grew by " << grown / (1 << 20) << " MiB for " << planned / (1 << 20) << " MiB of weights");
  CHECK(grown >= planned * 9 / 10);                // the weights are resident
  CHECK(grown <= planned * 11 / 10 + (64 << 20));  // and no fp32 copy stayed behind

  torch::NoGradGuard no_grad;
  LlamaInputs in;
  in.input_ids = torch::randint(3, c.vocab_size, {1, 12}, torch::kLong);
  in.attention_mask = torch::ones({1, 12}, torch::kLong);
  const auto ref = fp32->forward(in).logits;
  const auto out = model->forward(in).logits;
  const double bound = double(7 * c.num_hidden_layers + 2) * kBf16Roundoff * ref.abs().max().item<double>();
  const double err = (out - ref).abs().max().item<double>();
  INFO("max |bf16 - fp32| = " << err << ", bound " << bound);
  CHECK(err <= bound);
}

TEST_CASE("real width: 2 EVA ViT-g blocks in bf16 hold the planned bytes, features within the bf16 bound") {
  auto c = EvaVitConfig::eva_vit_g();
  c.depth = 2;
  auto skeleton = on_meta_device([&] {
    VisionTransformer v(c);
    apply_vit_precision(v, "bf16", torch::kCPU);
    return v;
  });
  const int64_t planned = planned_weight_bytes(*skeleton);

  torch::manual_seed(4);
  VisionTransformer vit(c);
  vit->eval();
  torch::NoGradGuard no_grad;
  const auto image = torch::randn({1, 3, c.img_size, c.img_size});
  const auto ref = vit(image);
  apply_vit_precision(vit, "bf16", torch::kCPU);
  CHECK(held_bytes(*vit) == planned);
  const auto out = vit(image);  // fp32 activations, as ChatBridgeImpl::encode_frame gives a bf16 ViT on the CPU
  const double bound = 2.0 * 6 * c.depth * kBf16Roundoff * ref.abs().max().item<double>();
  const double err = (out - ref).abs().max().item<double>();
  INFO("max |bf16 - fp32| = " << err << ", bound " << bound);
  CHECK(err <= bound);
}
