// The device `chatbridge-chat` runs on (terminal, one-shot and server alike): `--device cpu|cuda|cuda:N`,
// or the demo's `--gpu-id N` (demo.py moves the model to 'cuda:<gpu-id>'). Eval and train keep
// `run.device`. The choice is checked before the model is built, so a missing GPU costs one clear line
// instead of a LibTorch backtrace after the weights have loaded.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>

namespace cb {

// "cpu", "cuda" (= cuda:0) or "cuda:N"; `gpu_id` (set: the demo's --gpu-id) means cuda:<gpu_id> and
// excludes an explicit `device`. Throws cb::Error when the spelling is wrong, LibTorch has no CUDA,
// or N is not a visible device.
torch::Device chat_device(const std::optional<std::string>& device, const std::optional<int>& gpu_id);

}  // namespace cb
