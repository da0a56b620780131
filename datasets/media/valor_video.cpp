#include "datasets/media/valor_video.h"

#include <algorithm>
#include <cctype>

#include "datasets/media/frame_sampling.h"
#include "datasets/processors/blip_image_train.h"
#include "framework/error.h"

namespace cb {

namespace F = torch::nn::functional;

namespace {

torch::Tensor resize_bilinear(const torch::Tensor& x, int64_t height, int64_t width) {
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{height, width})
                               .mode(torch::kBilinear)
                               .align_corners(false));  // tensor Resize of the time: no antialias
}

}  // namespace

CropFlipDraw draw_crop_flip(int64_t height, int64_t width, std::mt19937_64& rng) {
  const auto box = random_resized_crop_params(height, width, {0.8, 1.0}, {1.0, 1.0}, rng);
  return {box[0], box[1], box[2], box[3], std::uniform_real_distribution<double>(0.0, 1.0)(rng) < 0.5};
}

torch::Tensor frames_to_pixels(const std::vector<torch::Tensor>& frames, const VideoMapperOptions& o,
                               std::mt19937_64* rng) {
  if (frames.empty()) fail("video: no frames to convert");
  for (const auto& f : frames)
    if (f.sizes() != frames[0].sizes())
      fail("video: frames differ in size ({} vs {}); the original stacks them before resizing", c10::str(f.sizes()),
           c10::str(frames[0].sizes()));
  // ToTensor: [n, 3, H, W]. Each frame is converted and transposed by one copy and scaled in place,
  // the same values as stack -> permute -> float -> /255 without three full-size temporaries.
  const auto& f0 = frames[0];
  auto x = torch::empty({int64_t(frames.size()), f0.size(2), f0.size(0), f0.size(1)}, torch::kFloat32);
  for (size_t i = 0; i < frames.size(); ++i) x[int64_t(i)].copy_(frames[i].permute({2, 0, 1}));
  x.div_(255);
  const int64_t S = o.resolution, h = x.size(2), w = x.size(3);
  if (!o.crop_flip) {
    x = resize_bilinear(x, S, S);
  } else if (o.training) {
    if (!rng) fail("video: crop_flip in training needs a random generator");
    const auto d = draw_crop_flip(h, w, *rng);
    x = resize_bilinear(x.slice(2, d.top, d.top + d.height).slice(3, d.left, d.left + d.width), S, S);
    if (d.hflip) x = x.flip({-1});
  } else {
    // Resize(S): the shorter side to S, the longer int(S * long / short); then CenterCrop(S).
    const int64_t rh = h <= w ? S : int64_t(double(S) * double(h) / double(w));
    const int64_t rw = h <= w ? int64_t(double(S) * double(w) / double(h)) : S;
    x = resize_bilinear(x, rh, rw);
    const int64_t top = py_round(double(rh - S) / 2), left = py_round(double(rw - S) / 2);
    x = x.slice(2, top, top + S).slice(3, left, left + S);
  }
  auto mean = torch::tensor({o.mean[0], o.mean[1], o.mean[2]}, torch::kFloat32).view({1, 3, 1, 1});
  auto std = torch::tensor({o.std[0], o.std[1], o.std[2]}, torch::kFloat32).view({1, 3, 1, 1});
  return x.contiguous().sub_(mean).div_(std);  // [n, 3, S, S]
}

std::vector<std::filesystem::path> list_frames(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    files.push_back(it->path());
  if (ec) fail("video '{}': cannot list the frame directory: {}", dir.string(), ec.message());
  // Python sorts str by code point, which is byte order for UTF-8 names.
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.filename().string() < b.filename().string(); });
  if (files.empty()) fail("video '{}': the frame directory is empty", dir.string());
  return files;
}

std::vector<std::filesystem::path> VideoMapper::pick_frames(const std::string& id, std::mt19937_64& rng) const {
  std::error_code ec;
  auto dir = root_ / id;
  if (!std::filesystem::is_directory(dir, ec)) {
    std::string shard = id.substr(0, 2);
    std::transform(shard.begin(), shard.end(), shard.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    dir = root_ / shard / id;
    if (!std::filesystem::is_directory(dir, ec))
      fail("video '{}': no frame directory {} or {}", id, (root_ / id).string(), dir.string());
  }
  const auto files = list_frames(dir);
  std::vector<std::filesystem::path> picked;
  for (const int64_t i : sample_indices(int64_t(files.size()), opts_.sample_num, opts_.training, rng))
    picked.push_back(files[size_t(i)]);
  return picked;
}

torch::Tensor VideoMapper::video(const std::string& id, ImageDecoder& decoder, std::mt19937_64& rng) const {
  std::vector<torch::Tensor> frames;
  for (const auto& file : pick_frames(id, rng)) frames.push_back(decoder.decode_file(file));
  return frames_to_pixels(frames, opts_, &rng);
}

torch::Tensor VideoMapper::video_file(const std::filesystem::path& path, std::mt19937_64& rng) const {
  auto reader = VideoReader::open_file(path);
  const int64_t count = reader.frame_count();
  if (count <= 0) fail("video '{}': no frames", path.string());
  const auto frames = reader.frames(sample_indices(count, opts_.sample_num, opts_.training, rng));  // [n, H, W, 3]
  return frames_to_pixels(frames.unbind(0), opts_, &rng);
}

torch::Tensor VideoMapper::image(const std::string& id, ImageDecoder& decoder, std::mt19937_64& rng) const {
  std::error_code ec;
  auto path = (root_ / id).string();
  if (!std::filesystem::exists(path, ec)) path += ".jpg";
  if (!std::filesystem::exists(path, ec)) {
    // Python's str.replace: every ".jpg" in the path.
    for (size_t pos = 0; (pos = path.find(".jpg", pos)) != std::string::npos; pos += 5) path.replace(pos, 4, ".JPEG");
  }
  if (!std::filesystem::exists(path, ec)) fail("image '{}': not found under {}", id, root_.string());
  return frames_to_pixels({decoder.decode_file(path)}, opts_, &rng);
}

}  // namespace cb
