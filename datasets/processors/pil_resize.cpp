#include "datasets/processors/pil_resize.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "framework/error.h"

namespace cb {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // PIL's PRECISION_BITS for 8 bits per channel
constexpr double kBicubicSupport = 2.0;

// PIL's bicubic kernel (a = -0.5).
double bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// For each output index: the first input index, the tap count and the fixed-point weights.
struct Taps {
  int64_t ksize = 0;
  std::vector<int64_t> first, count;
  std::vector<int32_t> weights;  // [out, ksize]
};

// precompute_coeffs + normalize_coeffs_8bpc of Resample.c, over the whole input range.
Taps compute_taps(int64_t in_size, int64_t out_size) {
  const double scale = double(in_size) / double(out_size);
  const double filterscale = std::max(scale, 1.0);
  const double support = kBicubicSupport * filterscale;
  Taps t;
  t.ksize = int64_t(std::ceil(support)) * 2 + 1;
  t.first.resize(size_t(out_size));
  t.count.resize(size_t(out_size));
  t.weights.assign(size_t(out_size * t.ksize), 0);
  std::vector<double> k(size_t(t.ksize));
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = (double(xx) + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // (int) casts truncate toward zero, as in C.
    const int64_t xmin = std::max<int64_t>(int64_t(center - support + 0.5), 0);
    const int64_t xmax = std::min<int64_t>(int64_t(center + support + 0.5), in_size) - xmin;
    double ww = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      k[size_t(x)] = bicubic((double(x + xmin) - center + 0.5) * ss);
      ww += k[size_t(x)];
    }
    for (int64_t x = 0; x < xmax; ++x) {
      const double w = ww != 0.0 ? k[size_t(x)] / ww : k[size_t(x)];
      const double fixed = w * double(1 << kPrecisionBits);
      t.weights[size_t(xx * t.ksize + x)] = int32_t(w < 0 ? -0.5 + fixed : 0.5 + fixed);
    }
    t.first[size_t(xx)] = xmin;
    t.count[size_t(xx)] = xmax;
  }
  return t;
}

uint8_t clip8(int32_t v) { return uint8_t(std::clamp(v >> kPrecisionBits, 0, 255)); }

// Integer sums, so the order of the additions (threads, SIMD lanes) cannot change PIL's result.
constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);
constexpr int64_t kGrain = 16;  // output rows or columns per at::parallel_for task

// acc[j] += src[j] * k: the vertical pass runs along whole rows, which vectorises (AVX2 when the CPU
// has it, the build targeting plain x86-64).
[[gnu::target_clones("avx2", "default")]] void accumulate_row(const uint8_t* src, int32_t k, int64_t n, int32_t* acc) {
  for (int64_t j = 0; j < n; ++j) acc[j] += int32_t(src[j]) * k;
}

// Vertical pass over `in` [in_len, inner] -> [out_len, inner].
torch::Tensor resample_rows(const torch::Tensor& in, int64_t out_len) {
  const int64_t in_len = in.size(0), inner = in.size(1);
  const Taps t = compute_taps(in_len, out_len);
  auto out = torch::empty({out_len, inner}, torch::kUInt8);
  const uint8_t* src = in.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  at::parallel_for(0, out_len, kGrain, [&](int64_t begin, int64_t end) {
    std::vector<int32_t> acc(static_cast<size_t>(inner));
    for (int64_t yy = begin; yy < end; ++yy) {
      std::fill(acc.begin(), acc.end(), kHalf);
      const int32_t* k = &t.weights[size_t(yy * t.ksize)];
      const uint8_t* first = src + t.first[size_t(yy)] * inner;
      for (int64_t y = 0; y < t.count[size_t(yy)]; ++y) accumulate_row(first + y * inner, k[y], inner, acc.data());
      for (int64_t j = 0; j < inner; ++j) dst[yy * inner + j] = clip8(acc[size_t(j)]);
    }
  });
  return out;
}

// Horizontal pass of C-channel pixels: `in` [rows, in_len, C] -> [rows, out_len, C]. C known at
// compile time keeps the channel sums in registers, as PIL's per-channel-count loops do.
template <int64_t C>
void resample_columns(const uint8_t* src, int64_t rows, int64_t in_len, const Taps& t, int64_t out_len, uint8_t* dst) {
  at::parallel_for(0, rows, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      for (int64_t xx = 0; xx < out_len; ++xx) {
        const int32_t* k = &t.weights[size_t(xx * t.ksize)];
        const uint8_t* p = src + (r * in_len + t.first[size_t(xx)]) * C;
        int32_t acc[C];
        std::fill(acc, acc + C, kHalf);
        for (int64_t x = 0; x < t.count[size_t(xx)]; ++x)
          for (int64_t c = 0; c < C; ++c) acc[c] += int32_t(p[x * C + c]) * k[x];
        for (int64_t c = 0; c < C; ++c) dst[(r * out_len + xx) * C + c] = clip8(acc[c]);
      }
  });
}

torch::Tensor resample_columns(const torch::Tensor& in, int64_t out_len) {
  const int64_t rows = in.size(0), in_len = in.size(1), c = in.size(2);
  const Taps t = compute_taps(in_len, out_len);
  auto out = torch::empty({rows, out_len, c}, torch::kUInt8);
  const uint8_t* src = in.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  switch (c) {
    case 1: resample_columns<1>(src, rows, in_len, t, out_len, dst); break;
    case 3: resample_columns<3>(src, rows, in_len, t, out_len, dst); break;
    case 4: resample_columns<4>(src, rows, in_len, t, out_len, dst); break;
    default:  // other channel counts: one channel at a time
      for (int64_t ch = 0; ch < c; ++ch)
        out.select(2, ch).copy_(resample_columns(in.select(2, ch).unsqueeze(2).contiguous(), out_len).squeeze(2));
  }
  return out;
}

}  // namespace

torch::Tensor pil_resize_bicubic(const torch::Tensor& image, int64_t out_h, int64_t out_w) {
  if (image.dim() != 3 || image.scalar_type() != torch::kUInt8)
    fail("pil_resize_bicubic: expected an [H, W, C] uint8 image, got {} {}", c10::str(image.sizes()),
         std::string(image.dtype().name()));
  if (out_h <= 0 || out_w <= 0) fail("pil_resize_bicubic: output size {}x{} must be positive", out_w, out_h);
  auto img = image.contiguous();
  const int64_t h = img.size(0), w = img.size(1), c = img.size(2);
  // PIL skips a pass whose size does not change; horizontal first, then vertical.
  if (w != out_w) img = resample_columns(img, out_w);  // [h, out_w, c]
  if (h != out_h) img = resample_rows(img.view({h, out_w * c}), out_h).view({out_h, out_w, c});
  return w != out_w || h != out_h ? img : img.clone();
}

}  // namespace cb
