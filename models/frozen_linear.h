// The frozen LLaMA's bias-free projections (attention, MLP, lm_head) with their weight in any storage
// format of framework/kernels/weight_format.h: fp32, bf16, fp16, q8_0, q4_0.
//
// The state-dict name stays `weight` (HF checkpoints, golden fixtures and ChatBridge checkpoints load
// unchanged): a dense format holds W [out, in] in its dtype, a block format the packed uint8
// [out, row_bytes] storage. On AVX-512 CPUs a block-format layer's own storage lies in row panels
// (weight_format.h); packed() says so and packed_rows() gives the file layout. The forward is
// kernels::linear: on the CPU x is taken in fp32 whatever the storage (no LibTorch bf16 GEMM, which
// runs at a few GFLOP/s on AVX2), on CUDA in x's dtype. Gradients reach x through
// kernels::linear_input_grad; W never gets one. A weight that trains (stage 0's llama_causal_lm trains
// every parameter) must be fp32 and goes through torch's linear.
#pragma once
#include <torch/torch.h>
#include <optional>
#include <string>

#include "framework/checkpoint/state_dict.h"
#include "framework/kernels/weight_format.h"

namespace cb {

struct FrozenLinearOptions {
  FrozenLinearOptions(int64_t in, int64_t out) : in(in), out(out) {}
  int64_t in, out;
  kernels::WeightFormat format = kernels::WeightFormat::f32;
  // Fresh weights as torch::nn::Linear draws them (same RNG draws, then packed); false leaves the
  // storage uninitialised, to be loaded (no fp32 copy of a large model on the way).
  bool init = true;
  // A packed tensor of this format handed to set_weight (a quantized file's) is used from the file's
  // memory mapping (no copy: ~1 s load, pages shared with the page cache); false copies it into the
  // layer's own storage, which decoded 1.3-2x faster at 13B here (model.llama_mmap, docs/precision.md).
  bool map_packed = false;
};

struct FrozenLinearImpl : torch::nn::Module {
  explicit FrozenLinearImpl(const FrozenLinearOptions& o);
  // x [..., in] -> [..., out]: fp32 on the CPU, x's dtype elsewhere.
  torch::Tensor forward(const torch::Tensor& x);

  // Replaces W by `w`: a dense [out, in] tensor of any floating dtype (packed or cast into this
  // format), or, for a block format, its packed uint8 [out, row_bytes] storage (copied, or with
  // map_packed taken as is, e.g. an mmap-backed tensor of a quantized file). A source inside a file
  // mapping gives back its pages slice by slice as they are copied. `source` names the tensor in errors.
  void set_weight(const torch::Tensor& w, const std::string& source);

  kernels::WeightFormat format() const;  // a dense format follows the weight's dtype (module.to(dtype))
  kernels::PackedWeight packed() const;
  // The block format's storage as files hold it (rows): `weight` itself, or a copy when it lies in panels.
  torch::Tensor packed_rows() const;

  // Block formats keep their uint8 storage when the module is cast (devices still move).
  using torch::nn::Module::to;
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Dtype dtype, bool non_blocking = false) override;

  torch::Tensor weight;
  int64_t in_features, out_features;

 private:
  kernels::WeightFormat block_format_;  // the format when it is a block format (else unused)
  // How the block format's storage lies: panels only in the layer's own CPU memory, never a given tensor.
  kernels::BlockLayout layout_ = kernels::BlockLayout::rows;
  bool map_packed_;
  bool stored_as_given_ = false;  // `weight` is a tensor set_weight was given (maybe a read-only mapping)
};
TORCH_MODULE(FrozenLinear);

// The forwards of layers that take the same input (a LLaMA layer's q/k/v projections, gate/up), equal to
// calling each; where the row kernels run (no gradient to record, CPU, at most kernels::kSmallBatchRows
// rows) the threads are handed all the layers' rows at once (kernels::linear_shared_input).
std::vector<torch::Tensor> forward_shared_input(const torch::Tensor& x, const std::vector<FrozenLinearImpl*>& layers);

// x·Wᵀ + b for an ordinary dense layer's weight (a torch::nn::Linear of the frozen ViT). Where no
// gradient is recorded (NoGradGuard, or neither x, W nor b asks for one) on the CPU with fp32 x and an
// fp32 or bf16 W, it runs kernels::linear: the LLaMA's GEMM, which on AVX-512 is ~2x OpenBLAS's AVX2
// sgemm and reads bf16 rows at fp32 speed (LibTorch's bf16 GEMM is ~4.5 GFLOP/s on AVX2). Otherwise
// F::linear, with a 16-bit W and b converted to x's dtype (differentiably) where x is fp32 on the CPU.
torch::Tensor dense_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias = {});

// The block format (q8_0 or q4_0) of `module`'s quantized FrozenLinear layers, if it has any: such a
// model serves inference only (FrozenLinearImpl::forward refuses a gradient through it).
std::optional<kernels::WeightFormat> quantized_format(const torch::nn::Module& module);
// Why training through a LLaMA in that block format is refused, and what to set instead.
std::string quantized_training_refusal(kernels::WeightFormat format);

// load_state_dict (framework/checkpoint/state_dict.h), except that the weights of `module`'s
// FrozenLinear layers are set with set_weight, so a dense checkpoint tensor lands in a quantized
// layer (packed on the way) and a packed one is used as stored.
LoadReport load_state_dict_into_frozen(torch::nn::Module& module, const StateDict& sd, bool strict,
                                       const std::string& source);

}  // namespace cb
