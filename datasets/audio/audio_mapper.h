// ChatBridge's audio input pipeline (valor `AudioMapper` in custom_datasets/valor_data, audio_encoder_type
// 'beat'): decode -> resample to 16 kHz -> kaldi fbank of x·2^15 -> (x − mean)/(2·std) -> zero-pad
// -> one target_length-frame slice per group -> [sample_num, target_length, melbins]. Also
// BEATs.preprocess (128-bin fbank of 16 kHz waveforms), defined by the original but unused.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <optional>
#include <random>
#include <string>

#include "datasets/audio/audio_decode.h"

namespace cb {

struct AudioMapperOptions {
  int64_t melbins = 64;                   // audio_melbins
  int64_t target_length = 1024;           // audio_target_length (frames per slice)
  int64_t sample_num = 1;                 // slices per clip
  double mean = 15.41663, std = 6.55582;  // BEATs fbank statistics
  bool training = false;                  // random slice per group instead of the middle one
};

constexpr int64_t kBeatsSampleRate = 16000;

// `audio` at 16 kHz, all channels kept (torchaudio Resample when the rate differs): [C, S'].
torch::Tensor resample_to_16k(const DecodedAudio& audio);
// kaldi fbank of a 16 kHz waveform [C,S] scaled by 2^15 (25 ms / 10 ms, channel 0): [T, melbins].
torch::Tensor beats_fbank(const torch::Tensor& waveform_16k, int64_t melbins);
// Normalise, zero-pad and slice a raw fbank [T, melbins] -> [sample_num, target_length, melbins].
// `rng` is used only in training mode.
torch::Tensor slice_fbank(const torch::Tensor& fbank, const AudioMapperOptions& opts, std::mt19937_64& rng);
// BEATs.preprocess: waveforms [B,S] at 16 kHz -> normalised fbank [B, T, num_mel_bins].
torch::Tensor beats_preprocess(const torch::Tensor& waveforms, int64_t num_mel_bins = 128, double mean = 15.41663,
                               double std = 6.55582);

// The original's file lookup under `root`: id, id.wav, then 'wav'->'mp3', 'mp3'->'mkv' (replacing every
// occurrence in the path, as Python's str.replace does), root/<id[:2] lower>/id.wav, 'wav'->'mkv'.
std::optional<std::filesystem::path> find_audio_file(const std::filesystem::path& root, const std::string& id);

class AudioMapper {
 public:
  AudioMapper(std::filesystem::path root, AudioMapperOptions opts) : root_(std::move(root)), opts_(opts) {}
  // [sample_num, target_length, melbins]; ZEROS when no file is found (the original silently trains on
  // silence); cb::Error when the file cannot be decoded (the caller picks another item, as the original).
  torch::Tensor operator()(const std::string& id, std::mt19937_64& rng) const;
  // The same pipeline on an already decoded clip.
  torch::Tensor features(const DecodedAudio& audio, std::mt19937_64& rng) const;
  const AudioMapperOptions& options() const { return opts_; }

 private:
  std::filesystem::path root_;
  AudioMapperOptions opts_;
};

}  // namespace cb
