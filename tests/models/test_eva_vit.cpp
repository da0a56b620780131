// EVA ViT + ln_vision against the `eva_vit` golden fixture, plus unit tests of precision handling,
// activation checkpointing and the fp32 LayerNorm.
#include <catch2/catch.hpp>

#include <iostream>

#include "framework/torch_compat.h"
#include "models/eva_vit.h"
#include "models/layer_norm_fp32.h"
#include "tests/support/golden.h"

using cb::test::check_close;
namespace tol = cb::test::tol;

namespace {

// config.vit of the fixture: the constructor arguments of VisionTransformer.
cb::EvaVitConfig vit_config(const cb::test::Fixture& f) {
  return cb::EvaVitConfig::from_json(f.config().at("vit"), f.name());
}

cb::VisionTransformer loaded_vit(const cb::test::Fixture& f) {
  cb::VisionTransformer vit(vit_config(f));
  cb::load_state_dict(*vit, cb::strip_prefix(f.weights(), "visual_encoder."), /*strict=*/true, "eva_vit fixture");
  vit->eval();
  return vit;
}

}  // namespace

TEST_CASE("eva_vit golden: features and ln_vision") {
  cb::test::Fixture f("eva_vit");
  auto vit = loaded_vit(f);
  REQUIRE(vit->config.grid() == f.config().at("grid").get<int64_t>());
  cb::LayerNormFp32 ln_vision(vit->num_features(), f.config().at("ln_vision").at("eps").get<double>());
  cb::load_state_dict(*ln_vision, cb::strip_prefix(f.weights(), "ln_vision."), /*strict=*/true, "eva_vit fixture");

  torch::NoGradGuard no_grad;
  auto features = vit(f.get("input.image"));
  check_close(features, f.get("output.features"), tol::module, "eva_vit features");
  check_close(ln_vision(features), f.get("output.ln_vision"), tol::module, "eva_vit ln_vision");
}

TEST_CASE("eva_vit golden: interpolate_pos_embed for smaller and larger checkpoint grids") {
  cb::test::Fixture f("eva_vit");
  const int64_t grid = f.config().at("grid");
  for (const std::string which : {"small", "large"}) {
    auto ckpt = f.get("input.ckpt_pos_embed_" + which);
    const int64_t ckpt_grid = f.config().at("ckpt_grids").at(which);
    REQUIRE(ckpt.size(1) == 1 + ckpt_grid * ckpt_grid);
    check_close(cb::interpolate_pos_embed(ckpt, grid), f.get("output.pos_embed_interpolated_" + which), tol::module,
                "eva_vit pos_embed_interpolated_" + which);
  }
  auto same = f.get("visual_encoder.pos_embed");
  CHECK(torch::equal(cb::interpolate_pos_embed(same, grid), same));  // same grid: untouched
}

TEST_CASE("eva_vit golden: features after loading a checkpoint with the small grid") {
  cb::test::Fixture f("eva_vit");
  cb::VisionTransformer vit(vit_config(f));
  // The checkpoint layout of eva_vit_g.pth: flat keys; its pos_embed has another grid.
  auto sd = cb::strip_prefix(f.weights(), "visual_encoder.");
  sd["pos_embed"] = f.get("input.ckpt_pos_embed_small");
  auto report = cb::load_eva_vit_state_dict(vit, sd, "eva_vit fixture (small grid)");
  CHECK(report.missing.empty());
  CHECK(report.unexpected.empty());
  vit->eval();
  torch::NoGradGuard no_grad;
  check_close(vit(f.get("input.image")), f.get("output.features_with_interpolated_small"), tol::module,
              "eva_vit features_with_interpolated_small");
}

TEST_CASE("eva_vit: non-strict load ignores blocks beyond the model's depth (39 of 40)") {
  cb::test::Fixture f("eva_vit");
  auto c = vit_config(f);
  REQUIRE(c.depth >= 2);
  c.depth -= 1;
  cb::VisionTransformer vit(c);
  auto report = cb::load_eva_vit_state_dict(vit, cb::strip_prefix(f.weights(), "visual_encoder."), "fixture");
  CHECK(report.missing.empty());
  REQUIRE_FALSE(report.unexpected.empty());
  for (const auto& k : report.unexpected) CHECK(k.rfind("blocks." + std::to_string(c.depth) + ".", 0) == 0);
}

TEST_CASE("eva_vit: a wrong input size is refused with the sizes named") {
  cb::test::Fixture f("eva_vit");
  auto vit = loaded_vit(f);
  const int64_t s = vit->config.img_size;
  CHECK_THROWS_WITH(vit(torch::zeros({1, 3, s + 1, s + 1})), Catch::Contains("does not match the model"));
}

TEST_CASE("eva_vit: the ViT-g config matches create_eva_vit_g") {
  auto c = cb::EvaVitConfig::eva_vit_g();
  CHECK(c.grid() == 16);
  CHECK(c.num_patches() + 1 == 257);
  CHECK(c.embed_dim / c.num_heads == 88);
  CHECK(c.mlp_hidden() == 6144);  // int(1408 * 4.3637) = int(6144.09); not 6143
  CHECK(c.depth == 39);
  CHECK(c.layer_norm_eps == 1e-6);
}

