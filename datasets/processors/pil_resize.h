// PIL's Image.resize((w, h), BICUBIC) on 8-bit images, reproduced exactly: a separable convolution
// whose kernel widens with the downscale factor (antialiasing), horizontal pass then vertical pass,
// each with PIL's 22-bit fixed-point coefficients and rounding to uint8 in between (libImaging/Resample.c).
#pragma once
#include <torch/torch.h>

namespace cb {

// rgb: [H, W, C] uint8 (any channel count) -> [out_h, out_w, C] uint8.
torch::Tensor pil_resize_bicubic(const torch::Tensor& image, int64_t out_h, int64_t out_w);

}  // namespace cb
