// chatbridge-convert's checkpoint_N.pth (runners/train/pth_export.h): a training checkpoint of the
// tiny ChatBridge (the golden chatbridge_stage2 case's config, one AdamW step) written as the
// original's torch.save dict. Read back here (framework/checkpoint/torch_load.h) to the trained
// values, and loaded by PyTorch itself (Debian's python3-torch): load_state_dict(strict=False) into
// parameters of the expected names and shapes, AdamW.load_state_dict of the optimizer.
#include <catch2/catch.hpp>

#include <fstream>

#include "framework/checkpoint/torch_load.h"
#include "framework/error.h"
#include "framework/torch_compat.h"
#include "runners/train/optim.h"
#include "runners/train/pth_export.h"
#include "runners/train/training_checkpoint.h"
#include "tests/runners/serve/chat_fixture.h"
#include "tests/support/make_media.h"
#include "tests/support/process_util.h"
#include "tests/support/scratch_dir.h"
#include "tests/support/torch_peer.h"

using namespace cb;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct Trained {
  ChatBridge model;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  StateDict params;
  fs::path checkpoint;
};

// The tiny model after one AdamW step on deterministic gradients, saved at `iter` iterations into
// epoch 1 of 3-iteration epochs, with a grad scaler state.
Trained train_and_save(const fs::path& dir, int64_t iter) {
  Trained t{test::tiny_chat_model(dir), nullptr, StateDict(), {}};
  t.params = trainable_named_parameters(*t.model);
  REQUIRE(t.params.size() > 2);
  t.optimizer = make_adamw(*t.model, AdamWSettings{.lr = 1e-4, .weight_decay = 0.05});
  torch::manual_seed(3);
  for (auto& p : t.params) p.value().mutable_grad() = torch::randn_like(p.value());
  t.optimizer->step();

  auto cfg =
      json{{"model", test::tiny_chat_model_json()},
           {"run", {{"task", "tri_pretrain"}, {"init_lr", 1e-4}, {"weight_decay", 0.05}, {"iters_per_epoch", 3}}}};
  CheckpointContents c;
  for (const auto& p : t.params) c.params.insert(p.key(), p.value());
  c.optimizer = t.optimizer.get();
  c.state.epoch = 1;
  c.state.iter = iter;
  c.state.global_step = 3 + iter;
  c.state.scaler = {{"scale", 1024.0}, {"growth_tracker", 5}};
  c.state.ranks = json::array();
  c.config_yaml = cfg.dump(1);  // JSON is YAML
  t.checkpoint = save_training_checkpoint(dir / "run", c, 0);
  return t;
}

const torch::optim::AdamWParamState& adam_state(const torch::optim::AdamW& opt, const torch::Tensor& p) {
  return static_cast<const torch::optim::AdamWParamState&>(*opt.state().at(compat::optimizer_state_key(p)));
}

