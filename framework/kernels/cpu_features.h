// Which SIMD instruction sets the kernels may use, decided at run time. The build targets generic
// x86-64 (CMakeLists.txt), so a kernel for a newer instruction set is compiled with a function-level
// target attribute and called only when cpuid reports the set here; other CPUs build the scalar kernels.
#pragma once

namespace cb::kernels {

// What this CPU offers that our kernels use (all false on non-x86-64 builds).
struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false, avx512f = false, avx512vnni = false;
  bool intel = false;  // GenuineIntel: the panel kernels' prefetch depends on it (weight_format.h)
};

// Read once from cpuid.
const CpuFeatures& cpu_features();

// The widest instruction set the kernels may pick, from CHATBRIDGE_SIMD: "scalar" (every kernel takes
// its portable path, to compare against or to rule out a SIMD bug), "avx2" (no AVX-512), "avx512" (no
// AVX-512 VNNI), "avx512_vnni" or unset (no limit). Read once; any other value is an error.
enum class SimdLevel { scalar, avx2, avx512, avx512_vnni };
SimdLevel simd_limit();
// simd_limit() == SimdLevel::scalar.
bool simd_forced_scalar();

}  // namespace cb::kernels
