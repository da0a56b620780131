#include "datasets/audio/audio_mapper.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "datasets/audio/kaldi_fbank.h"
#include "datasets/audio/resample.h"
#include "datasets/media/frame_sampling.h"
#include "framework/error.h"

namespace cb {

namespace {

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
  return s;
}

}  // namespace

torch::Tensor resample_to_16k(const DecodedAudio& audio) {
  if (audio.sample_rate == kBeatsSampleRate) return audio.samples;
  // Building the kernel costs more than applying it to a short clip: one per rate and thread.
  thread_local std::map<int64_t, Resampler> resamplers;
  auto it = resamplers.find(audio.sample_rate);
  if (it == resamplers.end())
    it = resamplers.emplace(audio.sample_rate, Resampler(audio.sample_rate, kBeatsSampleRate)).first;
  return it->second(audio.samples);
}

torch::Tensor beats_fbank(const torch::Tensor& waveform_16k, int64_t melbins) {
  FbankOptions o;
  o.num_mel_bins = melbins;
  o.sample_frequency = double(kBeatsSampleRate);
  return kaldi_fbank(waveform_16k * 32768.0, o);  // x·2^15: int16 scale, as BEATs was trained
}

torch::Tensor slice_fbank(const torch::Tensor& fbank, const AudioMapperOptions& o, std::mt19937_64& rng) {
  if (fbank.dim() != 2 || fbank.size(0) == 0)
    fail("audio: expected a fbank [frames, bins], got {}", fmt::join(fbank.sizes(), "x"));
  if (o.target_length <= 0 || o.sample_num <= 0) fail("audio: target_length and sample_num must be positive");
  auto fb = (fbank - o.mean) / (o.std * 2);
  const int64_t T = fb.size(0), L = o.target_length;
  // Always at least one padded frame: a T that is a multiple of L gets a whole extra zero slice.
  const int64_t pad = std::max(L * o.sample_num - T, L - T % L);
  fb = torch::constant_pad_nd(fb, {0, 0, 0, pad}, 0);  // padded rows are 0 after normalisation

  std::vector<torch::Tensor> out;
  for (const int64_t pick : sample_indices(fb.size(0) / L, o.sample_num, o.training, rng))
    out.push_back(fb.narrow(0, pick * L, L));
  return torch::stack(out);  // [n, L, bins]
}

torch::Tensor beats_preprocess(const torch::Tensor& waveforms, int64_t num_mel_bins, double mean, double std) {
  if (waveforms.dim() != 2)
    fail("BEATs preprocess: expected waveforms [B, samples], got {}", fmt::join(waveforms.sizes(), "x"));
  std::vector<torch::Tensor> fbanks;
  for (int64_t b = 0; b < waveforms.size(0); ++b)
    fbanks.push_back(beats_fbank(waveforms[b].unsqueeze(0), num_mel_bins));
  return (torch::stack(fbanks) - mean) / (2 * std);
}

std::optional<std::filesystem::path> find_audio_file(const std::filesystem::path& root, const std::string& id) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto exists = [&](const std::string& p) { return fs::exists(p, ec); };
  std::string p = (root / id).string();
  if (!exists(p)) p = (root / (id + ".wav")).string();
  if (!exists(p)) p = replace_all(p, "wav", "mp3");
  if (!exists(p)) p = replace_all(p, "mp3", "mkv");
  if (!exists(p)) {
    std::string sub = id.substr(0, 2);
    std::transform(sub.begin(), sub.end(), sub.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    p = (root / sub / (id + ".wav")).string();
  }
  if (!exists(p)) p = replace_all(p, "wav", "mkv");
  if (!exists(p)) return std::nullopt;
  return fs::path(p);
}

torch::Tensor AudioMapper::features(const DecodedAudio& audio, std::mt19937_64& rng) const {
  return slice_fbank(beats_fbank(resample_to_16k(audio), opts_.melbins), opts_, rng);
}

torch::Tensor AudioMapper::operator()(const std::string& id, std::mt19937_64& rng) const {
  auto file = find_audio_file(root_, id);
  if (!file) return torch::zeros({opts_.sample_num, opts_.target_length, opts_.melbins});
  return features(decode_audio_file(*file), rng);
}

}  // namespace cb
