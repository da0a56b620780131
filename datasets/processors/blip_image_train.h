// `blip_image_train` of the original (BlipImageTrainProcessor): RandomResizedCrop(s, scale
// (min_scale, max_scale), BICUBIC) -> RandomHorizontalFlip -> RandomAugment(2, 5, isPIL, 10 ops)
// -> ToTensor -> Normalize. The random draws are a separate step (`draw`) so that given parameters
// (e.g. a golden fixture's) reproduce the original's output exactly.
#pragma once
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <random>
#include <vector>

#include "datasets/processors/image_processors.h"
#include "datasets/processors/randaugment.h"

namespace cb {

struct BlipImageTrainDraw {
  int64_t top = 0, left = 0, height = 0, width = 0;  // the crop box (RandomResizedCrop.get_params)
  bool hflip = false;
  std::vector<AugmentOp> ops = {};  // the RandomAugment ops actually applied, in order
};

// Python's round() on a non-negative double: half to even.
int64_t py_round(double v);

// torchvision RandomResizedCrop.get_params(img, scale, ratio) with `rng`: up to 10 tries of a random
// area and log-uniform aspect ratio, else the central crop clamped to the ratio range.
// -> {top, left, height, width}.
std::array<int64_t, 4> random_resized_crop_params(int64_t height, int64_t width, std::array<double, 2> scale,
                                                  std::array<double, 2> ratio, std::mt19937_64& rng);

struct BlipImageTrainProcessor {
  int64_t image_size = 384;
  double min_scale = 0.5, max_scale = 1.0;
  std::array<double, 3> mean = kClipMean, std = kClipStd;
  RandomAugment augment{2,
                        5,
                        {"Identity", "AutoContrast", "Brightness", "Sharpness", "Equalize", "ShearX", "ShearY",
                         "TranslateX", "TranslateY", "Rotate"}};

  // The draws of one call for an image of height x width, in the original's order.
  BlipImageTrainDraw draw(int64_t height, int64_t width, std::mt19937_64& rng) const;
  // [H, W, 3] uint8 -> the crop resized to [s, s, 3] uint8 (PIL crop + BICUBIC resize).
  torch::Tensor crop(const torch::Tensor& rgb, const BlipImageTrainDraw& d) const;
  // crop -> flip -> RandomAugment: [s, s, 3] uint8 (the image ToTensor receives).
  torch::Tensor augmented(const torch::Tensor& rgb, const BlipImageTrainDraw& d) const;
  // The full output [3, s, s] float32.
  torch::Tensor operator()(const torch::Tensor& rgb, const BlipImageTrainDraw& d) const;
  torch::Tensor operator()(const torch::Tensor& rgb, std::mt19937_64& rng) const;
};

}  // namespace cb
