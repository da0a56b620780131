#include "runners/serve/chat_device.h"

#include "framework/device.h"
#include "framework/error.h"

namespace cb {

torch::Device chat_device(const std::optional<std::string>& device, const std::optional<int>& gpu_id) {
  if (device && gpu_id) fail("--device {} and --gpu-id {} exclude each other", *device, *gpu_id);
  if (gpu_id && *gpu_id < 0) fail("--gpu-id {}: expected a CUDA device index >= 0", *gpu_id);
  return parse_device(gpu_id ? "cuda:" + std::to_string(*gpu_id) : device.value_or("cpu"), "--device");
}

}  // namespace cb
