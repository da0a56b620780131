// Process start-up shared by every binary: thread count and a report of the BLAS actually loaded.
#pragma once
#include <string>

namespace cb {

// Sets LibTorch intra-op (and OpenMP/BLAS) threads; requested <= 0 means "the cores available".
int configure_threads(int requested);

// Describes the BLAS that provides sgemm_ in this process, e.g. "OpenBLAS 0.3.21 (openmp) at /usr/lib/...".
std::string blas_backend();

// configure_threads + log both; warns loudly when reference BLAS is in use.
void init_runtime(int threads);

}  // namespace cb
