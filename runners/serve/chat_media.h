// Media of a chat turn, from bytes (uploads, data: URLs) or files (the terminal chat) to the tensors
// ChatSession takes: images through blip_image_eval at the model's image size, videos as 4 frames
// (one per group, the valor eval sampling) plus their soundtrack when there is one, audio through the
// valor AudioMapper eval path (one 1024-frame slice of the 64-bin fbank, BlipAudioEvalProcessor's sample_num 1).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "datasets/audio/audio_mapper.h"

namespace cb {

struct ChatBridgeConfig;

struct ChatMediaOptions {
  int64_t image_size = 224;
  int64_t video_frames = 4;
  AudioMapperOptions audio;
  static ChatMediaOptions for_model(const ChatBridgeConfig& c);
};

struct VideoClip {
  torch::Tensor frames;                // [n,3,S,S]
  std::optional<torch::Tensor> fbank;  // [1,T,F] when the file has a decodable audio stream
};

// Each throws cb::Error naming `name` when the bytes are not decodable media of that kind.
torch::Tensor image_from_bytes(const std::vector<uint8_t>& bytes, const std::string& name,
                               const ChatMediaOptions& o);  // [3,S,S]
torch::Tensor audio_from_bytes(const std::vector<uint8_t>& bytes, const std::string& name,
                               const ChatMediaOptions& o);  // [1,T,F]
VideoClip video_from_bytes(const std::vector<uint8_t>& bytes, const std::string& name, const ChatMediaOptions& o);
// A directory of frame images (the datasets' 'frame' format), sampled as a video file; no soundtrack.
VideoClip video_from_frame_dir(const std::filesystem::path& dir, const ChatMediaOptions& o);

std::vector<uint8_t> read_media_file(const std::filesystem::path& path);

}  // namespace cb
