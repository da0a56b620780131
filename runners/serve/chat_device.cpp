#include "runners/serve/chat_device.h"

#include <spdlog/spdlog.h>

#include <charconv>

#include "framework/error.h"
#include "models/eva_vit.h"

namespace cb {

torch::Device chat_device(const std::optional<std::string>& device, const std::optional<int>& gpu_id) {
  if (device && gpu_id) fail("--device {} and --gpu-id {} exclude each other", *device, *gpu_id);
  if (gpu_id && *gpu_id < 0) fail("--gpu-id {}: expected a CUDA device index >= 0", *gpu_id);
  const std::string spec = gpu_id ? "cuda:" + std::to_string(*gpu_id) : device.value_or("cpu");
  if (spec == "cpu") return torch::kCPU;
  int index = 0;
  if (spec != "cuda") {
    const std::string_view n = spec.starts_with("cuda:") ? std::string_view(spec).substr(5) : std::string_view();
    const auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), index);
    if (n.empty() || ec != std::errc() || end != n.data() + n.size() || index < 0)
      fail("--device '{}': expected cpu, cuda or cuda:N", spec);
  }
  if (!at::hasCUDA()) fail("--device {}: this LibTorch build has no CUDA support (use --device cpu)", spec);
  const auto count = static_cast<int>(torch::cuda::device_count());
  if (count == 0) fail("--device {}: no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)", spec);
  if (index >= count) fail("--device {}: only {} CUDA device(s) visible (cuda:0..cuda:{})", spec, count, count - 1);
  return {torch::kCUDA, static_cast<c10::DeviceIndex>(index)};
}

void place_chat_model(ChatBridgeImpl& model, const torch::Device& device) {
  model.to(device);
  if (device.is_cuda()) apply_vit_precision(model.visual_encoder, model.config().vit_precision, device);
  spdlog::info("chat model on {}", device.str());
}

}  // namespace cb
