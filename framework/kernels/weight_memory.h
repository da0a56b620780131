// Memory for the frozen LLM's large weights on the CPU.
//
// Decode streams every weight once per token, so it runs at the memory's read bandwidth only when the
// page walks keep up: on 4 KB pages a 13B model's page tables (~28 MB) no longer fit the caches, and
// the same bytes read ~1.3x faster on 2 MB pages (bench/RESULTS.md). Transparent huge pages are often
// `madvise`-only, so the region is asked for explicitly; where the kernel gives none it still works.
#pragma once
#include <torch/torch.h>

namespace cb::kernels {

// Uninitialised CPU storage of `sizes` x `dtype`. From 2 MB up: 2 MB-aligned anonymous memory marked
// MADV_HUGEPAGE (freed with the tensor's storage); below that, torch::empty.
torch::Tensor empty_weight_storage(at::IntArrayRef sizes, torch::ScalarType dtype);

// A copy of CPU tensor t in empty_weight_storage (torch's own allocations get 4 KB pages).
torch::Tensor copy_to_weight_storage(const torch::Tensor& t);

}  // namespace cb::kernels
