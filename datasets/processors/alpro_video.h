// `alpro_video_eval` of the original (AlproVideoEvalProcessor, used by the demo): a video file read
// with the frames resized by the decoder to image_size x image_size, n = min(n_frms, length) frames at
// np.arange(0, length, length / n).astype(int), then /255 and Normalize -> [3, n, s, s]. When the path
// is a frame directory: the middle frame of each of min(n_frms, #files) groups, PIL bicubic resize.
// With n_frms set, a clip of fewer frames is a cb::Error (it could not share a batch).
#pragma once
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <vector>

#include "datasets/processors/image_processors.h"

namespace cb {

// np.arange(0, length, length / n).astype(int) with n = min(n_frms, length) (numpy's length and values).
std::vector<int64_t> uniform_frame_indices(int64_t length, int64_t n_frms);

struct AlproVideoEvalProcessor {
  int64_t image_size = 256;
  int64_t n_frms = std::numeric_limits<int64_t>::max();
  std::array<double, 3> mean = kClipMean, std = kClipStd;
  torch::Tensor operator()(const std::filesystem::path& path) const;  // [3, n, s, s] float32
};

}  // namespace cb
