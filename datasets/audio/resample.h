// torchaudio.transforms.Resample(orig, new) with its defaults (sinc_interp_hann, lowpass_filter_width
// 6, rolloff 0.99): a gcd-reduced polyphase windowed-sinc kernel built in float64 and stored as
// float32, applied by a strided conv1d with the same zero padding and output length.
#pragma once
#include <torch/torch.h>

namespace cb {

class Resampler {
 public:
  Resampler(int64_t orig_freq, int64_t new_freq, int64_t lowpass_filter_width = 6, double rolloff = 0.99);
  // waveform [..., S] float -> [..., ceil(S·new/orig)] (unchanged when the rates are equal)
  torch::Tensor operator()(const torch::Tensor& waveform) const;

 private:
  int64_t orig_, new_;  // gcd-reduced rates
  int64_t width_ = 0;
  torch::Tensor kernel_;  // [new, 1, 2·width + orig] float32
};

}  // namespace cb