int run_convert(const std::vector<std::string>& args, const fs::path& log) {
  std::vector<std::string> argv = {CB_CONVERT};
  argv.insert(argv.end(), args.begin(), args.end());
  return test::wait_exit(test::spawn(argv, {}, log));
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST_CASE("chatbridge-convert writes checkpoint_N.pth: read back here to the trained values", "[pth_export]") {
  const auto dir = test::fresh_dir("pth_export_ours");
  const auto t = train_and_save(dir, 3);
  const auto pth = dir / "checkpoint_1.pth";
  REQUIRE(run_convert({t.checkpoint.string(), "-o", pth.string()}, dir / "convert.txt") == 0);

  const auto obj = torch_load(pth);
  const auto* root = obj.root;
  std::vector<std::string> keys;
  for (const auto& [k, v] : root->entries) keys.push_back(k->s);
  CHECK(keys == std::vector<std::string>{"model", "optimizer", "config", "scaler", "epoch"});

  // model: every trainable parameter, under its name, with its trained value.
  const auto model = tensors_in(root->get("model"));
  REQUIRE(model.size() == t.params.size());
  for (size_t i = 0; i < model.size(); ++i) {
    INFO(t.params.keys()[i]);
    CHECK(model[i].first == t.params.keys()[i]);
    CHECK(torch::equal(model[i].second, t.params.values()[i]));
  }
  // optimizer: state i is parameter i's moments and step; one group with the run's hyperparameters.
  const auto* opt = root->get("optimizer");
  const auto& state = opt->get("state")->entries;
  REQUIRE(state.size() == t.params.size());
  for (size_t i = 0; i < state.size(); ++i) {
    CHECK(state[i].first->i == static_cast<int64_t>(i));
    const auto& ours = adam_state(*t.optimizer, t.params.values()[i]);
    CHECK(torch::equal(state[i].second->get("exp_avg")->tensor, ours.exp_avg()));
    CHECK(torch::equal(state[i].second->get("exp_avg_sq")->tensor, ours.exp_avg_sq()));
    CHECK(state[i].second->get("step")->tensor.item<double>() == static_cast<double>(ours.step()));
  }
  const auto* group = opt->get("param_groups")->items.at(0);
  CHECK(group->get("lr")->f == 1e-4);
  CHECK(group->get("weight_decay")->f == 0.05);
  CHECK(group->get("params")->items.size() == t.params.size());
  CHECK(root->get("scaler")->get("scale")->f == 1024.0);
  CHECK(root->get("scaler")->get("_growth_tracker")->i == 5);
  CHECK(root->get("epoch")->i == 1);  // iter 3 of 3: epoch 1 is complete
  CHECK(root->get("config")->get("run")->get("task")->s == "tri_pretrain");
  CHECK(root->get("config")->get("model")->get("arch")->s == "chatbridge");
}

TEST_CASE("checkpoint_N.pth loads in PyTorch: load_state_dict(strict=False) and AdamW.load_state_dict",
          "[pth_export]") {
  if (!test::torch_peer_available()) {
    WARN("skipped: /usr/bin/python3 cannot import torch (apt-get install python3-torch)");
    return;
  }
  const auto dir = test::fresh_dir("pth_export_torch");
  const auto t = train_and_save(dir, 3);
  const auto pth = dir / "checkpoint_1.pth";
  REQUIRE(run_convert({t.checkpoint.string(), "-o", pth.string()}, dir / "convert.txt") == 0);

  // The module PyTorch loads into: the trainable parameters, in order, plus one frozen parameter
  // (it comes from its pretrained file, so strict=False reports it missing).
  json spec = json::object();
  std::string frozen;
  for (const auto& p : t.model->named_parameters())
    if (!p.value().requires_grad() && frozen.empty()) frozen = p.key();
  REQUIRE(!frozen.empty());
  spec[frozen] = t.model->named_parameters()[frozen].sizes().vec();
  // nlohmann::json sorts keys; the loader takes the order of a JSON object as written, so build it as text.
  std::string text = "{";
  for (const auto& p : t.params) text += json(p.key()).dump() + ": " + json(p.value().sizes().vec()).dump() + ", ";
  text += json(frozen).dump() + ": " + spec[frozen].dump() + "}";
  test::write_text(dir / "spec.json", text);

  const auto r = test::torch_peer({"load-model", pth.string(), (dir / "spec.json").string()});
  CHECK(r["keys"] == json({"config", "epoch", "model", "optimizer", "scaler"}));
  CHECK(r["missing"] == json({frozen}));
  CHECK(r["unexpected"] == json::array());
  CHECK(r["values_equal"] == true);
  CHECK(r["optimizer_states"] == t.params.size());
  CHECK(r["moments_equal"] == true);
  CHECK(r["steps"][0] == 1.0);
  CHECK(r["lr"] == 1e-4);
  CHECK(r["weight_decay"] == 0.05);
  CHECK(r["epoch"] == 1);
  CHECK(r["scaler"]["scale"] == 1024.0);
  CHECK(r["scaler"]["growth_factor"] == 2.0);
  CHECK(r["config_run"]["iters_per_epoch"] == 3);
}

TEST_CASE("checkpoint_N.pth: epoch of a mid-epoch save, and inputs that are not training checkpoints", "[pth_export]") {
  const auto dir = test::fresh_dir("pth_export_edges");
  const auto t = train_and_save(dir, 2);
  // 2 of 3 iterations into epoch 1: the last complete epoch is 0.
  CHECK(export_original_checkpoint(t.checkpoint, dir / "checkpoint_0.pth").epoch == 0);
  CHECK(torch_load(dir / "checkpoint_0.pth").root->get("epoch")->i == 0);

  CHECK_THROWS_WITH(export_original_checkpoint(dir, dir / "x.pth"),
                    Catch::Contains("not a complete training checkpoint directory"));
  const auto log = dir / "convert.txt";
  CHECK(run_convert({(dir / "run").string(), "-o", (dir / "y.pth").string()}, log) != 0);
  CHECK_THAT(read_text(log), Catch::Contains("a .pth output is written from a training checkpoint directory"));
  CHECK_FALSE(fs::exists(dir / "y.pth"));
}
