// Every difference between LibTorch 1.13 (Debian 12) and 2.x (Debian trixie: 2.6) lives here.
// Callers use cb::compat::* and never test TORCH_VERSION themselves.
#pragma once
#include <ATen/autocast_mode.h>
#include <c10/core/Event.h>
#include <torch/library.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <optional>
#include <string>
#include <utility>

#define CB_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// c10d: 2.0 split ProcessGroup into a dispatching front and per-device Backends; ProcessGroupGloo/NCCL
// derive from ProcessGroup in 1.13 and from Backend in 2.x. Both expose the same collectives.
namespace c10d {
class ProcessGroup;
class Backend;
}  // namespace c10d

namespace cb::compat {

#if CB_TORCH_AT_LEAST(2, 0)
using C10dBackend = c10d::Backend;
#else
using C10dBackend = c10d::ProcessGroup;
#endif

inline std::string torch_version() { return TORCH_VERSION; }

// Handle to an autograd graph node (a leaf's gradient accumulator): std::shared_ptr<Node> through 2.x
// releases, c10::intrusive_ptr<Node> in newer ones (Debian sid's 2.14). Both have get() and ->.
using AutogradNodePtr = decltype(torch::autograd::impl::grad_accumulator(std::declval<const torch::Tensor&>()));

#if !CB_TORCH_AT_LEAST(2, 0)
// 1.13's CPU autocast leaves layer_norm out of its fp32 list, and the CPU kernel then refuses a bf16
// input (a conv's or linear's output) with fp32 parameters; 2.x's kernel takes mixed dtypes. Registers
// once what CUDA autocast does with layer_norm: input and parameters in fp32, an fp32 result.
inline void cpu_autocast_layer_norm_in_fp32() {
  static const auto* library = [] {
    auto* lib = new torch::Library(torch::Library::IMPL, "aten", c10::DispatchKey::AutocastCPU, __FILE__, __LINE__);
    lib->impl("layer_norm", [](const at::Tensor& x, at::IntArrayRef shape, const c10::optional<at::Tensor>& weight,
                               const c10::optional<at::Tensor>& bias, double eps, bool cudnn) {
      c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCPU);
      const auto fp32 = [](const c10::optional<at::Tensor>& t) {
        return t && t->defined() ? c10::optional<at::Tensor>(t->to(at::kFloat)) : t;
      };
      return at::layer_norm(x.to(at::kFloat), shape, fp32(weight), fp32(bias), eps, cudnn);
    });
    return lib;
  }();
  (void)library;
}
#endif

// CPU autocast switches: 2.4 replaced the per-device functions with device-typed ones.
inline void set_cpu_autocast(bool enabled, at::ScalarType dtype) {
#if CB_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(at::kCPU, enabled);
  at::autocast::set_autocast_dtype(at::kCPU, dtype);
#else
#if !CB_TORCH_AT_LEAST(2, 0)
  if (enabled) cpu_autocast_layer_norm_in_fp32();
#endif
  at::autocast::set_cpu_enabled(enabled);
  at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}

// CUDA autocast (fp16 by default), same split as the CPU switches.
inline void set_cuda_autocast(bool enabled) {
#if CB_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
#else
  at::autocast::set_enabled(enabled);
#endif
}

// Key of a parameter in torch::optim::Optimizer::state(): its TensorImpl, printed as a string in 1.13,
// the pointer itself in 2.x.
inline auto optimizer_state_key(const torch::Tensor& p) {
#if CB_TORCH_AT_LEAST(2, 0)
  return static_cast<void*>(p.unsafeGetTensorImpl());
#else
  return c10::guts::to_string(p.unsafeGetTensorImpl());
#endif
}

inline bool cpu_autocast_enabled() {
#if CB_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(at::kCPU);
#else
  return at::autocast::is_cpu_enabled();
#endif
}

inline bool cuda_autocast_enabled() {
#if CB_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(at::kCUDA);
#else
  return at::autocast::is_enabled();
#endif
}

// Milliseconds from `start` to `end`, two events recorded on one device with timing on
// (c10::EventFlag::BACKEND_DEFAULT). c10::Event gained elapsedTime in 2.x (present in 2.6, the oldest 2.x
// checked here); 1.13 has no device-generic timer, so nullopt.
inline std::optional<double> event_elapsed_ms(const c10::Event& start, const c10::Event& end) {
#if CB_TORCH_AT_LEAST(2, 6)
  return start.elapsedTime(end);
#else
  return std::nullopt;
#endif
}

// A c10d::TCPStore (passed as `TCPStore`, so that this header needs no c10d include): 2.4 made libuv
// the store's default server, and a LibTorch built without libuv (Debian's 2.6) refuses it ("use_libuv
// was requested but PyTorch was build without libuv support"); the classic server then starts instead,
// which is all 1.13 has. Clients speak the same protocol to either.
template <class TCPStore, class Options>
c10::intrusive_ptr<TCPStore> make_tcp_store(const std::string& host, Options opts) {
#if CB_TORCH_AT_LEAST(2, 4)
  try {
    return c10::make_intrusive<TCPStore>(host, opts);
  } catch (const c10::Error& e) {
    if (!opts.useLibUV || std::string(e.what()).find("libuv") == std::string::npos) throw;
    opts.useLibUV = false;
  }
#endif
  return c10::make_intrusive<TCPStore>(host, opts);
}

// Fused attention exists from 2.0 on; 1.13 gets the explicit softmax(QK^T)V.
// q,k,v: [B,H,L,D]; mask: additive, broadcastable to [B,H,Lq,Lk] (or undefined).
inline torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& mask, double scale) {
#if CB_TORCH_AT_LEAST(2, 1)
  return at::scaled_dot_product_attention(q, k, v, mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt, 0.0,
                                          false, scale);
#else
  auto s = torch::matmul(q * scale, k.transpose(-2, -1));
  if (mask.defined()) s = s + mask;
  return torch::matmul(torch::softmax(s, -1), v);
#endif
}

}  // namespace cb::compat
