#include "framework/device.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <spdlog/spdlog.h>

#include "framework/error.h"
#include "framework/text/parse_number.h"

namespace cb {

namespace {

// "cpu" -> -1, "cuda" -> 0 unless `bare_cuda`, "cuda:N" -> N; anything else throws.
int parse_index(const std::string& spec, std::string_view what, int bare_cuda) {
  if (spec == "cpu") return -1;
  if (spec == "cuda") return bare_cuda;
  const auto index = spec.starts_with("cuda:") ? to_number<int>(std::string_view(spec).substr(5)) : std::nullopt;
  if (!index || *index < 0) fail("{} '{}': expected cpu, cuda or cuda:N", what, spec);
  return *index;
}

int visible_cuda_devices() { return at::hasCUDA() ? static_cast<int>(torch::cuda::device_count()) : 0; }

torch::Device checked_cuda(const std::string& spec, std::string_view what, int index, int count) {
  if (index >= count) fail("{} {}: only {} CUDA device(s) visible (cuda:0..cuda:{})", what, spec, count, count - 1);
  return {torch::kCUDA, static_cast<c10::DeviceIndex>(index)};
}

}  // namespace

torch::Device parse_device(const std::string& spec, std::string_view what) {
  const int index = parse_index(spec, what, 0);
  if (index < 0) return torch::kCPU;
  if (!at::hasCUDA()) fail("{} {}: this LibTorch build has no CUDA support (use cpu)", what, spec);
  const int count = visible_cuda_devices();
  if (count == 0) fail("{} {}: no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)", what, spec);
  return checked_cuda(spec, what, index, count);
}

torch::Device run_device(const std::string& spec, int local_rank, std::string_view what) {
  const int index = parse_index(spec, what, local_rank);
  if (index < 0) return torch::kCPU;
  const int count = visible_cuda_devices();
  if (count == 0) {
    static bool warned = false;
    if (!std::exchange(warned, true))
      spdlog::warn("{} is '{}' but {}: running on the CPU", what, spec,
                   at::hasCUDA() ? "no CUDA device is visible" : "this LibTorch build has no CUDA support");
    return torch::kCPU;
  }
  const auto device = checked_cuda(spec, what, index, count);
  c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->setDevice(device);
  return device;
}

}  // namespace cb
