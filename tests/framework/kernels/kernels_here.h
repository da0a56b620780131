// The kernel families this CPU runs (scalar always; AVX2, AVX-512 and AVX-512 VNNI where cpuid has them),
// for the kernel tests to run each one.
#pragma once
#include <vector>

#include "framework/kernels/linear.h"

namespace cb::test {

inline std::vector<kernels::LinearKernel> kernels_here() {
  std::vector<kernels::LinearKernel> ks;
  for (const auto k : {kernels::LinearKernel::scalar, kernels::LinearKernel::avx2, kernels::LinearKernel::avx512,
                       kernels::LinearKernel::avx512_vnni})
    if (kernels::linear_kernel_available(k)) ks.push_back(k);
  return ks;
}

}  // namespace cb::test
