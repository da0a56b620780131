#include "framework/kernels/cpu_features.h"

#include <cstdlib>
#include <string_view>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "framework/error.h"

namespace cb::kernels {

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
#if defined(__x86_64__)
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.avx512f = __builtin_cpu_supports("avx512f");  // libgcc also checks that the OS saves the ZMM state
    f.avx512vnni = f.avx512f && __builtin_cpu_supports("avx512vnni");
    f.intel = __builtin_cpu_is("intel");
    // __builtin_cpu_supports knows no "f16c" in GCC 12: ask cpuid leaf 1 directly.
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    f.f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
#endif
    return f;
  }();
  return features;
}

SimdLevel simd_limit() {
  static const SimdLevel limit = [] {
    const char* env = std::getenv("CHATBRIDGE_SIMD");
    const std::string_view simd = env ? env : "";
    if (simd.empty() || simd == "avx512_vnni") return SimdLevel::avx512_vnni;
    if (simd == "avx512") return SimdLevel::avx512;
    if (simd == "avx2") return SimdLevel::avx2;
    if (simd == "scalar") return SimdLevel::scalar;
    fail("environment variable CHATBRIDGE_SIMD='{}': expected 'scalar', 'avx2', 'avx512', 'avx512_vnni' or unset",
         simd);
  }();
  return limit;
}

bool simd_forced_scalar() { return simd_limit() == SimdLevel::scalar; }

}  // namespace cb::kernels
