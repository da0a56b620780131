// Unit tests of blip_image_train and RandomAugment beyond the golden values: the draws' semantics,
// registration under the original name, argument checks.
#include <catch2/catch.hpp>

#include <map>

#include "datasets/processors/blip_image_train.h"
#include "datasets/processors/processor.h"
#include "datasets/processors/randaugment.h"
#include "framework/error.h"

namespace {

cb::Config yaml(const std::string& text) { return cb::Config(cb::parse_yaml(text, "p.yaml"), "p.yaml"); }

torch::Tensor noise_image(int64_t h, int64_t w, int64_t seed) {
  torch::manual_seed(uint64_t(seed));
  return torch::randint(0, 256, {h, w, 3}, torch::kUInt8);
}

}  // namespace

TEST_CASE("RandomResizedCrop.get_params: boxes inside the image + area and ratio within range") {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 500; ++i) {
    const auto [top, left, h, w] = cb::random_resized_crop_params(120, 200, {0.5, 1.0}, {3.0 / 4, 4.0 / 3}, rng);
    REQUIRE(top >= 0);
    REQUIRE(left >= 0);
    REQUIRE(top + h <= 120);
    REQUIRE(left + w <= 200);
    CHECK(double(h * w) >= 0.5 * 120 * 200 * 0.95);
    CHECK(double(w) / double(h) <= 4.0 / 3 * 1.05);
    CHECK(double(w) / double(h) >= 3.0 / 4 * 0.95);
  }
  // A very thin image never fits a sampled box: the central fallback crop, ratio clamped.
  const auto box = cb::random_resized_crop_params(10, 1000, {0.9, 1.0}, {3.0 / 4, 4.0 / 3}, rng);
  CHECK(box == std::array<int64_t, 4>{0, (1000 - 13) / 2, 10, 13});
}

TEST_CASE("RandomAugment: draws with replacement + p=0.5 per op + signed arguments + levels") {
  cb::RandomAugment aug{2, 5, {"ShearX", "Rotate", "Identity"}};
  std::mt19937_64 rng(11);
  std::map<size_t, int> counts;
  std::map<std::string, int> negative;
  const int trials = 4000;
  for (int i = 0; i < trials; ++i) {
    const auto ops = aug.draw(rng);
    REQUIRE(ops.size() <= 2);
    ++counts[ops.size()];
    for (const auto& op : ops) {
      if (op.name == "ShearX") CHECK(std::abs(op.value) == Approx(0.15));
      if (op.name == "Rotate") CHECK(std::abs(op.value) == Approx(15.0));
      if (op.value < 0) ++negative[op.name];
    }
  }
  // Binomial(2, 0.5): 1/4, 1/2, 1/4.
  CHECK(counts[0] == Approx(trials / 4).epsilon(0.15));
  CHECK(counts[1] == Approx(trials / 2).epsilon(0.1));
  CHECK(negative["ShearX"] > 0);
  CHECK(negative["Rotate"] > 0);
  CHECK(cb::RandomAugment::op_at_level("Posterize", 5, false).value == 2);
  CHECK(cb::RandomAugment::op_at_level("Solarize", 5, false).value == 128);
  CHECK(cb::RandomAugment::op_at_level("Brightness", 10, true).value == Approx(1.9));
  CHECK_THROWS_WITH(cb::RandomAugment::op_at_level("Blur", 5, false), Catch::Contains("Blur"));
  CHECK_THROWS_WITH(cb::randaug::apply(noise_image(4, 4, 0), {"Blur"}), Catch::Contains("unknown op"));
  CHECK_THROWS_AS(cb::randaug::equalize(torch::zeros({4, 4, 3})), cb::Error);
}

TEST_CASE("RandomAugment ops: hand-checked properties") {
  const auto img = noise_image(16, 20, 5);
  CHECK(torch::equal(cb::randaug::sharpness(img, 1.0), img));
  CHECK(torch::equal(cb::randaug::shear_x(img, 0.0, {128, 128, 128}), img));
  CHECK(torch::equal(cb::randaug::rotate(img, 0.0, {128, 128, 128}), img));
  // Whole-pixel translation: a shifted copy with the fill colour entering from the side.
  const auto moved = cb::randaug::translate_x(img, 3.0, {1, 2, 3});
  CHECK(torch::equal(moved.slice(1, 0, 17), img.slice(1, 3, 20)));
  CHECK(torch::equal(moved.slice(1, 17), torch::tensor({1, 2, 3}, torch::kUInt8).expand({16, 3, 3})));
  CHECK(torch::equal(cb::randaug::posterize(img, 2), img.bitwise_and(0xC0)));
  CHECK(torch::equal(cb::randaug::solarize(img, 0), 255 - img));
  CHECK(torch::equal(cb::randaug::brightness(img, 1.0), img));
  // AutoContrast on a channel whose minimum is 0 stretches it to [0, 255]; the uint8 `-low` quirk
  // saturates a channel whose minimum is above 0.
  auto ramp = torch::arange(0, 100, torch::kInt64).to(torch::kUInt8).view({10, 10, 1}).expand({10, 10, 3}).contiguous();
  ramp.select(2, 1).add_(50);
  const auto ac = cb::randaug::autocontrast(ramp);
  CHECK(ac.select(2, 0).max().item<int>() == 255);
  CHECK(ac.select(2, 0).min().item<int>() == 0);
  CHECK(ac.select(2, 1).min().item<int>() == 255);
  // Equalize of a constant image is the identity (step 0).
  const auto flat = torch::full({5, 5, 3}, 77, torch::kUInt8);
  CHECK(torch::equal(cb::randaug::equalize(flat), flat));
}

TEST_CASE("blip_image_train: registered under the original name + seeded draws + shapes") {
  auto p = cb::make_processor(yaml("name: blip_image_train\nimage_size: 24\nseed: 7\n"));
  REQUIRE(p.media);
  const auto img = noise_image(40, 60, 1);
  const auto a = p.media(img);
  CHECK(a.sizes() == torch::IntArrayRef{3, 24, 24});
  // The same seed gives the same sequence of draws; consecutive calls differ.
  auto q = cb::make_processor(yaml("name: blip_image_train\nimage_size: 24\nseed: 7\n"));
  CHECK(torch::equal(q.media(img), a));
  CHECK(!torch::equal(q.media(img), a));
  // Equivalent to the struct with an explicitly seeded generator.
  cb::BlipImageTrainProcessor direct;
  direct.image_size = 24;
  std::mt19937_64 rng(7);
  CHECK(torch::equal(direct(img, rng), a));
  CHECK_THROWS_AS(p.media(torch::zeros({4, 4})), cb::Error);
  CHECK_THROWS_AS(cb::make_processor(yaml("name: blip_image_train\nstd: [1, 2]\n")), cb::Error);
  // A crop box outside the image is refused with the numbers.
  cb::BlipImageTrainDraw bad{30, 0, 20, 10, false, {}};
  CHECK_THROWS_WITH(direct.crop(img, bad), Catch::Contains("outside"));
}
