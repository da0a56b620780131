// torchaudio.compliance.kaldi.fbank with the options ChatBridge and BEATs use: dither 0, povey
// window, remove_dc_offset, preemphasis 0.97, FFT size rounded up to a power of two, low_freq 20,
// high_freq 0 (= Nyquist), power spectrum, log mel energies floored at float eps, snip_edges, no
// energy term. Every step is the same float32 tensor arithmetic as the original.
#pragma once
#include <torch/torch.h>

namespace cb {

struct FbankOptions {
  int64_t num_mel_bins = 23;
  double sample_frequency = 16000;  // Hz
  double frame_length_ms = 25;
  double frame_shift_ms = 10;
  int64_t channel = -1;  // -1 means channel 0, like the original
};

// waveform [C,S] float (already scaled, e.g. ×2^15) -> log mel energies [frames, num_mel_bins].
// Throws cb::Error when the signal is shorter than one window or the channel does not exist.
torch::Tensor kaldi_fbank(const torch::Tensor& waveform, const FbankOptions& opts);

// kaldi's triangular mel filters over the padded_window_size/2 FFT bins: [num_mel_bins, padded/2].
torch::Tensor kaldi_mel_banks(int64_t num_mel_bins, int64_t padded_window_size, double sample_frequency,
                              double low_freq, double high_freq);

}  // namespace cb
