// Video decoding through FFmpeg (libavformat/libavcodec, RGB conversion by libswscale) from a file or
// from bytes in memory, returning chosen frames by index: the role decord's VideoReader plays in the
// original (`raw` video format, alpro_video_eval). Frame i is the i-th frame in presentation order, as
// in decord: opening reads every packet's pts (no decoding) into a sorted table, so variable-frame-rate
// clips are indexed by their frames, not by timestamp x frame rate; for a far-away frame the reader
// seeks to the keyframe before that frame's pts instead of decoding everything.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "datasets/media/image_decode.h"

namespace cb {

class VideoReader {
 public:
  // Throws cb::Error naming the file and the problem: missing, empty, not a media file, no video
  // stream, undecodable codec, frames over `max_pixels`.
  static VideoReader open_file(const std::filesystem::path& path, int64_t max_pixels = 2 * kPilMaxImagePixels);
  // `data` must outlive the reader.
  static VideoReader open_bytes(const uint8_t* data, size_t size, const std::string& name,
                                int64_t max_pixels = 2 * kPilMaxImagePixels);
  VideoReader(VideoReader&&) noexcept;
  VideoReader& operator=(VideoReader&&) noexcept;
  ~VideoReader();

  // Number of frames: the packets in the table (decord's len()), or the container's count when it is larger
  // (a file cut short); without a table, the container's count, else duration x frame rate, else counted.
  int64_t frame_count();
  double fps() const;
  int64_t width() const;
  int64_t height() const;

  // Frames at `indices` (any order, repeats allowed) -> [n, H, W, 3] uint8 RGB, at (out_h, out_w)
  // when both are > 0 (swscale bicubic, as decord's VideoReader(width, height)), else at the native
  // size. Throws when an index is negative or past the decodable end (e.g. a truncated file), naming
  // the file.
  torch::Tensor frames(const std::vector<int64_t>& indices, int64_t out_h = 0, int64_t out_w = 0);

 private:
  struct State;
  explicit VideoReader(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

}  // namespace cb
