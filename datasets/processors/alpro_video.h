// The ALPRO video processors of the original (LAVIS's alpro_processors.py), which read a video file with
// the frames resized by the decoder to image_size x image_size (decord's VideoReader(width, height)).
//
// `alpro_video_eval` (AlproVideoEvalProcessor, used by the demo): n = min(n_frms, length) frames at
// np.arange(0, length, length / n).astype(int), then /255 and Normalize -> [3, n, s, s]. When the path
// is a frame directory: the middle frame of each of min(n_frms, #files) groups, PIL bicubic resize.
//
// `alpro_video_train` (AlproVideoTrainProcessor, the LAVIS video QA/retrieval training processor):
// "headtail" sampling (n // 2 random frames of the first half, n // 2 of the second, each sorted), the
// float clip [3, n, s, s] cropped by one RandomResizedCrop box (scale (min_scale, max_scale), ratio
// (3/4, 4/3)) and resized back to s x s with torch's bicubic interpolate (align_corners false, no
// antialias), flipped with probability 0.5, then VideoRandomAugment(2 ops, level 5): the frames cast to
// uint8 as numpy's astype does (truncated, wrapping: bicubic overshoot -3 becomes 253), the same two
// distinct ops applied to every frame, but the sign of a shear, translation or rotation drawn per frame;
// then /255 and Normalize. An odd n_frms gives n_frms - 1 frames, as the original's sampling does.
//
// With n_frms set, a clip of fewer frames is a cb::Error (it could not share a batch).
#pragma once
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "datasets/processors/image_processors.h"
#include "datasets/processors/randaugment.h"

namespace cb {

// np.arange(0, length, length / n).astype(int) with n = min(n_frms, length) (numpy's length and values).
std::vector<int64_t> uniform_frame_indices(int64_t length, int64_t n_frms);

struct AlproVideoEvalProcessor {
  int64_t image_size = 256;
  int64_t n_frms = std::numeric_limits<int64_t>::max();
  std::array<double, 3> mean = kClipMean, std = kClipStd;
  torch::Tensor operator()(const std::filesystem::path& path) const;  // [3, n, s, s] float32
};

// The random draws of one alpro_video_train call: given, they reproduce the original's output exactly.
struct AlproVideoTrainDraw {
  std::vector<int64_t> frames = {};                  // the clip's frame indices (headtail)
  int64_t top = 0, left = 0, height = 0, width = 0;  // the crop box on the s x s frames
  bool hflip = false;
  std::vector<std::vector<AugmentOp>> ops = {};  // per frame, the ops in order (signs differ by frame)
};

// load_video's "headtail": sorted(sample(range(length // 2), n // 2)) + sorted(sample(range(length // 2,
// length), n // 2)) with n = min(n_frms, length).
std::vector<int64_t> headtail_frame_indices(int64_t length, int64_t n_frms, std::mt19937_64& rng);

struct AlproVideoTrainProcessor {
  int64_t image_size = 384;
  int64_t n_frms = std::numeric_limits<int64_t>::max();
  double min_scale = 0.5, max_scale = 1.0;
  std::array<double, 3> mean = kClipMean, std = kClipStd;
  int64_t n_ops = 2, level = 5;  // VideoRandomAugment(2, 5, augs)
  std::vector<std::string> augs = {"Identity", "AutoContrast", "Brightness", "Sharpness",  "Equalize",
                                   "ShearX",   "ShearY",       "TranslateX", "TranslateY", "Rotate"};

  // The draws for a clip of `length` frames, in the original's order: frames, crop box, flip, ops, signs.
  AlproVideoTrainDraw draw(int64_t length, std::mt19937_64& rng) const;
  // frames: [n, s, s, 3] uint8 as decoded (d.frames already picked) -> [3, n, s, s] float32.
  torch::Tensor transform(const torch::Tensor& frames, const AlproVideoTrainDraw& d) const;
};

}  // namespace cb
