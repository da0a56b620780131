#include "datasets/processors/blip_image_train.h"

#include <cmath>
#include <memory>

#include "datasets/processors/pil_resize.h"
#include "datasets/processors/processor.h"
#include "framework/error.h"

namespace cb {

namespace {

void check_rgb(const torch::Tensor& rgb) {
  if (rgb.scalar_type() != torch::kUInt8 || rgb.dim() != 3 || rgb.size(2) != 3)
    fail("blip_image_train: expected an [H, W, 3] uint8 RGB image, got {}", c10::str(rgb.sizes()));
}

}  // namespace

int64_t py_round(double v) { return int64_t(std::nearbyint(v)); }

std::array<int64_t, 4> random_resized_crop_params(int64_t height, int64_t width, std::array<double, 2> scale,
                                                  std::array<double, 2> ratio, std::mt19937_64& rng) {
  const double area = double(height * width);
  const double log_lo = std::log(ratio[0]), log_hi = std::log(ratio[1]);
  std::uniform_real_distribution<double> area_frac(scale[0], scale[1]), log_ratio(log_lo, log_hi);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * area_frac(rng);
    const double aspect = std::exp(log_ratio(rng));
    const int64_t w = py_round(std::sqrt(target_area * aspect));
    const int64_t h = py_round(std::sqrt(target_area / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const int64_t top = std::uniform_int_distribution<int64_t>(0, height - h)(rng);
      const int64_t left = std::uniform_int_distribution<int64_t>(0, width - w)(rng);
      return {top, left, h, w};
    }
  }
  // Fallback: the central crop with the aspect ratio clamped into [ratio[0], ratio[1]].
  const double in_ratio = double(width) / double(height);
  int64_t w = width, h = height;
  if (in_ratio < ratio[0]) h = py_round(double(w) / ratio[0]);
  else if (in_ratio > ratio[1]) w = py_round(double(h) * ratio[1]);
  return {(height - h) / 2, (width - w) / 2, h, w};
}

BlipImageTrainDraw BlipImageTrainProcessor::draw(int64_t height, int64_t width, std::mt19937_64& rng) const {
  BlipImageTrainDraw d;
  const auto box = random_resized_crop_params(height, width, {min_scale, max_scale}, {3.0 / 4.0, 4.0 / 3.0}, rng);
  d.top = box[0], d.left = box[1], d.height = box[2], d.width = box[3];
  d.hflip = std::uniform_real_distribution<double>(0.0, 1.0)(rng) < 0.5;
  d.ops = augment.draw(rng);
  return d;
}

torch::Tensor BlipImageTrainProcessor::crop(const torch::Tensor& rgb, const BlipImageTrainDraw& d) const {
  check_rgb(rgb);
  if (d.top < 0 || d.left < 0 || d.height <= 0 || d.width <= 0 || d.top + d.height > rgb.size(0) ||
      d.left + d.width > rgb.size(1))
    fail("blip_image_train: crop box (top {}, left {}, {}x{}) outside the {}x{} image", d.top, d.left, d.height,
         d.width, rgb.size(0), rgb.size(1));
  return pil_resize_bicubic(rgb.slice(0, d.top, d.top + d.height).slice(1, d.left, d.left + d.width), image_size,
                            image_size);
}

torch::Tensor BlipImageTrainProcessor::augmented(const torch::Tensor& rgb, const BlipImageTrainDraw& d) const {
  auto img = crop(rgb, d);
  if (d.hflip) img = img.flip({1}).contiguous();
  return RandomAugment::apply(img, d.ops);
}

torch::Tensor BlipImageTrainProcessor::operator()(const torch::Tensor& rgb, const BlipImageTrainDraw& d) const {
  return to_normalized_tensor(augmented(rgb, d), mean, std);
}

torch::Tensor BlipImageTrainProcessor::operator()(const torch::Tensor& rgb, std::mt19937_64& rng) const {
  check_rgb(rgb);
  return (*this)(rgb, draw(rgb.size(0), rgb.size(1), rng));
}

// from_config of the original: image_size 384, min_scale 0.5, max_scale 1.0, CLIP mean/std unless given.
// The draws come from a SharedRng (the optional `seed` key).
CB_REGISTER(processor, "blip_image_train", [](const Config& cfg) {
  BlipImageTrainProcessor p;
  p.image_size = cfg.get<int64_t>("image_size", 384);
  p.min_scale = cfg.get<double>("min_scale", 0.5);
  p.max_scale = cfg.get<double>("max_scale", 1.0);
  p.mean = config_triple(cfg, "mean", kClipMean);
  p.std = config_triple(cfg, "std", kClipStd);
  auto rng = std::make_shared<SharedRng>(cfg);
  return Processor{.media = [p, rng](const torch::Tensor& rgb) {
    check_rgb(rgb);
    return p(rgb, rng->draw([&](std::mt19937_64& g) { return p.draw(rgb.size(0), rgb.size(1), g); }));
  }};
});

}  // namespace cb
