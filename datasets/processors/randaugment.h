// RandomAugment of the original (chatbridge/processors/randaugment.py, OpenCV/numpy based), with the
// OpenCV and numpy arithmetic reproduced exactly: cv2.warpAffine's fixed-point bilinear mapping,
// cv2.filter2D in float32, numpy's float32/float64 lookup tables truncated by astype(uint8), and the
// original's quirks (AutoContrast's wrapped uint8 `-low`, Sharpness 1.0 returning its input, Contrast's
// BGR weights on RGB data). Images are [H, W, 3] uint8 RGB tensors.
#pragma once
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace cb {

// One drawn op: the original's `func_dict[name](img, *arg_dict[name](level))`. `value` is the op's
// level-derived argument (factor, degrees, pixels, bits, threshold; unused by Identity, AutoContrast
// and Equalize); `fill` the border colour of the geometric ops.
struct AugmentOp {
  std::string name;
  double value = 0;
  std::array<uint8_t, 3> fill{128, 128, 128};
};

// The op functions (func_dict).
namespace randaug {
torch::Tensor autocontrast(const torch::Tensor& img);
torch::Tensor equalize(const torch::Tensor& img);
torch::Tensor rotate(const torch::Tensor& img, double degrees, std::array<uint8_t, 3> fill);
torch::Tensor solarize(const torch::Tensor& img, int64_t threshold);
torch::Tensor color(const torch::Tensor& img, double factor);
torch::Tensor contrast(const torch::Tensor& img, double factor);
torch::Tensor brightness(const torch::Tensor& img, double factor);
torch::Tensor sharpness(const torch::Tensor& img, double factor);
torch::Tensor shear_x(const torch::Tensor& img, double factor, std::array<uint8_t, 3> fill);
torch::Tensor shear_y(const torch::Tensor& img, double factor, std::array<uint8_t, 3> fill);
torch::Tensor translate_x(const torch::Tensor& img, double offset, std::array<uint8_t, 3> fill);
torch::Tensor translate_y(const torch::Tensor& img, double offset, std::array<uint8_t, 3> fill);
torch::Tensor posterize(const torch::Tensor& img, int64_t bits);

// cv2.warpAffine(img, M, (W, H), flags=INTER_LINEAR, borderMode=BORDER_CONSTANT, borderValue=fill)
// with M the forward 2x3 matrix (row-major), inverted and mapped in OpenCV's fixed point.
torch::Tensor warp_affine(const torch::Tensor& img, const std::array<double, 6>& forward, std::array<uint8_t, 3> fill);

// Applies `op` by name; throws cb::Error naming an unknown op.
torch::Tensor apply(const torch::Tensor& img, const AugmentOp& op);
// Every op name the original knows (func_dict order).
const std::vector<std::string>& op_names();
}  // namespace randaug

// RandomAugment(N, M, isPIL, augs): N ops drawn with replacement, each applied with probability 0.5,
// arguments from level M (arg_dict: signs of shear/translate/rotate drawn at random).
struct RandomAugment {
  int64_t n = 2;
  int64_t level = 10;
  std::vector<std::string> augs = randaug::op_names();

  // The ops that will be applied, in order, with their arguments (the draws of get_random_ops and
  // __call__, from `rng`).
  std::vector<AugmentOp> draw(std::mt19937_64& rng) const;
  // The op's arguments at `level` with the sign already chosen (`negative` only affects signed ops).
  static AugmentOp op_at_level(const std::string& name, int64_t level, bool negative);
  // arg_dict[name](level) as called: op_at_level with the sign drawn from `rng` where the op has one.
  static AugmentOp draw_op(const std::string& name, int64_t level, std::mt19937_64& rng);
  static torch::Tensor apply(torch::Tensor img, const std::vector<AugmentOp>& ops);
};

}  // namespace cb
