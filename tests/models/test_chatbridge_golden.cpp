// Golden cases chatbridge_stage1 / chatbridge_stage2: the full model's features, LLaMA inputs,
// targets and losses per batch (tests/golden/README.md).
#include <catch2/catch.hpp>

#include <cmath>

#include "framework/autocast.h"
#include "tests/models/chatbridge_fixture.h"

using namespace cb;
using namespace cb::test;

static void check_feed(const Fixture& f, const std::string& out, const LlamaFeed& got, const std::string& prefix) {
  check_close(got.inputs_embeds, f.get(out + prefix + "inputs_embeds"), tol::module, out + prefix + "inputs_embeds");
  check_equal(got.attention_mask, f.get(out + prefix + "attention_mask"), out + prefix + "attention_mask");
  check_equal(got.targets, f.get(out + prefix + "targets"), out + prefix + "targets");
}

static void run_case(const std::string& name) {
  Fixture f(name);
  auto model = chatbridge_from_fixture(f, f.config());
  model->eval();
  torch::NoGradGuard no_grad;
  auto batches = f.meta("batches");
  REQUIRE(!batches.empty());
  for (auto it = batches.begin(); it != batches.end(); ++it) {
    const std::string out = "output." + it.key() + ".";
    auto result = model->forward(batch_from_fixture(f, it.key(), it.value().at("task")));
    bool stage1 = model->config().stage == 1;
    REQUIRE(result.features.size() == (stage1 ? 1u : f.names(out + "feat_embeds").size()));
    for (size_t j = 0; j < result.features.size(); ++j) {
      auto key = out + "feat_embeds" + (stage1 ? "" : std::to_string(j));
      check_close(result.features[j].embeds, f.get(key), tol::module, key);
    }
    if (!stage1) {
      REQUIRE(result.prompt.has_value());
      check_feed(f, out, *result.prompt, "ppi_");
    }
    check_feed(f, out, result.llama, "");
    check_close(result.loss.reshape({1}), f.get(out + "loss"), tol::loss, out + "loss");
  }
}

TEST_CASE("golden chatbridge_stage1: captioning loss for image, video and audio batches") {
  run_case("chatbridge_stage1");
}
TEST_CASE("golden chatbridge_stage2: instruction loss, process_prompt_instruct, left padding") {
  run_case("chatbridge_stage2");
}

// run.amp on the CPU (bf16 autocast, runners/train/runner_base.cpp): every golden batch, image, video and
// audio, trains forward and backward with a finite loss near the fp32 reference. bf16 keeps 8
// significant bits (unit roundoff 3.9e-3); averaged into a cross-entropy through a few blocks that stays
// within a few percent, far below what a dropped term would move.
static void amp_case(const std::string& name) {
  Fixture f(name);
  auto model = chatbridge_from_fixture(f, f.config());
  model->train();
  auto batches = f.meta("batches");
  for (auto it = batches.begin(); it != batches.end(); ++it) {
    INFO(name << " batch " << it.key() << " (" << it.value().at("task") << ")");
    torch::Tensor loss;
    {
      AutocastGuard autocast(true, torch::kCPU);
      loss = model->forward(batch_from_fixture(f, it.key(), it.value().at("task"))).loss;
    }
    loss.backward();
    REQUIRE(std::isfinite(loss.item<double>()));
    const double ref = f.get("output." + it.key() + ".loss").item<double>();
    CHECK(std::abs(loss.item<double>() - ref) <= 5e-2 * std::abs(ref) + 1e-3);
    for (const auto& p : model->parameters())
      if (p.requires_grad() && p.grad().defined()) REQUIRE(torch::isfinite(p.grad()).all().item<bool>());
    model->zero_grad();
  }
}

TEST_CASE("run.amp on the CPU: bf16 autocast trains every stage-1 and stage-2 golden batch, image, video, audio") {
  amp_case("chatbridge_stage1");
  amp_case("chatbridge_stage2");
}
