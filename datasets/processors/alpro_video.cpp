#include "datasets/processors/alpro_video.h"

#include <cmath>

#include "datasets/media/frame_sampling.h"
#include "datasets/media/image_decode.h"
#include "datasets/media/valor_video.h"
#include "datasets/media/video_decode.h"
#include "datasets/processors/pil_resize.h"
#include "datasets/processors/processor.h"
#include "framework/error.h"

namespace cb {

std::vector<int64_t> uniform_frame_indices(int64_t length, int64_t n_frms) {
  if (length <= 0 || n_frms <= 0) fail("video: cannot sample {} frames from {}", n_frms, length);
  const int64_t n = std::min(n_frms, length);
  const double step = double(length) / double(n);
  const auto count = int64_t(std::ceil(double(length) / step));  // numpy: ceil((stop - start) / step)
  std::vector<int64_t> indices;
  for (int64_t i = 0; i < count; ++i) indices.push_back(int64_t(double(i) * step));
  return indices;
}

// The original takes min(n_frms, length) frames, so a clip shorter than a set n_frms has fewer frames
// than the rest of its batch, and the whole evaluation stopped at collate: it is refused instead, and
// the dataset skips and reports it like any unreadable sample.
void check_length(const std::filesystem::path& path, int64_t length, int64_t n_frms) {
  if (n_frms != std::numeric_limits<int64_t>::max() && length < n_frms)
    fail("video '{}': {} frame(s), fewer than n_frms = {}: the other samples of a batch have {}", path.string(), length,
         n_frms, n_frms);
}

torch::Tensor AlproVideoEvalProcessor::operator()(const std::filesystem::path& path) const {
  torch::Tensor frames;  // [n, s, s, 3] uint8
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    const auto files = list_frames(path);
    check_length(path, int64_t(files.size()), n_frms);
    std::mt19937_64 unused;  // eval picks are deterministic
    ImageDecoder decoder;
    std::vector<torch::Tensor> picked;
    for (const int64_t i :
         sample_indices(int64_t(files.size()), std::min<int64_t>(n_frms, int64_t(files.size())), false, unused))
      picked.push_back(pil_resize_bicubic(decoder.decode_file(files[size_t(i)]), image_size, image_size));
    frames = torch::stack(picked);
  } else {
    auto reader = VideoReader::open_file(path);
    const int64_t length = reader.frame_count();
    check_length(path, length, n_frms);
    frames = reader.frames(uniform_frame_indices(length, n_frms), image_size, image_size);
  }
  auto x = frames.permute({3, 0, 1, 2}).to(torch::kFloat32).div(255);  // ToTensorVideo: [3, n, s, s]
  auto m = torch::tensor({mean[0], mean[1], mean[2]}, torch::kFloat32).view({3, 1, 1, 1});
  auto sd = torch::tensor({std[0], std[1], std[2]}, torch::kFloat32).view({3, 1, 1, 1});
  return x.sub_(m).div_(sd).contiguous();
}

// from_config of the original: image_size 256, n_frms unlimited, CLIP mean/std unless given.
CB_REGISTER(processor, "alpro_video_eval", [](const Config& cfg) {
  AlproVideoEvalProcessor p;
  p.image_size = cfg.get<int64_t>("image_size", 256);
  p.n_frms = cfg.get<int64_t>("n_frms", std::numeric_limits<int64_t>::max());
  p.mean = config_triple(cfg, "mean", kClipMean);
  p.std = config_triple(cfg, "std", kClipStd);
  return Processor{.file = [p](const std::string& path) { return p(path); }};
});

}  // namespace cb
