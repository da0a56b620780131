#include "datasets/processors/image_processors.h"

#include <vector>

#include "datasets/processors/pil_resize.h"
#include "datasets/processors/processor.h"
#include "framework/error.h"

namespace cb {

std::array<double, 3> config_triple(const Config& cfg, const char* key, const std::array<double, 3>& fallback) {
  const auto v = cfg.get_optional<std::vector<double>>(key);
  if (!v) return fallback;
  if (v->size() != 3) fail("{}.{}: expected 3 values (one per RGB channel), got {}", cfg.path(), key, v->size());
  return {(*v)[0], (*v)[1], (*v)[2]};
}

torch::Tensor to_normalized_tensor(const torch::Tensor& rgb, const std::array<double, 3>& mean,
                                   const std::array<double, 3>& std) {
  auto x = rgb.movedim(-1, 0).contiguous().to(torch::kFloat32).div(255);  // [3, ...]
  std::vector<int64_t> per_channel(size_t(rgb.dim()), 1);
  per_channel[0] = 3;
  auto m = torch::tensor({mean[0], mean[1], mean[2]}, torch::kFloat32).view(per_channel);
  auto s = torch::tensor({std[0], std[1], std[2]}, torch::kFloat32).view(per_channel);
  return x.sub_(m).div_(s);
}

torch::Tensor BlipImageEvalProcessor::operator()(const torch::Tensor& rgb) const {
  if (rgb.dim() != 3 || rgb.size(2) != 3)
    fail("blip_image_eval: expected an [H, W, 3] RGB image, got {}", c10::str(rgb.sizes()));
  return to_normalized_tensor(pil_resize_bicubic(rgb, image_size, image_size), mean, std);
}

// from_config of the original: image_size 384 unless given; mean/std default to CLIP's.
CB_REGISTER(processor, "blip_image_eval", [](const Config& cfg) {
  BlipImageEvalProcessor p{cfg.get<int64_t>("image_size", 384), config_triple(cfg, "mean", kClipMean),
                           config_triple(cfg, "std", kClipStd)};
  return Processor{.media = p};
});

}  // namespace cb
