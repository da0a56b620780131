// alpro_video_train: the draws (head/tail frames, one crop box, one flip, two distinct ops whose signs
// are drawn per frame), the steps after decoding against PyTorch and numpy themselves (Debian's
// python3-torch through tests/support/torch_peer.py), and the registered processor on an MP4 file.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "datasets/processors/alpro_video.h"
#include "datasets/processors/processor.h"
#include "framework/config_node.h"
#include "framework/error.h"
#include "tests/support/make_media.h"
#include "tests/support/torch_peer.h"

using namespace cb;
using Catch::Matchers::Contains;

namespace {

Processor processor(const std::string& yaml) {
  return make_processor(Config(parse_yaml("name: alpro_video_train\n" + yaml, "p.yaml"), "p.yaml"));
}

}  // namespace

TEST_CASE("alpro_video_train: head/tail frames, one crop and flip per clip, op signs per frame") {
  std::mt19937_64 rng(7);
  for (int64_t length : {9, 10, 57}) {
    for (int64_t n : {2, 4, 7, 100}) {
      INFO("length " << length << ", n_frms " << n);
      const auto idx = headtail_frame_indices(length, n, rng);
      const int64_t half = std::min(n, length) / 2;  // odd counts lose a frame, as the original's
      REQUIRE(int64_t(idx.size()) == 2 * half);
      CHECK(std::is_sorted(idx.begin(), idx.begin() + half));
      CHECK(std::is_sorted(idx.begin() + half, idx.end()));
      CHECK(std::set<int64_t>(idx.begin(), idx.end()).size() == idx.size());
      for (int64_t i = 0; i < half; ++i) {
        CHECK(idx[size_t(i)] < length / 2);
        CHECK(idx[size_t(half + i)] >= length / 2);
        CHECK(idx[size_t(half + i)] < length);
      }
    }
  }
  CHECK(headtail_frame_indices(1, 4, rng).empty());  // a one-frame clip: the processor refuses it
  // Every subset of the head can come out: 2 of 4 frames, 6 subsets.
  std::set<std::vector<int64_t>> seen;
  for (int i = 0; i < 400; ++i) seen.insert(headtail_frame_indices(8, 4, rng));
  CHECK(seen.size() == 36);  // 6 head subsets x 6 tail subsets

  AlproVideoTrainProcessor p;
  p.image_size = 32;
  p.augs = {"ShearX", "Rotate", "TranslateY"};
  const auto d = p.draw(40, rng);
  REQUIRE(d.frames.size() == 40);
  CHECK(d.top + d.height <= 32);
  CHECK(d.left + d.width <= 32);
  REQUIRE(d.ops.size() == 40);
  std::set<double> values_of_first;
  for (const auto& frame_ops : d.ops) {
    REQUIRE(frame_ops.size() == 2);
    CHECK(frame_ops[0].name != frame_ops[1].name);  // drawn without replacement
    CHECK(frame_ops[0].name == d.ops[0][0].name);   // the same ops for the whole clip
    CHECK(frame_ops[1].name == d.ops[0][1].name);
    CHECK(std::abs(frame_ops[0].value) == std::abs(d.ops[0][0].value));
    values_of_first.insert(frame_ops[0].value);
  }
  CHECK(values_of_first.size() == 2);  // both signs among the 40 frames
}

