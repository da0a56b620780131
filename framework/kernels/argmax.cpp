#include "framework/kernels/argmax.h"

#include <limits>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "framework/error.h"

namespace cb::kernels {
namespace {

// Two passes over a row: its maximum ignoring NaNs (and whether it has one), then the first index that
// holds the maximum (or a NaN). Ties and ±0 resolve to the first, as torch's argmax.
struct RowMax {
  float max = -std::numeric_limits<float>::infinity();
  bool nan = false;
};

// Folds x[begin, end) into r.
void fold_max(const float* x, int64_t begin, int64_t end, RowMax& r) {
  for (int64_t i = begin; i < end; ++i) {
    r.max = x[i] > r.max ? x[i] : r.max;
    r.nan |= x[i] != x[i];
  }
}

// The first index in [begin, V) that holds r's maximum, or a NaN where the row has one; V if none does.
int64_t first_hit(const float* x, int64_t begin, int64_t V, const RowMax& r) {
  for (int64_t i = begin; i < V; ++i)
    if (r.nan ? x[i] != x[i] : x[i] == r.max) return i;
  return V;
}

int64_t row_argmax_scalar(const float* x, int64_t V) {
  RowMax r;
  fold_max(x, 0, V, r);
  return first_hit(x, 0, V, r);
}

#if defined(__x86_64__)
[[gnu::target("avx2")]] int64_t row_argmax_avx2(const float* x, int64_t V) {
  __m256 m4[4];
  for (auto& m : m4) m = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256 nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= V; i += 32)
    for (int k = 0; k < 4; ++k) {
      const __m256 v = _mm256_loadu_ps(x + i + 8 * k);
      m4[k] = _mm256_max_ps(v, m4[k]);  // a NaN v yields the second operand: NaNs are left out
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_max_ps(_mm256_max_ps(m4[0], m4[1]), _mm256_max_ps(m4[2], m4[3])));
  RowMax r;
  r.nan = _mm256_movemask_ps(nan) != 0;
  fold_max(lanes, 0, 8, r);
  fold_max(x, i, V, r);
  const __m256 mv = _mm256_set1_ps(r.max);
  for (i = 0; i + 8 <= V; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const int hit = _mm256_movemask_ps(r.nan ? _mm256_cmp_ps(v, v, _CMP_UNORD_Q) : _mm256_cmp_ps(v, mv, _CMP_EQ_OQ));
    if (hit) return i + __builtin_ctz(static_cast<unsigned>(hit));
  }
  return first_hit(x, i, V, r);
}
#endif

}  // namespace

bool argmax_applies(const torch::Tensor& scores) {
  return scores.device().is_cpu() && scores.scalar_type() == torch::kFloat && scores.dim() >= 1 && scores.size(-1) > 0;
}

torch::Tensor argmax(const torch::Tensor& scores, LinearKernel kernel) {
  if (!argmax_applies(scores)) fail("argmax: expected float32 CPU scores [..., V] with V > 0");
  if (!linear_kernel_available(kernel))
    fail("argmax: the {} kernel cannot run on this CPU", linear_kernel_name(kernel));
  auto row_argmax = row_argmax_scalar;
#if defined(__x86_64__)
  if (kernel != LinearKernel::scalar) row_argmax = row_argmax_avx2;
#endif
  const auto x = scores.contiguous();
  const int64_t V = x.size(-1), rows = x.numel() / V;
  auto out = torch::empty(x.sizes().slice(0, x.dim() - 1), torch::kLong);
  const float* p = x.data_ptr<float>();
  int64_t* o = out.data_ptr<int64_t>();
  for (int64_t r = 0; r < rows; ++r) o[r] = row_argmax(p + r * V, V);
  return out;
}

}  // namespace cb::kernels
