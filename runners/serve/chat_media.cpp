#include "runners/serve/chat_media.h"

#include <spdlog/spdlog.h>

#include <random>

#include "datasets/audio/audio_decode.h"
#include "datasets/media/frame_sampling.h"
#include "datasets/media/image_decode.h"
#include "datasets/media/valor_video.h"
#include "datasets/media/video_decode.h"
#include "datasets/processors/image_processors.h"
#include "framework/error.h"
#include "models/chatbridge_config.h"

namespace cb {

ChatMediaOptions ChatMediaOptions::for_model(const ChatBridgeConfig& c) {
  ChatMediaOptions o;
  o.image_size = c.image_size;
  return o;
}

torch::Tensor image_from_bytes(const std::vector<uint8_t>& bytes, const std::string& name, const ChatMediaOptions& o) {
  ImageDecoder decoder;
  BlipImageEvalProcessor proc;
  proc.image_size = o.image_size;
  return proc(decoder.decode_bytes(bytes.data(), bytes.size(), name));
}

torch::Tensor audio_from_bytes(const std::vector<uint8_t>& bytes, const std::string& name, const ChatMediaOptions& o) {
  std::mt19937_64 unused_in_eval{0};
  return AudioMapper({}, o.audio).features(decode_audio_bytes(bytes.data(), bytes.size(), name), unused_in_eval);
}

VideoClip video_from_bytes(const std::vector<uint8_t>& bytes, const std::string& name, const ChatMediaOptions& o) {
  auto reader = VideoReader::open_bytes(bytes.data(), bytes.size(), name);
  const int64_t count = reader.frame_count();
  if (count <= 0) fail("video '{}': no frames", name);
  std::mt19937_64 unused_in_eval{0};
  VideoMapperOptions vo;
  vo.resolution = o.image_size;
  vo.sample_num = o.video_frames;
  VideoClip clip;
  clip.frames =
      frames_to_pixels(reader.frames(sample_indices(count, o.video_frames, false, unused_in_eval)).unbind(0), vo);
  try {  // the soundtrack is optional: a silent video uses the video-only template
    clip.fbank = audio_from_bytes(bytes, name, o);
  } catch (const Error& e) {
    spdlog::info("video '{}': no usable soundtrack ({}); video only", name, e.what());
  }
  return clip;
}

VideoClip video_from_frame_dir(const std::filesystem::path& dir, const ChatMediaOptions& o) {
  VideoMapperOptions vo;
  vo.resolution = o.image_size;
  vo.sample_num = o.video_frames;
  ImageDecoder decoder;
  std::mt19937_64 unused_in_eval{0};
  return {VideoMapper(dir.parent_path(), vo).video(dir.filename().string(), decoder, unused_in_eval), std::nullopt};
}

std::vector<uint8_t> read_media_file(const std::filesystem::path& path) {
  std::vector<uint8_t> out;
  read_file_bytes(path, out, "media file");
  return out;
}

}  // namespace cb
