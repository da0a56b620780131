// Audio decoding with FFmpeg (any container/codec libavformat knows), from a file or from bytes in
// memory. Samples come out like torchaudio.load: float32 [channels, samples], integer PCM scaled to
// [-1, 1) (int16 x/32768, int32 x/2^31, uint8 (x-128)/128), all channels kept, native sample rate.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>

namespace cb {

struct DecodedAudio {
  torch::Tensor samples;  // [C,S] float32
  int64_t sample_rate = 0;
};

// Throws cb::Error naming `path` (or `name`) and the problem for missing, empty, corrupt,
// truncated or audio-less input.
DecodedAudio decode_audio_file(const std::filesystem::path& path);
DecodedAudio decode_audio_bytes(const uint8_t* data, size_t size, const std::string& name);

}  // namespace cb
