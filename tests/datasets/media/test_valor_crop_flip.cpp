// The valor VideoMapper's video_transforms 'crop_flip' against torchvision's tensor ops as PyTorch
// computes them (Debian's python3-torch through tests/support/torch_peer.py), and the data options
// key that selects it.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>

#include "datasets/media/valor_video.h"
#include "datasets/valor/data_options.h"
#include "framework/error.h"
#include "tests/support/make_media.h"
#include "tests/support/torch_peer.h"

using namespace cb;
using Catch::Matchers::Contains;

namespace {

// The peer's [n, 3, S, S] for `frames` ([n, H, W, 3] uint8) under `o`, the training draw `d`.
torch::Tensor peer_pixels(const torch::Tensor& frames, const VideoMapperOptions& o, const CropFlipDraw& d) {
  test::TempDir dir;
  const auto u8 = frames.contiguous().flatten();
  nlohmann::json spec{{"frames", std::vector<int64_t>(u8.data_ptr<uint8_t>(), u8.data_ptr<uint8_t>() + u8.numel())},
                      {"shape", frames.sizes().vec()},
                      {"training", o.training},
                      {"box", {d.top, d.left, d.height, d.width}},
                      {"hflip", d.hflip},
                      {"size", o.resolution},
                      {"mean", o.mean},
                      {"std", o.std}};
  std::ofstream(dir.path / "spec.json") << spec.dump();
  const auto out = test::torch_peer({"crop-flip", (dir.path / "spec.json").string()});
  const auto values = out.at("values").get<std::vector<double>>();
  return torch::tensor(values, torch::kFloat64).to(torch::kFloat32).view(out.at("shape").get<std::vector<int64_t>>());
}

}  // namespace

TEST_CASE("valor crop_flip: one crop box and flip per item, then torchvision's tensor resize, as PyTorch computes") {
  if (!test::torch_peer_available()) {
    WARN("skipped: /usr/bin/python3 cannot import torch (apt-get install python3-torch)");
    return;
  }
  const auto hw = GENERATE(std::vector<int64_t>{30, 44}, std::vector<int64_t>{41, 23}, std::vector<int64_t>{16, 16});
  const int64_t n = 3;
  std::vector<torch::Tensor> frames;
  for (int64_t t = 0; t < n; ++t) frames.push_back(test::pattern_frame(t, hw[0], hw[1]));
  VideoMapperOptions o;
  o.resolution = 20;
  o.sample_num = n;
  o.crop_flip = true;
  o.training = GENERATE(true, false);
  INFO(hw[0] << "x" << hw[1] << (o.training ? ", training" : ", eval"));

  for (uint64_t seed = 0; seed < 4; ++seed) {
    std::mt19937_64 rng(seed), same(seed);
    const auto ours = frames_to_pixels(frames, o, &rng);
    const auto d = o.training ? draw_crop_flip(hw[0], hw[1], same) : CropFlipDraw{};
    REQUIRE(ours.sizes() == torch::IntArrayRef{n, 3, 20, 20});
    CHECK(torch::equal(ours, peer_pixels(torch::stack(frames), o, d)));
    if (o.training) {
      // ratio (1, 1): a square box of 80-100 % of the area (the central square when none fits)
      CHECK(d.height == d.width);
      CHECK(d.top + d.height <= hw[0]);
      CHECK(d.left + d.width <= hw[1]);
    } else {
      break;  // eval draws nothing
    }
  }
}

TEST_CASE("valor crop_flip: the data options key, and a generator required in training") {
  test::TempDir dir;
  const auto options = [&](const std::string& transforms) {
    std::ofstream(dir.path / "data.json") << R"({"video_resolution": 16, "video_encoder_type": "evaclip_vit_g",
      "data_cfg": {"train": [{"datasets": [{"name": "cc", "txt": "a.json", "video": "images", "datatype": "image",
      "video_transforms": ")" << transforms
                                          << R"("}], "task": "ti", "data_format": "frame", "batch_size": 2,
      "n_workers": 1, "steps": 1}]}})";
    return DataOptions::load(dir.path / "data.json");
  };
  const auto o = options("crop_flip");
  CHECK(o.video_options(o.train[0], o.train[0].datasets[0]).crop_flip);
  CHECK_FALSE(options("none").train[0].datasets[0].crop_flip);
  CHECK_THROWS_WITH(options("crop"),
                    Contains("data.json") && Contains("video_transforms must be 'none' or 'crop_flip'"));

  VideoMapperOptions v;
  v.crop_flip = true;
  v.training = true;
  CHECK_THROWS_WITH(frames_to_pixels({test::pattern_frame(0, 8, 8)}, v), Contains("random generator"));
}
