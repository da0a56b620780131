// The portable family of linear_family.h: one element at a time, for any CPU, and the SIMD families'
// fallback where their instructions are missing (CHATBRIDGE_SIMD=scalar selects it).
#include "framework/kernels/linear_family.h"

namespace cb::kernels::family {
namespace {

using F = WeightFormat;

template <F Fmt, int NM>
void dot_scalar(const uint8_t* w, const float* const* x, int64_t cols, float* out) {
  float acc[NM] = {};
  if constexpr (Fmt == F::q8_0 || Fmt == F::q4_0) {
    for (int64_t b = 0; b < cols / kQuantBlock; ++b, w += block_bytes(Fmt)) {
      float q[32];
      block_values<Fmt>(w, q);
      const float d = half_bits_to_float(w);
      for (int i = 0; i < NM; ++i) {
        const float* xi = x[i] + b * kQuantBlock;
        float s = 0.f;
        for (int j = 0; j < 32; ++j) s += q[j] * xi[j];
        acc[i] += d * s;
      }
    }
  } else {
    for (int64_t c = 0; c < cols; ++c) {
      const float wc = dense_at<Fmt>(w, c);
      for (int i = 0; i < NM; ++i) acc[i] += wc * x[i][c];
    }
  }
  for (int i = 0; i < NM; ++i) out[i] = acc[i];
}

template <F Fmt>
void dequant_scalar(const uint8_t* w, int64_t cols, float* out) {
  if constexpr (Fmt == F::q8_0 || Fmt == F::q4_0) {
    for (int64_t b = 0; b < cols / kQuantBlock; ++b, w += block_bytes(Fmt), out += kQuantBlock) {
      float q[32];
      block_values<Fmt>(w, q);
      const float d = half_bits_to_float(w);
      for (int j = 0; j < 32; ++j) out[j] = d * q[j];
    }
  } else {
    for (int64_t c = 0; c < cols; ++c) out[c] = dense_at<Fmt>(w, c);
  }
}

}  // namespace

FormatKernels scalar_kernels(WeightFormat f) {
  return for_format(f, []<F Fmt>() -> FormatKernels {
    return {{dot_scalar<Fmt, 1>, dot_scalar<Fmt, 2>, dot_scalar<Fmt, 3>, dot_scalar<Fmt, 4>},
            dequant_scalar<Fmt>,
            dot_row<dot_scalar<Fmt, 1>>};
  });
}

}  // namespace cb::kernels::family
