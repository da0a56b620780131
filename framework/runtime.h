// Process start-up shared by every binary: thread count and a report of the BLAS actually loaded.
#pragma once
#include <string>

namespace cb {

// Sets LibTorch intra-op (and OpenMP/BLAS) threads; requested <= 0 means "the cores available".
int configure_threads(int requested);

// Describes the BLAS that provides sgemm_ in this process, e.g. "OpenBLAS 0.3.21 ... USE_OPENMP Haswell ... at
// /usr/lib/..." (OpenBLAS names the kernels it chose).
std::string blas_backend();

// For a data worker thread: its LibTorch ops run on one thread, since a worker already owns one of
// the cores (at::set_num_threads would also resize the process-wide pools the model uses).
void single_threaded_ops();

// Keeps freed buffers of up to 32 MiB in the heap instead of returning each to the OS: samples
// allocate and free several MB each (decoded images, float copies), and with glibc's defaults every one
// is a fresh mmap, paying page faults on zeroed pages and, with worker threads, TLB shootdowns.
void keep_freed_memory();

// configure_threads + keep_freed_memory + log the threads and BLAS; warns loudly when reference BLAS
// is in use.
void init_runtime(int threads);

}  // namespace cb
