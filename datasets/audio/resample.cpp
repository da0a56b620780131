#include "datasets/audio/resample.h"

#include <cmath>
#include <numeric>

#include "framework/error.h"

namespace cb {

Resampler::Resampler(int64_t orig_freq, int64_t new_freq, int64_t lowpass_filter_width, double rolloff) {
  if (orig_freq <= 0 || new_freq <= 0) fail("resample: rates must be positive, got {} -> {}", orig_freq, new_freq);
  if (lowpass_filter_width <= 0) fail("resample: lowpass_filter_width must be positive");
  const int64_t g = std::gcd(orig_freq, new_freq);
  orig_ = orig_freq / g;
  new_ = new_freq / g;
  if (orig_ == new_) return;

  const double base_freq = double(std::min(orig_, new_)) * rolloff;
  width_ = int64_t(std::ceil(double(lowpass_filter_width * orig_) / base_freq));
  const double lw = double(lowpass_filter_width);
  auto idx = torch::arange(-width_, width_ + orig_, torch::kDouble).view({1, 1, -1}) / orig_;
  // The output phase offsets −j/new are computed in float32 (integer arange / int in the original)
  // before joining the float64 grid.
  auto phase = (torch::arange(0, -new_, -1, torch::kLong).view({-1, 1, 1}) / new_).to(torch::kFloat);
  auto t = (phase + idx) * base_freq;
  t = t.clamp(-lw, lw);
  auto window = torch::cos(t * M_PI / lw / 2).pow(2);
  t = t * M_PI;
  auto kernels = torch::where(t == 0, torch::ones_like(t), t.sin() / t);
  kernels = kernels * (window * (base_freq / double(orig_)));
  kernel_ = kernels.to(torch::kFloat);  // [new, 1, 2·width + orig]
}

torch::Tensor Resampler::operator()(const torch::Tensor& waveform) const {
  if (orig_ == new_) return waveform;
  auto shape = waveform.sizes().vec();
  const int64_t length = shape.back();
  auto x = waveform.reshape({-1, length});  // [N,S]
  const int64_t n = x.size(0);
  x = torch::constant_pad_nd(x, {width_, width_ + orig_}, 0);
  auto y = torch::conv1d(x.unsqueeze(1), kernel_.to(x.scalar_type()), {}, orig_);  // [N,new,frames]
  y = y.transpose(1, 2).reshape({n, -1});
  const auto target = int64_t(std::ceil(double(new_) * double(length) / double(orig_)));
  y = y.narrow(1, 0, std::min(target, y.size(1)));
  shape.back() = y.size(1);
  return y.view(shape);
}

}  // namespace cb