TEST_CASE("eva_vit: vit_precision casts only Linear/Conv weights and biases") {
  cb::test::Fixture f("eva_vit");
  {
    auto vit = loaded_vit(f);
    cb::apply_vit_precision(vit, "fp16", torch::kCPU);  // no fp16 kernels on CPU: stays fp32
    for (const auto& p : vit->named_parameters()) CHECK(p.value().scalar_type() == torch::kFloat);
  }
  auto vit = loaded_vit(f);
  cb::apply_vit_precision(vit, "bf16", torch::kCPU);
  for (const auto& p : vit->named_parameters()) {
    const auto& k = p.key();
    const bool linear_or_conv = k.find("qkv.weight") != std::string::npos || k.find("proj.") != std::string::npos ||
                                k.find("mlp.fc") != std::string::npos;
    INFO(k);
    CHECK(p.value().scalar_type() == (linear_or_conv ? torch::kBFloat16 : torch::kFloat));
  }
  CHECK_THROWS_WITH(cb::apply_vit_precision(vit, "int8", torch::kCPU), Catch::Contains("int8"));
}

TEST_CASE("eva_vit: bf16 Linear/Conv weights on the CPU are storage, computed in fp32 (frozen or trained)") {
  cb::test::Fixture f("eva_vit");
  auto vit = loaded_vit(f);
  cb::apply_vit_precision(vit, "bf16", torch::kCPU);
  // The same rounded weights held in fp32: the bf16 ViT must compute exactly this, up to fp32 rounding.
  auto widened = loaded_vit(f);
  cb::apply_vit_precision(widened, "bf16", torch::kCPU);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : widened->parameters()) p.set_data(p.to(torch::kFloat));
  }
  const auto image = f.get("input.image");
  torch::Tensor out, ref;
  {
    torch::NoGradGuard no_grad;  // frozen: the frozen-linear kernels read the bf16 rows
    out = vit(image);
    ref = widened(image);
  }
  CHECK(out.scalar_type() == torch::kFloat);
  const double scale = ref.abs().max().item<double>();
  const double exact_err = (out - ref).abs().max().item<double>();
  INFO("max |bf16 storage - widened| = " << exact_err << " of max |features| " << scale);
  CHECK(exact_err <= 1e-5 * scale);
  // Against the fp32 model: only the weights' rounding (8 bits of mantissa) separates them.
  const auto fp32 = f.get("output.features");
  const double rel = ((out - fp32).norm() / fp32.norm()).item<double>();
  std::cout << "[golden] eva_vit features, bf16 weights computed in fp32: rel_l2=" << rel << " bound=0.02\n";
  CHECK(rel <= 0.02);  // a broken bf16 path is off by O(1)

  // Trained (gradients recorded): F::linear on the weights converted to fp32, the same values, and the
  // gradients reach the bf16 weights.
  const auto trained = vit(image);
  CHECK((trained - out).abs().max().item<double>() <= 1e-5 * scale);
  trained.sum().backward();
  const auto& g = vit->blocks[0]->as<cb::EvaBlockImpl>()->attn->qkv->weight.grad();
  REQUIRE(g.defined());
  CHECK(g.scalar_type() == torch::kBFloat16);
  CHECK(g.abs().sum().item<double>() > 0);
}

TEST_CASE("eva_vit: grad checkpointing gives the same outputs and gradients, drop path included") {
  cb::test::Fixture f("eva_vit");
  auto c = vit_config(f);
  c.drop_path_rate = 0.5;  // random masks must be replayed identically in the recomputation
  auto run = [&](bool checkpointing) {
    c.use_grad_checkpoint = checkpointing;
    cb::VisionTransformer vit(c);
    cb::load_state_dict(*vit, cb::strip_prefix(f.weights(), "visual_encoder."), true, "fixture");
    vit->train();
    auto image = f.get("input.image").requires_grad_(true);
    torch::manual_seed(7);
    auto out = vit(image);
    out.pow(2).sum().backward();
    return std::make_tuple(out.detach(), image.grad(), vit->blocks[0]->as<cb::EvaBlockImpl>()->mlp->fc1->weight.grad());
  };
  auto [out_a, gimg_a, gw_a] = run(false);
  auto [out_b, gimg_b, gw_b] = run(true);
  REQUIRE(gw_b.defined());
  // The checkpointed forward runs without a graph, through the frozen-linear kernels (dense_linear), the
  // other through F::linear: equal up to fp32 summation order.
  CHECK(torch::allclose(out_a, out_b, 1e-5, 1e-6));
  CHECK(torch::allclose(gimg_a, gimg_b, 1e-5, 1e-6));
  CHECK(torch::allclose(gw_a, gw_b, 1e-5, 1e-6));
}

TEST_CASE("LayerNormFp32 normalises in fp32 and returns the input dtype") {
  cb::LayerNormFp32 ln(8);
  {
    torch::NoGradGuard no_grad;
    ln->weight.uniform_(0.5, 1.5);
    ln->bias.uniform_(-0.5, 0.5);
  }
  auto x = (torch::randn({2, 3, 8}) * 4).to(torch::kBFloat16);
  auto y = ln(x);
  CHECK(y.scalar_type() == torch::kBFloat16);
  auto ref = torch::layer_norm(x.to(torch::kFloat), {8}, ln->weight, ln->bias, 1e-5).to(torch::kBFloat16);
  CHECK(torch::equal(y, ref));
}
