// One decode position of the LLaMA on the CPU with its kernels called on plain buffers: no LibTorch op
// between them.
//
// Why: the layers' modules spend ~70 LibTorch ops a layer on a decode step (views, transposes, dtype
// no-ops, the cache's narrows and copies, adds), each a dispatch and often an output tensor. At one
// position that cost ~0.13 ms of a ~2.3 ms medium q4_0 token, with the second core idle meanwhile. Here a
// layer is RMSNorm, the q/k/v row kernels, RoPE, the cache writes, the attention kernel, o_proj, the
// residual add, RMSNorm, gate/up, SiLU · up, down and the residual add, on buffers of the calling
// thread; the LibTorch ops left are the attention kernel's output, SiLU and the cache slots' new views.
// The result is the same bits as the modules' forward (the same kernels on the same values:
// test_llama_decode_step).
#pragma once
#include <torch/torch.h>

#include "models/llama.h"

namespace cb {

// Whether llama_decode_step takes this forward: no autograd, a CPU model, a cache that every layer has
// filled, 1 to kSmallBatchRows (linear.h) rows of one new position each (input_ids [B,1] int64 or
// inputs_embeds [B,1,D] float32), no padding in attention_mask, position_ids [B,1] int64 or none, no
// labels, an even head size; CPU tensors throughout.
bool llama_decode_step_applies(const LlamaModelImpl& model, const LlamaInputs& in);

// LlamaModel::forward for such a forward: the final-normed hidden states [B,1,D] float32; the cache is
// extended by the position as the modules extend it. Where llama_decode_step_applies does not hold: an
// undefined tensor, nothing touched (the caller runs the modules).
torch::Tensor llama_decode_step(LlamaModelImpl& model, const LlamaInputs& in);

}  // namespace cb
