// Gradient checkpointing (`model.use_grad_checkpoint`): the experiment key reaches the ViT blocks and
// the Q-Former layers through the model config, the checkpointed graph is really used in training,
// and the loss and every trainable gradient equal those of the plain graph. Model, weights and
// batches are the chatbridge_stage1 golden case's (any fixture set).
#include <catch2/catch.hpp>

#include <functional>
#include <iostream>
#include <map>
#include <set>

#include "framework/config.h"
#include "framework/config_node.h"
#include "tests/models/chatbridge_fixture.h"

using namespace cb;
using namespace cb::test;

namespace {

// Whether the autograd graph below `t` holds a node of activation_checkpoint's function.
bool has_checkpoint_node(const torch::Tensor& t) {
  std::set<torch::autograd::Node*> seen;
  std::function<bool(torch::autograd::Node*)> visit = [&](torch::autograd::Node* n) {
    if (!n || !seen.insert(n).second) return false;
    if (n->name().find("CheckpointFunction") != std::string::npos) return true;
    for (const auto& e : n->next_edges())
      if (visit(e.function.get())) return true;
    return false;
  };
  return visit(t.grad_fn().get());
}

struct Run {
  torch::Tensor loss;
  std::map<std::string, torch::Tensor> grads;
  bool checkpointed = false;
};

Run train_step(const Fixture& f, bool grad_checkpoint, const Batch& batch) {
  auto config = f.config();
  config["use_grad_checkpoint"] = grad_checkpoint;
  auto model = chatbridge_from_fixture(f, config);
  model->train();
  model->seed(3);
  Run r;
  r.loss = model->forward(batch).loss;
  r.checkpointed = has_checkpoint_node(r.loss);
  r.loss.backward();
  for (const auto& p : model->named_parameters())
    if (p.value().requires_grad() && p.value().grad().defined()) r.grads[p.key()] = p.value().grad().clone();
  return r;
}

}  // namespace

TEST_CASE("model.use_grad_checkpoint reaches the ViT blocks and the Q-Former layers, tiny_dims or not") {
  Fixture f("chatbridge_stage1");
  auto yaml = f.config();
  yaml["use_grad_checkpoint"] = true;
  auto model_section = [&] {  // a model: section, whose declared defaults are keyed model.*
    return Config(parse_yaml(nlohmann::json{{"model", yaml}}.dump(), "test"), "test").sub("model");
  };
  auto on = ChatBridgeConfig::from_config(model_section());
  CHECK(on.vit.use_grad_checkpoint);
  CHECK(on.qformer.gradient_checkpointing);
  yaml["use_grad_checkpoint"] = false;
  auto off = ChatBridgeConfig::from_config(model_section());
  CHECK_FALSE(off.vit.use_grad_checkpoint);
  CHECK_FALSE(off.qformer.gradient_checkpointing);
}

TEST_CASE("gradient checkpointing: the same loss and gradients as without it (every batch of the case)") {
  Fixture f("chatbridge_stage1");
  const auto batches = f.meta("batches");
  REQUIRE(!batches.empty());
  for (const auto& [name, b] : batches.items()) {
    INFO(name);
    auto batch = batch_from_fixture(f, name, b.at("task"));
    torch::manual_seed(0);
    auto plain = train_step(f, false, batch);
    torch::manual_seed(0);
    auto ckpt = train_step(f, true, batch);
    CHECK_FALSE(plain.checkpointed);
    CHECK(ckpt.checkpointed);
    check_close(ckpt.loss, plain.loss, {0.0, 1e-6}, "grad-checkpointed loss, " + name);
    REQUIRE(ckpt.grads.size() == plain.grads.size());
    double max_err = 0;
    for (const auto& [key, g] : plain.grads) {
      INFO(key);
      REQUIRE(ckpt.grads.count(key));
      max_err = std::max(max_err, (ckpt.grads.at(key) - g).abs().max().item<double>());
    }
    std::cout << "[grad checkpoint] " << name << ": " << plain.grads.size() << " gradients, max_err=" << max_err
              << " bound=1e-06\n";
    CHECK(max_err <= 1e-6);
  }
}
