// Which device a process computes on: the spelling of `run.device` and the apps' --device flags, and the
// GPU of each rank under a launcher.
#pragma once
#include <torch/torch.h>

#include <string>
#include <string_view>

namespace cb {

// "cpu", "cuda" (= cuda:0) or "cuda:N" as given by `what` (a flag or config key, named in errors).
// Throws cb::Error when the spelling is wrong, LibTorch has no CUDA, no CUDA device is visible, or N
// is not a visible device.
torch::Device parse_device(const std::string& spec, std::string_view what);

// The device of a training or evaluation process for `run.device`: "cuda" without an index means this
// process's own GPU, cuda:<LOCAL_RANK>, as torchrun's workers use (the original's init_distributed_mode);
// "cuda:N" is taken as written. That device becomes the current CUDA device (NCCL's communicators and
// the caching allocator follow it). Where no CUDA device exists the CPU is used with one warning: the
// original's configs say cuda and must still run here.
torch::Device run_device(const std::string& spec, int local_rank, std::string_view what = "run.device");

}  // namespace cb
