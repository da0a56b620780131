// Golden `processors`, image and video parts: JPEG decoding, blip_image_train given the recorded
// draws, every RandomAugment op, and the valor VideoMapper frame path. Every parameter comes from
// the fixture's metadata.
#include <catch2/catch.hpp>

#include <cstdio>

#include "datasets/media/frame_sampling.h"
#include "datasets/media/image_decode.h"
#include "datasets/media/valor_video.h"
#include "datasets/processors/blip_image_train.h"
#include "datasets/processors/randaugment.h"
#include "tests/support/golden.h"

namespace {

using nlohmann::json;

cb::AugmentOp op_from(const json& j) {
  cb::AugmentOp op{j.at("op").get<std::string>()};
  const auto& args = j.at("args");
  if (!args.empty()) op.value = args[0].get<double>();
  if (args.size() > 1)
    for (int c = 0; c < 3; ++c) op.fill[size_t(c)] = args[1][c].get<uint8_t>();
  return op;
}

std::array<double, 3> triple(const json& j) { return {j[0].get<double>(), j[1].get<double>(), j[2].get<double>()}; }

// Exact or within the README's "±1 on a few pixels"; prints the count either way.
void check_u8(const torch::Tensor& out, const torch::Tensor& ref, const std::string& what) {
  REQUIRE(out.sizes() == ref.sizes());
  const auto diff = (out.to(torch::kInt32) - ref.to(torch::kInt32)).abs();
  const int64_t differing = diff.ne(0).sum().item<int64_t>(), max_diff = diff.max().item<int64_t>();
  std::printf("[golden] processors %s: %lld of %lld bytes differ, max |diff| %lld\n", what.c_str(),
              (long long)differing, (long long)ref.numel(), (long long)max_diff);
  CHECK(max_diff <= 1);
  CHECK(differing * 1000 <= ref.numel());  // "a few": at most 0.1% of the bytes
}

torch::Tensor bytes_of(const torch::Tensor& t) { return t.contiguous(); }

}  // namespace

TEST_CASE("golden processors (image): JPEG frames decode exactly as PIL") {
  cb::test::Fixture f("processors");
  cb::ImageDecoder decoder;
  int frames = 0;
  for (int k = 0; f.has("input.video.frame" + std::to_string(k) + "_jpeg"); ++k, ++frames) {
    const auto tag = "frame" + std::to_string(k);
    const auto jpeg = bytes_of(f.get("input.video." + tag + "_jpeg"));
    const auto rgb = decoder.decode_bytes(jpeg.data_ptr<uint8_t>(), size_t(jpeg.numel()), tag);
    cb::test::check_equal(rgb, f.get("input.video." + tag + "_rgb"), "video." + tag + " JPEG decode");
  }
  REQUIRE(frames > 0);
}

TEST_CASE("golden processors (image): every RandomAugment op at each recorded level") {
  cb::test::Fixture f("processors");
  const auto patch = f.get("input.randaug_patch");
  const auto ops = f.meta("randaugment_ops");
  REQUIRE(!ops.empty());
  for (const auto& j : ops) {
    const auto name = "randaug." + j.at("op").get<std::string>() + ".level" + std::to_string(j.at("level").get<int>());
    const auto out = cb::randaug::apply(patch, op_from(j));
    const auto ref = f.get("output." + name);
    check_u8(out, ref, name);
    // The level -> argument mapping of arg_dict, with the recorded sign.
    const auto op = op_from(j);
    const auto derived = cb::RandomAugment::op_at_level(op.name, j.at("level").get<int64_t>(), op.value < 0);
    CHECK(derived.value == Approx(op.value).margin(1e-12));
  }
}

TEST_CASE("golden processors (image): blip_image_train with the recorded draws") {
  cb::test::Fixture f("processors");
  const auto cfg = f.config().at("blip_image_train");
  cb::BlipImageTrainProcessor p;
  p.image_size = cfg.at("image_size").get<int64_t>();
  p.min_scale = cfg.at("min_scale").get<double>();
  p.max_scale = cfg.at("max_scale").get<double>();
  p.augment.n = cfg.at("randaugment").at("N").get<int64_t>();
  p.augment.level = cfg.at("randaugment").at("M").get<int64_t>();
  const auto draws = f.meta("train");
  REQUIRE(!draws.empty());
  for (const auto& t : draws) {
    const auto tag = std::to_string(t.at("photo").get<int>());
    const auto rgb = f.get("input.photo" + tag + ".rgb");
    const auto box = t.at("crop_top_left_h_w");
    cb::BlipImageTrainDraw d{box[0].get<int64_t>(), box[1].get<int64_t>(), box[2].get<int64_t>(), box[3].get<int64_t>(),
                             t.at("hflip").get<bool>()};
    for (const auto& op : t.at("ops")) d.ops.push_back(op_from(op));
    check_u8(p.crop(rgb, d), f.get("output.train" + tag + ".crop_u8"), "train" + tag + ".crop_u8");
    const auto augmented = p.augmented(rgb, d);
    check_u8(augmented, f.get("output.train" + tag + ".augmented_u8"), "train" + tag + ".augmented_u8");
    // The full output is ToTensor + Normalize of that image.
    const auto full = p(rgb, d);
    CHECK(full.sizes() == torch::IntArrayRef{3, p.image_size, p.image_size});
    cb::test::check_close(full, cb::to_normalized_tensor(f.get("output.train" + tag + ".augmented_u8"), p.mean, p.std),
                          cb::test::tol::image, "train" + tag + " tensor (from the reference image)");
  }
}

TEST_CASE("golden processors (video): valor VideoMapper frame path") {
  cb::test::Fixture f("processors");
  const auto cfg = f.config().at("video_mapper");
  const auto video = f.meta("video");
  cb::VideoMapperOptions o;
  o.resolution = cfg.at("video_resolution").get<int64_t>();
  o.sample_num = cfg.at("sample_num").get<int64_t>();
  o.training = cfg.at("training").get<bool>();
  o.mean = triple(cfg.at("mean"));
  o.std = triple(cfg.at("std"));

  // The picked frames: split the sorted directory listing into sample_num groups, middle of each.
  const auto names = video.at("frames_in_dir").get<std::vector<std::string>>();
  std::mt19937_64 rng(0);
  const auto picks = cb::sample_indices(int64_t(names.size()), o.sample_num, o.training, rng);
  const auto expected = video.at("picked").get<std::vector<std::string>>();
  REQUIRE(picks.size() == expected.size());
  std::vector<torch::Tensor> from_rgb, from_jpeg;
  cb::ImageDecoder decoder;
  for (size_t i = 0; i < picks.size(); ++i) {
    CHECK(names[size_t(picks[i])] == expected[i]);
    // input.video.frame{k} are the picked frames in order.
    const auto tag = "input.video.frame" + std::to_string(i);
    from_rgb.push_back(f.get(tag + "_rgb"));
    const auto jpeg = bytes_of(f.get(tag + "_jpeg"));
    from_jpeg.push_back(decoder.decode_bytes(jpeg.data_ptr<uint8_t>(), size_t(jpeg.numel()), expected[i]));
  }
  const auto ref = f.get("output.video.pixels");
  cb::test::check_close(cb::frames_to_pixels(from_rgb, o), ref, cb::test::tol::image, "video.pixels (recorded RGB)");
  cb::test::check_close(cb::frames_to_pixels(from_jpeg, o), ref, cb::test::tol::image,
                        "video.pixels (our JPEG decode)");
}
