// numpy's float64 summation order (pairwise with 8 accumulators), so means of per-item scores agree
// bit for bit with the original's np.mean.
#pragma once
#include <span>

namespace cb::metrics {

double numpy_sum(std::span<const double> a);
double numpy_mean(std::span<const double> a);  // numpy_sum / size; NaN for an empty span, as numpy

}  // namespace cb::metrics
