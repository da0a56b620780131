#include "datasets/processors/alpro_video.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>

#include <spdlog/spdlog.h>

#include "datasets/media/frame_sampling.h"
#include "datasets/media/image_decode.h"
#include "datasets/media/valor_video.h"
#include "datasets/media/video_decode.h"
#include "datasets/processors/blip_image_train.h"
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

namespace {

// The original takes min(n_frms, length) frames, so a clip shorter than a set n_frms has fewer frames
// than the rest of its batch, and the whole evaluation stopped at collate: it is refused instead, and
// the dataset skips and reports it like any unreadable sample.
void check_length(const std::filesystem::path& path, int64_t length, int64_t n_frms) {
  if (n_frms != std::numeric_limits<int64_t>::max() && length < n_frms)
    fail("video '{}': {} frame(s), fewer than n_frms = {}: the other samples of a batch have {}", path.string(), length,
         n_frms, n_frms);
}

}  // namespace

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
  return to_normalized_tensor(frames, mean, std);
}

std::vector<int64_t> headtail_frame_indices(int64_t length, int64_t n_frms, std::mt19937_64& rng) {
  if (length <= 0 || n_frms <= 0) fail("video: cannot sample {} frames from {}", n_frms, length);
  const int64_t half = std::min(n_frms, length) / 2;
  std::vector<int64_t> head(size_t(length / 2)), tail(size_t(length - length / 2)), out;
  std::iota(head.begin(), head.end(), 0);
  std::iota(tail.begin(), tail.end(), length / 2);
  // random.sample then sorted: a uniformly random subset, in order (selection sampling keeps the order)
  std::sample(head.begin(), head.end(), std::back_inserter(out), half, rng);
  std::sample(tail.begin(), tail.end(), std::back_inserter(out), half, rng);
  return out;
}

AlproVideoTrainDraw AlproVideoTrainProcessor::draw(int64_t length, std::mt19937_64& rng) const {
  AlproVideoTrainDraw d;
  d.frames = headtail_frame_indices(length, n_frms, rng);
  // RandomResizedCropVideo: torchvision's get_params on the decoded s x s frames
  const auto box =
      random_resized_crop_params(image_size, image_size, {min_scale, max_scale}, {3.0 / 4.0, 4.0 / 3.0}, rng);
  d.top = box[0], d.left = box[1], d.height = box[2], d.width = box[3];
  d.hflip = std::uniform_real_distribution<double>(0.0, 1.0)(rng) < 0.5;
  // VideoRandomAugment: np.random.choice(augs, N, replace=False) once for the clip; each op is applied
  // (p = 0), and arg_dict draws the sign again for every frame.
  if (n_ops > int64_t(augs.size()))
    fail("alpro_video_train: {} ops drawn without replacement from {}", n_ops, augs.size());
  auto names = augs;
  std::shuffle(names.begin(), names.end(), rng);
  names.resize(size_t(n_ops));
  d.ops.resize(d.frames.size());
  for (auto& frame_ops : d.ops)
    for (const auto& name : names) frame_ops.push_back(RandomAugment::draw_op(name, level, rng));
  return d;
}

torch::Tensor AlproVideoTrainProcessor::transform(const torch::Tensor& frames, const AlproVideoTrainDraw& d) const {
  if (frames.scalar_type() != torch::kUInt8 || frames.dim() != 4 || frames.size(3) != 3 ||
      frames.size(0) != int64_t(d.ops.size()))
    fail("alpro_video_train: expected [{}, H, W, 3] uint8 frames, got {} {}", d.ops.size(),
         c10::toString(frames.scalar_type()), c10::str(frames.sizes()));
  const int64_t h = frames.size(1), w = frames.size(2);
  if (d.top < 0 || d.left < 0 || d.height <= 0 || d.width <= 0 || d.top + d.height > h || d.left + d.width > w)
    fail("alpro_video_train: crop box (top {}, left {}, {}x{}) outside the {}x{} frames", d.top, d.left, d.height,
         d.width, h, w);
  namespace F = torch::nn::functional;
  // [3, n, h, w] float: interpolate takes 3 as the batch and the n frames as channels, as the original's.
  auto clip = frames.permute({3, 0, 1, 2}).to(torch::kFloat32);
  clip = clip.slice(2, d.top, d.top + d.height).slice(3, d.left, d.left + d.width);
  clip = F::interpolate(clip, F::InterpolateFuncOptions()
                                  .size(std::vector<int64_t>{image_size, image_size})
                                  .mode(torch::kBicubic)
                                  .align_corners(false));
  if (d.hflip) clip = clip.flip({-1});
  // numpy's float32 -> uint8 astype on x86-64: truncated to an integer, then its low 8 bits.
  auto thwc = clip.permute({1, 2, 3, 0}).to(torch::kInt32).to(torch::kUInt8).contiguous();  // [n, s, s, 3]
  std::vector<torch::Tensor> augmented;
  for (int64_t t = 0; t < thwc.size(0); ++t)
    augmented.push_back(RandomAugment::apply(thwc[t].contiguous(), d.ops[size_t(t)]));
  return to_normalized_tensor(torch::stack(augmented), mean, std);
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

// from_config of the original: image_size 256, min_scale 0.5, max_scale 1.0, n_frms unlimited, CLIP
// mean/std unless given. The draws come from a SharedRng (the optional `seed` key).
CB_REGISTER(processor, "alpro_video_train", [](const Config& cfg) {
  AlproVideoTrainProcessor p;
  p.image_size = cfg.get<int64_t>("image_size", 256);
  p.n_frms = cfg.get<int64_t>("n_frms", std::numeric_limits<int64_t>::max());
  p.min_scale = cfg.get<double>("min_scale", 0.5);
  p.max_scale = cfg.get<double>("max_scale", 1.0);
  p.mean = config_triple(cfg, "mean", kClipMean);
  p.std = config_triple(cfg, "std", kClipStd);
  const std::string where = cfg.path().empty() ? "alpro_video_train" : cfg.path();
  if (p.image_size < 1 || p.n_frms < 1) fail("{}: image_size and n_frms must be >= 1", where);
  if (!(0 < p.min_scale && p.min_scale <= p.max_scale && p.max_scale <= 1))
    fail("{}: expected 0 < min_scale <= max_scale <= 1, got {} and {}", where, p.min_scale, p.max_scale);
  if (p.n_frms == 1)
    fail("{}: n_frms 1 takes no frame with the original's head/tail sampling (n_frms // 2 of each half)", where);
  if (p.n_frms != std::numeric_limits<int64_t>::max() && p.n_frms % 2)
    spdlog::warn("{}: n_frms {} is odd; the original's head/tail sampling takes {} frames of each half, {} in all",
                 where, p.n_frms, p.n_frms / 2, p.n_frms / 2 * 2);
  auto rng = std::make_shared<SharedRng>(cfg);
  return Processor{.file = [p, rng](const std::string& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
      fail("video '{}': alpro_video_train reads video files (as the original's decord loader); this is a directory",
           path);
    auto reader = VideoReader::open_file(path);
    const int64_t length = reader.frame_count();
    check_length(path, length, p.n_frms);
    const auto d = rng->draw([&](std::mt19937_64& g) { return p.draw(length, g); });
    if (d.frames.empty()) fail("video '{}': 1 frame, and head/tail sampling takes length // 2 of each half", path);
    return p.transform(reader.frames(d.frames, p.image_size, p.image_size), d);
  }};
});

}  // namespace cb
