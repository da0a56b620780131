#include "framework/runtime.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <thread>

#include "framework/torch_compat.h"

#if AT_PARALLEL_OPENMP
#include <omp.h>
#endif

namespace cb {

int configure_threads(int requested) {
  int n = requested;
  if (n <= 0) {
    cpu_set_t set;
    n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : int(std::thread::hardware_concurrency());
    n = std::max(n, 1);
  }
  at::set_num_threads(n);
  return n;
}

std::string blas_backend() {
  void* sym = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info info{};
  std::string where = sym && dladdr(sym, &info) && info.dli_fname ? info.dli_fname : "unknown library";
  using ConfigFn = char* (*)();
  if (auto cfg = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config")))
    return std::string(cfg()) + " at " + where;  // "OpenBLAS 0.3.21 ... DYNAMIC_ARCH ... Haswell ..."
  // The pip wheels link MKL in statically, with its symbols hidden: only LibTorch knows.
  if (dlsym(RTLD_DEFAULT, "mkl_get_version") || at::globalContext().hasMKL()) return "MKL at " + where;
  if (!sym) return "none found (LibTorch's own kernels)";
  return "reference BLAS at " + where;
}

void single_threaded_ops() {
#if AT_PARALLEL_OPENMP
  at::internal::lazy_init_num_threads();  // else the first parallel op would restore the global count
  omp_set_num_threads(1);
#endif
}

void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

void init_runtime(int threads) {
  int n = configure_threads(threads);
  keep_freed_memory();
  auto blas = blas_backend();
  spdlog::info("LibTorch {} | intra-op threads {} | BLAS: {}", compat::torch_version(), n, blas);
  if (blas.rfind("reference", 0) == 0)
    spdlog::warn("reference BLAS is ~15x slower for matmuls: install libopenblas0-openmp (scripts/setup does)");
}

}  // namespace cb
