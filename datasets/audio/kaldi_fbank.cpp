#include "datasets/audio/kaldi_fbank.h"

#include <cmath>
#include <limits>
#include <map>
#include <tuple>

#include "framework/error.h"

namespace cb {

namespace {

double mel_scale(double hz) { return 1127.0 * std::log(1.0 + hz / 700.0); }
torch::Tensor mel_scale(const torch::Tensor& hz) { return 1127.0 * (1.0 + hz / 700.0).log(); }

int64_t next_power_of_two(int64_t x) {
  int64_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

}  // namespace

torch::Tensor kaldi_mel_banks(int64_t num_mel_bins, int64_t padded_window_size, double sample_frequency,
                              double low_freq, double high_freq) {
  if (num_mel_bins <= 3) fail("fbank: num_mel_bins must be > 3, got {}", num_mel_bins);
  const double nyquist = 0.5 * sample_frequency;
  if (high_freq <= 0.0) high_freq += nyquist;
  if (!(0.0 <= low_freq && low_freq < nyquist && 0.0 < high_freq && high_freq <= nyquist && low_freq < high_freq))
    fail("fbank: bad mel band {} .. {} Hz for sample rate {}", low_freq, high_freq, sample_frequency);
  const double fft_bin_width = sample_frequency / double(padded_window_size);
  const double mel_low = mel_scale(low_freq), mel_high = mel_scale(high_freq);
  const double mel_delta = (mel_high - mel_low) / double(num_mel_bins + 1);

  // Same float32 tensor expressions as the original (integer bins times a double -> float32).
  auto bin = torch::arange(num_mel_bins, torch::kLong).unsqueeze(1);
  auto left_mel = mel_low + bin * mel_delta;
  auto center_mel = mel_low + (bin + 1.0) * mel_delta;
  auto right_mel = mel_low + (bin + 2.0) * mel_delta;
  auto mel = mel_scale(fft_bin_width * torch::arange(double(padded_window_size / 2), torch::kFloat)).unsqueeze(0);
  auto up_slope = (mel - left_mel) / (center_mel - left_mel);
  auto down_slope = (right_mel - mel) / (right_mel - center_mel);
  return torch::max(torch::zeros({1}), torch::min(up_slope, down_slope));
}

namespace {

// What every clip of one configuration shares: built once per configuration and thread, since for
// a short clip they cost more than the transform itself.
struct FbankConstants {
  torch::Tensor povey;    // [W]
  torch::Tensor banks_t;  // [padded/2 + 1, bins], the Nyquist bin weighted 0
};

const FbankConstants& fbank_constants(int64_t window_size, int64_t padded, const FbankOptions& o) {
  thread_local std::map<std::tuple<int64_t, int64_t, int64_t, double>, FbankConstants> cache;
  const auto key = std::make_tuple(window_size, padded, o.num_mel_bins, o.sample_frequency);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  FbankConstants c;
  c.povey = torch::hann_window(window_size, /*periodic=*/false, torch::kFloat).pow(0.85);
  auto banks = kaldi_mel_banks(o.num_mel_bins, padded, o.sample_frequency, 20.0, 0.0);
  c.banks_t = torch::constant_pad_nd(banks, {0, 1}, 0).t();
  return cache.emplace(key, std::move(c)).first->second;
}

}  // namespace

torch::Tensor kaldi_fbank(const torch::Tensor& waveform, const FbankOptions& o) {
  if (waveform.dim() != 2)
    fail("fbank: expected a waveform [channels, samples], got {}", fmt::join(waveform.sizes(), "x"));
  const int64_t channel = std::max<int64_t>(o.channel, 0);
  if (channel >= waveform.size(0)) fail("fbank: channel {} requested, the waveform has {}", channel, waveform.size(0));
  auto wave = waveform[channel].to(torch::kFloat).contiguous();  // [S]

  const auto window_shift = int64_t(o.sample_frequency * o.frame_shift_ms * 0.001);
  const auto window_size = int64_t(o.sample_frequency * o.frame_length_ms * 0.001);
  const int64_t padded = next_power_of_two(window_size);
  if (window_size < 2 || window_shift < 1) fail("fbank: frame length/shift give a window of {} samples", window_size);
  if (wave.size(0) < window_size)
    fail("fbank: the audio has {} samples, fewer than one {} ms window ({} samples)", wave.size(0), o.frame_length_ms,
         window_size);

  // snip_edges: only whole windows.
  const int64_t frames = 1 + (wave.size(0) - window_size) / window_shift;
  auto x = wave.as_strided({frames, window_size}, {window_shift, 1});                   // [m,W]
  x = x - x.mean(1).unsqueeze(1);                                                       // remove DC offset
  auto previous = torch::cat({x.narrow(1, 0, 1), x.narrow(1, 0, window_size - 1)}, 1);  // replicate-pad left
  x = x - 0.97 * previous;                                                              // pre-emphasis
  const auto& consts = fbank_constants(window_size, padded, o);
  x = x * consts.povey.unsqueeze(0);
  x = torch::constant_pad_nd(x, {0, padded - window_size}, 0);  // [m,padded]

  auto spectrum = torch::fft::rfft(x).abs().pow(2.0);  // [m,padded/2+1]
  auto mel = torch::mm(spectrum, consts.banks_t);      // [m,bins]
  const auto eps = torch::tensor(std::numeric_limits<float>::epsilon());
  return torch::max(mel, eps).log();
}

}  // namespace cb