TEST_CASE(
    "alpro_video_train, given its draws: crop, bicubic resize, flip and uint8 cast as torch and numpy compute them") {
  if (!test::torch_peer_available()) {
    WARN("skipped: /usr/bin/python3 cannot import torch (apt-get install python3-torch)");
    return;
  }
  // Sharp edges, so that bicubic overshoots below 0 and above 255 and numpy's wrapping cast matters.
  const int64_t n = 3, s = 20;
  auto frames = (torch::rand({n, s, s, 3}, torch::TensorOptions().dtype(torch::kFloat32)) > 0.5)
                    .to(torch::kUInt8)
                    .mul(255)
                    .contiguous();
  AlproVideoTrainProcessor p;
  p.image_size = s;
  const auto box =
      GENERATE(Catch::Generators::values<std::vector<int64_t>>({{3, 2, 11, 14}, {0, 0, 20, 20}, {5, 9, 13, 10}}));
  const bool hflip = GENERATE(false, true);
  AlproVideoTrainDraw d{{0, 1, 2}, box[0], box[1], box[2], box[3], hflip, {{}, {}, {}}};
  const auto ours = p.transform(frames, d);
  REQUIRE(ours.sizes() == torch::IntArrayRef{3, n, s, s});

  test::TempDir dir;
  const auto u8 = frames.flatten();
  nlohmann::json spec{{"frames", std::vector<int64_t>(u8.data_ptr<uint8_t>(), u8.data_ptr<uint8_t>() + u8.numel())},
                      {"shape", {n, s, s, 3}},
                      {"box", box},
                      {"hflip", hflip},
                      {"size", s},
                      {"mean", p.mean},
                      {"std", p.std}};
  std::ofstream(dir.path / "spec.json") << spec.dump();
  const auto theirs = test::torch_peer({"alpro-clip", (dir.path / "spec.json").string()});
  if (box[2] != s || box[3] != s) CHECK(theirs.at("wrapped").get<int64_t>() > 0);  // the cast was exercised
  const auto values = theirs.at("values").get<std::vector<double>>();
  REQUIRE(int64_t(values.size()) == ours.numel());
  const auto flat = ours.flatten();
  const float* o = flat.data_ptr<float>();
  int64_t differ = 0;
  for (size_t i = 0; i < values.size(); ++i) differ += float(values[i]) != o[i];
  CHECK(differ == 0);

  // The ops then act on each frame with that frame's own arguments.
  d.ops = {{RandomAugment::op_at_level("Rotate", 5, false)},
           {RandomAugment::op_at_level("Rotate", 5, true)},
           {RandomAugment::op_at_level("Brightness", 5, false)}};
  const auto augmented = p.transform(frames, d);
  CHECK_FALSE(torch::equal(augmented, ours));
  const auto per_frame = [&](int64_t t) {
    AlproVideoTrainDraw one{{0}, box[0], box[1], box[2], box[3], hflip, {d.ops[size_t(t)]}};
    return p.transform(frames.slice(0, t, t + 1), one);
  };
  for (int64_t t = 0; t < n; ++t) CHECK(torch::equal(augmented.slice(1, t, t + 1), per_frame(t)));
}

TEST_CASE("alpro_video_train reads an MP4: shapes, seeded draws, and clear errors") {
  test::TempDir dir;
  const auto file = dir.path / "clip.mp4";
  test::write_mp4(file, 24, 48, 64, 6, 12);
  auto a = processor("image_size: 32\nn_frms: 4\nseed: 3\n");
  REQUIRE(a.file);
  const auto x = a.file(file.string());
  CHECK(x.sizes() == torch::IntArrayRef{3, 4, 32, 32});
  CHECK(torch::isfinite(x).all().item<bool>());
  // The same seed draws the same clips; the next call draws another.
  auto b = processor("image_size: 32\nn_frms: 4\nseed: 3\n");
  CHECK(torch::equal(b.file(file.string()), x));
  CHECK_FALSE(torch::equal(a.file(file.string()), x));
  // An odd n_frms takes one frame fewer, as the original's head/tail sampling.
  CHECK(processor("image_size: 16\nn_frms: 5\n").file(file.string()).size(1) == 4);

  CHECK_THROWS_WITH(processor("n_frms: 30\n").file(file.string()),
                    Contains("clip.mp4") && Contains("24 frame(s), fewer than n_frms = 30"));
  CHECK_THROWS_WITH(processor("").file(dir.path.string()), Contains("reads video files"));
  CHECK_THROWS_WITH(processor("n_frms: 1\n"), Contains("n_frms 1 takes no frame"));
  CHECK_THROWS_WITH(processor("min_scale: 0\n"), Contains("0 < min_scale <= max_scale <= 1"));
  CHECK_THROWS_WITH(processor("imagesize: 32\n"), Contains("imagesize"));
}
