// ChatBridge's visual input pipeline (valor `VideoMapper`, custom_datasets/valor_data): a video is a
// directory of frame images or a video file, sampled one frame per group (middle frame in eval, random
// in training); an image is one file. Frames -> ToTensor -> [n, 3, H, W] float, then by video_transforms
// (torchvision's tensor ops of the time: bilinear, align_corners False, no antialias):
//   'none' (shipped):  Resize((S, S)) -> Normalize
//   'crop_flip':       training: RandomResizedCrop(S, scale (0.8, 1), ratio (1, 1)), one box for all the
//                      frames -> RandomHorizontalFlip -> Normalize; eval: Resize(S) (the shorter side)
//                      -> CenterCrop(S) -> Normalize
// -> [n, 3, S, S].
// Frames are decoded to RGB: the original opens them without convert('RGB'), so a grayscale frame
// there fails in Normalize (and the item is resampled); here it is replicated to three channels.
#pragma once
#include <torch/torch.h>

#include <array>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "datasets/media/image_decode.h"
#include "datasets/media/video_decode.h"
#include "datasets/processors/image_processors.h"

namespace cb {

struct VideoMapperOptions {
  int64_t resolution = 224;                                // video_resolution
  int64_t sample_num = 1;                                  // frames per video
  std::array<double, 3> mean = kClipMean, std = kClipStd;  // from video_encoder_type (clip/evaclip -> CLIP)
  bool training = false;                                   // random frame per group instead of the middle one
  bool crop_flip = false;                                  // video_transforms 'crop_flip' instead of 'none'
};

// The random draws of crop_flip in training: RandomResizedCrop's box on the H x W frames, and the flip.
struct CropFlipDraw {
  int64_t top = 0, left = 0, height = 0, width = 0;
  bool hflip = false;
};
CropFlipDraw draw_crop_flip(int64_t height, int64_t width, std::mt19937_64& rng);

// Decoded RGB frames ([H, W, 3] uint8, all the same size) -> [n, 3, S, S] float32. `rng` draws the
// crop and flip of crop_flip in training (required there, unused otherwise).
torch::Tensor frames_to_pixels(const std::vector<torch::Tensor>& frames, const VideoMapperOptions& opts,
                               std::mt19937_64* rng = nullptr);

// The frame files of a frame directory, sorted by name as the original's sorted(os.listdir(...)).
std::vector<std::filesystem::path> list_frames(const std::filesystem::path& dir);

class VideoMapper {
 public:
  VideoMapper(std::filesystem::path root, VideoMapperOptions opts) : root_(std::move(root)), opts_(opts) {}
  // Frame directory <root>/<id> (fallback <root>/<id[:2] lower>/<id>) -> [sample_num, 3, S, S].
  torch::Tensor video(const std::string& id, ImageDecoder& decoder, std::mt19937_64& rng) const;
  // A video file (data_format 'raw', decord in the original), decoded with FFmpeg: the frame indices are
  // split into sample_num groups and sampled like the frames of a directory -> [sample_num, 3, S, S].
  torch::Tensor video_file(const std::filesystem::path& path, std::mt19937_64& rng) const;
  // Image <root>/<id> (fallbacks <id>.jpg, then .jpg -> .JPEG) -> [1, 3, S, S].
  torch::Tensor image(const std::string& id, ImageDecoder& decoder, std::mt19937_64& rng) const;
  // The frame files `video` would read (`rng` only used in training).
  std::vector<std::filesystem::path> pick_frames(const std::string& id, std::mt19937_64& rng) const;
  const VideoMapperOptions& options() const { return opts_; }

 private:
  std::filesystem::path root_;
  VideoMapperOptions opts_;
};

}  // namespace cb
