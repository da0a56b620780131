#include "framework/kernels/weight_memory.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "framework/error.h"

namespace cb::kernels {

torch::Tensor empty_weight_storage(at::IntArrayRef sizes, torch::ScalarType dtype) {
  constexpr size_t kHuge = size_t{2} << 20;
  const auto options = torch::TensorOptions().dtype(dtype);
  const size_t bytes = static_cast<size_t>(c10::multiply_integers(sizes)) * c10::elementSize(dtype);
  if (bytes < kHuge) return torch::empty(sizes, options);
  // Over-map by one huge page, then keep the aligned middle.
  const size_t len = (bytes + kHuge - 1) / kHuge * kHuge;
  void* raw = ::mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) fail("weight storage of {} bytes: mmap failed: {}", bytes, std::strerror(errno));
  auto* base = static_cast<uint8_t*>(raw);
  auto* start = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(base) + kHuge - 1) & ~(kHuge - 1));
  if (start > base) ::munmap(base, static_cast<size_t>(start - base));
  if (const size_t tail = kHuge - static_cast<size_t>(start - base)) ::munmap(start + len, tail);
  ::madvise(start, len, MADV_HUGEPAGE);  // advice: EINVAL where THP is compiled out, and then 4 KB pages
  return torch::from_blob(
      start, sizes, [len](void* p) { ::munmap(p, len); }, options);
}

torch::Tensor copy_to_weight_storage(const torch::Tensor& t) {
  return empty_weight_storage(t.sizes(), t.scalar_type()).copy_(t);
}

}  // namespace cb::kernels
