#include "models/freeze.h"

#include <spdlog/spdlog.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "framework/error.h"

namespace cb {

void apply_frozen_precision(torch::nn::Module& model, const std::string& precision, const torch::Device& device,
                            const std::string& key) {
  torch::Dtype dtype;
  if (precision == "fp32") return;
  if (precision == "fp16") {
    if (!device.is_cuda()) {
      spdlog::info("{} fp16 needs CUDA; keeping fp32 on {}", key, device.str());
      return;
    }
    dtype = torch::kHalf;
  } else if (precision == "bf16") {
    dtype = torch::kBFloat16;
  } else {
    fail("{}: '{}' is not one of fp16, bf16, fp32", key, precision);
  }
  // convert_weights_to_fp16: Conv/Linear weights and biases only.
  torch::NoGradGuard no_grad;
  for (const auto& m : model.modules(/*include_self=*/false)) {
    if (!m->as<torch::nn::LinearImpl>() && !m->as<torch::nn::Conv2dImpl>() && !m->as<torch::nn::Conv1dImpl>()) continue;
    for (auto& p : m->named_parameters(/*recurse=*/false)) p.value().set_data(p.value().to(dtype));
  }
#if defined(__GLIBC__)
  // The fp32 weights just replaced go back to the system: glibc keeps freed blocks below its mmap
  // threshold in its arenas, ~1 GiB of a fresh ViT-G's (bench/RESULTS.md).
  if (device.is_cpu()) malloc_trim(0);
#endif
}

}  // namespace cb
