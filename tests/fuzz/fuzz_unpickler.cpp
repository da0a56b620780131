// Arbitrary bytes as a torch.save object pickle (data.pkl): every storage it names is a zero-filled
// tensor of the size it declares (up to 1 MiB), so tensor rebuilding - offsets, sizes, strides - is
// exercised too, and each rebuilt tensor (of sane size) is read in full. Only cb::Error may come out.
#include <torch/torch.h>

#include <cstddef>
#include <cstdint>

#include "framework/checkpoint/torch_load.h"
#include "framework/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    cb::pickle::Arena arena;
    size_t pos = 0;
    const auto* root = cb::unpickle_torch(arena, data, size, pos, "fuzz.pkl",
                                          [](const std::string& key, torch::ScalarType dtype, int64_t numel) {
                                            if (numel > (int64_t(1) << 20) / int64_t(c10::elementSize(dtype)))
                                              cb::fail("storage '{}' too large", key);
                                            return torch::zeros({numel}, torch::TensorOptions().dtype(dtype));
                                          });
    for (const auto& [path, t] : cb::tensors_in(root))
      if (t.defined() && t.numel() <= (int64_t(1) << 22)) t.sum();  // expand() can make huge views
  } catch (const cb::Error&) {
  }
  return 0;
}
