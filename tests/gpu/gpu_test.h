// Shared by the tests/gpu programs (label `gpu`): the CUDA device or a skip, batches moved to it, and the
// bounds a CUDA result must meet against the original's CPU reference (tests/golden/README.md).
#pragma once
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>

#include "framework/batch.h"
#include "framework/torch_compat.h"
#include "tests/support/golden.h"

namespace cb::test {

// ctest reports a test that exits with this code as skipped (SKIP_RETURN_CODE in tests/gpu/tests.cmake).
constexpr int kSkipCode = 77;

// The first CUDA device; without one, prints one SKIP line and ends the process with kSkipCode. ctest runs
// each Catch2 test case in a process of its own, so that skips exactly the calling case.
// fp32 stays fp32: TF32 off for cuBLAS and cuDNN (LibTorch lets cuDNN convolutions use TF32 by default,
// a 10-bit mantissa that the fp32 bounds below would not hold to).
inline torch::Device cuda_or_skip(const char* test) {
  if (!torch::cuda::is_available()) {
    std::printf("SKIP %s: no CUDA device (LibTorch %s)\n", test, compat::torch_version().c_str());
    std::fflush(stdout);
    std::exit(kSkipCode);
  }
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
  return {torch::kCUDA, 0};
}

inline Batch to_device(Batch b, torch::Device device) {
  for (auto* t : {&b.image, &b.audio})
    if (t->defined()) *t = t->to(device);
  return b;
}

namespace tol {
// fp32 on CUDA: the CPU bounds (cuBLAS/cuDNN sum in other orders, within the fixtures' own ~5e-7 noise).
constexpr Tol cuda_fp32 = module;
// fp16 weights under CUDA autocast (the original's vit_precision fp16 and fp16 Vicuna) against the fp32
// reference: fp16 keeps 11 significant bits (unit roundoff 4.9e-4); through a few blocks of matmuls,
// softmax and residual sums that grows to ~1e-3 of the largest value. 1 % of the largest |ref| leaves room
// for depth, not for a wrong result (a dropped bias or scale moves values by far more).
constexpr Tol cuda_fp16{1e-2, 1e-3};
// A mean cross-entropy over fp16 logits: the logits' error of cuda_fp16, averaged.
constexpr Tol cuda_fp16_loss{1e-2, 1e-2};
}  // namespace tol

}  // namespace cb::test
