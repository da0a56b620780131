// LAVIS image processors of the original (chatbridge/processors/blip_processors.py).
#pragma once
#include <torch/torch.h>

#include <array>
#include <cstdint>

#include "framework/config.h"

namespace cb {

// CLIP normalisation constants, the default of every BLIP image processor.
inline constexpr std::array<double, 3> kClipMean{0.48145466, 0.4578275, 0.40821073};
inline constexpr std::array<double, 3> kClipStd{0.26862954, 0.26130258, 0.27577711};

// `blip_image_eval`: PIL Resize((s, s), BICUBIC) -> ToTensor -> Normalize(mean, std).
struct BlipImageEvalProcessor {
  int64_t image_size = 224;
  std::array<double, 3> mean = kClipMean, std = kClipStd;
  // rgb: [H, W, 3] uint8 (a decoded RGB image) -> [3, s, s] float32.
  torch::Tensor operator()(const torch::Tensor& rgb) const;
};

// torchvision ToTensor + Normalize on an [H, W, 3] uint8 image (or ToTensorVideo + NormalizeVideo on
// [n, H, W, 3] frames): float32 x/255, then (x - mean) / std per channel, in float32 like the original
// -> [3, H, W] (or [3, n, H, W]).
torch::Tensor to_normalized_tensor(const torch::Tensor& rgb, const std::array<double, 3>& mean,
                                   const std::array<double, 3>& std);

// A per-channel triple (mean/std) from `cfg.<key>`, `fallback` when absent; exactly 3 values.
std::array<double, 3> config_triple(const Config& cfg, const char* key, const std::array<double, 3>& fallback);

}  // namespace cb
