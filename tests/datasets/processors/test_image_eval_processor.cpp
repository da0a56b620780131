#include <catch2/catch.hpp>

#include "datasets/processors/image_processors.h"
#include "datasets/processors/pil_resize.h"
#include "datasets/processors/processor.h"
#include "framework/error.h"
#include "tests/support/golden.h"

namespace {

std::array<double, 3> triple(const nlohmann::json& j) {
  REQUIRE(j.size() == 3);
  return {j[0].get<double>(), j[1].get<double>(), j[2].get<double>()};
}

cb::BlipImageEvalProcessor processor_from(const nlohmann::json& c) {
  return {c.at("image_size").get<int64_t>(), triple(c.at("mean")), triple(c.at("std"))};
}

}  // namespace

TEST_CASE("golden processors (image): blip_image_eval PIL bicubic resize and full output") {
  cb::test::Fixture f("processors");
  const auto eval = processor_from(f.config().at("blip_image_eval"));
  const auto eval_small = processor_from(f.config().at("blip_image_eval_small"));
  int photos = 0;
  for (int i = 0; f.has("input.photo" + std::to_string(i) + ".rgb"); ++i, ++photos) {
    const auto tag = std::to_string(i);
    const auto rgb = f.get("input.photo" + tag + ".rgb");
    if (f.has("output.eval" + tag + ".resized_u8")) {
      const auto resized = cb::pil_resize_bicubic(rgb, eval.image_size, eval.image_size);
      const auto ref = f.get("output.eval" + tag + ".resized_u8");
      cb::test::check_equal(resized, ref, "eval" + tag + ".resized_u8");
      std::printf("[golden] processors eval%s.resized_u8: %lld of %lld bytes differ\n", tag.c_str(),
                  (long long)resized.ne(ref).sum().item<int64_t>(), (long long)ref.numel());
    }
    if (f.has("output.eval_small" + tag + ".tensor"))
      cb::test::check_close(eval_small(rgb), f.get("output.eval_small" + tag + ".tensor"), cb::test::tol::image,
                            "eval_small" + tag + ".tensor");
  }
  REQUIRE(photos > 0);
}

TEST_CASE("pil_resize_bicubic: identity, constant images, argument checks") {
  auto img = torch::randint(0, 256, {5, 7, 3}, torch::kUInt8);
  CHECK(torch::equal(cb::pil_resize_bicubic(img, 5, 7), img));
  // Weights sum to 1 in fixed point: a constant image stays constant whatever the scale.
  auto flat = torch::full({9, 13, 3}, 200, torch::kUInt8);
  for (auto [h, w] : {std::pair{4, 5}, std::pair{20, 31}, std::pair{1, 1}, std::pair{9, 3}})
    CHECK(torch::equal(cb::pil_resize_bicubic(flat, h, w), torch::full({h, w, 3}, 200, torch::kUInt8)));
  // Bicubic overshoot is clipped to [0, 255].
  auto edge = torch::zeros({1, 8, 1}, torch::kUInt8);
  edge.slice(1, 4).fill_(255);
  auto up = cb::pil_resize_bicubic(edge, 1, 32);
  CHECK(up.min().item<int>() == 0);
  CHECK(up.max().item<int>() == 255);
  CHECK_THROWS_AS(cb::pil_resize_bicubic(torch::zeros({4, 4, 3}), 2, 2), cb::Error);
  CHECK_THROWS_AS(cb::pil_resize_bicubic(img, 0, 2), cb::Error);
}

TEST_CASE("blip_image_eval: registered, from_config defaults") {
  auto cfg = cb::Config(cb::parse_yaml("name: blip_image_eval\nimage_size: 8\n", "p.yaml"), "p.yaml");
  auto p = cb::make_processor(cfg);
  REQUIRE(p.media);
  auto out = p.media(torch::full({4, 6, 3}, 255, torch::kUInt8));
  REQUIRE(out.sizes() == torch::IntArrayRef({3, 8, 8}));
  CHECK(out[0][0][0].item<float>() == Approx((1.0 - cb::kClipMean[0]) / cb::kClipStd[0]).epsilon(1e-6));
  auto bad = cb::Config(cb::parse_yaml("name: blip_image_eval\nmean: [0.5]\n", "p.yaml"), "p.yaml");
  CHECK_THROWS_AS(cb::make_processor(bad), cb::Error);
  // A key the processor does not read (the original ignores it, keeping the default size).
  auto typo = cb::Config(cb::parse_yaml("name: blip_image_eval\nimagesize: 8\n", "p.yaml"), "p.yaml");
  CHECK_THROWS_WITH(cb::make_processor(typo), Catch::StartsWith("imagesize in p.yaml (line 2") &&
                                                  Catch::Contains("not a key of processor 'blip_image_eval'") &&
                                                  Catch::Contains("did you mean 'image_size'?"));
  auto text = cb::Config(cb::parse_yaml("name: blip_caption\nprompt: 'a '\nmax_word: 3\n", "t.yaml"), "t.yaml");
  CHECK_THROWS_WITH(cb::make_processor(text), Catch::Contains("did you mean 'max_words'?"));
}
