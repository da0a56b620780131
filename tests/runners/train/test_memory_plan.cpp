// The memory plan (what --dry-run prints): byte accounting per part against the model's own tensors,
// gradients and AdamW state of the trainable parameters only, dtype bytes, the budget verdict.
#include <catch2/catch.hpp>

#include "models/llama.h"
#include "runners/train/memory_plan.h"

using namespace cb;

namespace {

LlamaConfig tiny_config() {
  LlamaConfig c;
  c.vocab_size = 96, c.hidden_size = 32, c.intermediate_size = 64, c.num_hidden_layers = 2;
  c.num_attention_heads = c.num_key_value_heads = 4;
  return c;
}

LlamaForCausalLM tiny_llama() { return LlamaForCausalLM(tiny_config()); }

int64_t bytes_of(const torch::nn::Module& m, const std::string& prefix) {
  int64_t b = 0;
  for (const auto& p : m.named_parameters())
    if (p.key().rfind(prefix, 0) == 0) b += p.value().numel() * int64_t(p.value().element_size());
  for (const auto& p : m.named_buffers())
    if (p.key().rfind(prefix, 0) == 0) b += p.value().numel() * int64_t(p.value().element_size());
  return b;
}

const PartMemory& part(const MemoryPlan& plan, const std::string& name) {
  for (const auto& p : plan.parts)
    if (p.name == name) return p;
  FAIL("no part " << name);
  throw;
}

}  // namespace

TEST_CASE("memory plan: weights, gradients and AdamW state per part") {
  auto lm = tiny_llama();
  for (auto& p : lm->model->parameters()) p.set_requires_grad(false);  // frozen body, trainable lm_head
  MemoryPlanOptions o;
  o.batch_size = 2, o.text_len = 16;
  const auto plan = plan_memory(*lm, o);
  REQUIRE(plan.parts.size() == 2);
  const auto& body = part(plan, "model");
  const auto& head = part(plan, "lm_head");
  CHECK(body.weight_bytes == bytes_of(*lm, "model."));
  CHECK(body.trainable == 0);
  CHECK(body.grad_bytes == 0);
  CHECK(body.optimizer_bytes == 0);
  CHECK(head.weight_bytes == 96 * 32 * 4);
  CHECK(head.trainable == 96 * 32);
  CHECK(head.grad_bytes == head.weight_bytes);
  CHECK(head.optimizer_bytes == 2 * head.weight_bytes);
  CHECK(plan.grad_sync_bytes == 0);
  CHECK(plan.activation_bytes > 0);
  CHECK(plan.total_bytes() == body.weight_bytes + 4 * head.weight_bytes + plan.activation_bytes);

  SECTION("data parallel adds the gradient buckets; inference has no gradients") {
    o.world_size = 2;
    CHECK(plan_memory(*lm, o).grad_sync_bytes == head.weight_bytes);
    o.train = false;
    const auto infer = plan_memory(*lm, o);
    CHECK(part(infer, "lm_head").grad_bytes == 0);
    CHECK(infer.grad_sync_bytes == 0);
    CHECK(infer.activation_bytes < plan.activation_bytes);
  }
  SECTION("a larger batch needs more activations") {
    o.batch_size = 8;
    CHECK(plan_memory(*lm, o).activation_bytes > 3 * plan.activation_bytes);
  }
}

TEST_CASE("memory plan: 16-bit weights count 2 bytes, the fp32 rotary buffer 4") {
  auto lm = tiny_llama();
  const auto fp32 = plan_memory(*lm, {});
  lm->to(torch::kBFloat16);
  const auto bf16 = plan_memory(*lm, {});
  const int64_t inv_freq = 2 * (32 / 4 / 2) * 4;  // two layers' inv_freq [head_dim/2], fp32 whatever the model dtype
  CHECK(part(bf16, "model").weight_bytes == (part(fp32, "model").weight_bytes - inv_freq) / 2 + inv_freq);
  CHECK(part(bf16, "model").dtypes == "bf16+fp32");
  CHECK(part(bf16, "lm_head").weight_bytes == part(fp32, "lm_head").weight_bytes / 2);
}

TEST_CASE("memory plan: the budget verdict") {
  auto lm = tiny_llama();
  const auto plan = plan_memory(*lm, {});
  CHECK_THAT(plan.describe(plan.total_bytes()), Catch::Contains("fits"));
  CHECK_THAT(plan.describe(plan.total_bytes() - 1), Catch::Contains("does NOT fit"));
  CHECK_THAT(plan.describe(), !Catch::Contains("fit"));
}

TEST_CASE("memory plan: inference counts the KV cache at 2 bytes beside 16-bit weights, 4 beside fp32") {
  const auto c = tiny_config();
  MemoryPlanOptions o;
  o.train = false, o.batch_size = 3, o.text_len = 20;
  const auto fp32 = plan_memory(*LlamaForCausalLM(c), o);
  const auto bf16 = plan_memory(*LlamaForCausalLM(c, LlamaStorage::from_precision("bf16")), o);
  // keys and values of every layer, batch and position: the only activation that differs
  CHECK(fp32.activation_bytes - bf16.activation_bytes == 2 * 2 * 3 * 20 * 32 * (4 - 2));
}
