#include "runners/eval/metrics/numpy_sum.h"

#include <limits>

namespace cb::metrics {

// numpy's pairwise_sum: sequential below 8 items, 8 interleaved accumulators up to a block of 128,
// recursive halving (on multiples of 8) above.
double numpy_sum(std::span<const double> a) {
  const size_t n = a.size();
  if (n < 8) {
    double res = 0.;
    for (double v : a) res += v;
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (size_t j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (size_t j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return numpy_sum(a.first(n2)) + numpy_sum(a.subspan(n2));
}

double numpy_mean(std::span<const double> a) {
  if (a.empty()) return std::numeric_limits<double>::quiet_NaN();
  return numpy_sum(a) / double(a.size());
}

}  // namespace cb::metrics
