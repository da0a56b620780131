// Building modules without storage: inside on_meta_device(), every tensor is created on the meta
// device (shape and dtype, no data), so constructing a 13B-parameter model costs neither memory nor
// initialisation time, and its named_parameters() give the exact names, shapes and trainability of
// the real one. LibTorch has no default-device context in C++ (Python's `with torch.device("meta")`):
// this puts the Meta key in the thread's dispatch set, and leaves out BackendSelect, which would
// otherwise route factory functions (empty, zeros, arange) back to the CPU by their options.
//
// A constructor that reads a value (`.item()`, `data_ptr()`) throws here; such a value must come from
// the config, not from a tensor.
#pragma once
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <utility>

namespace cb {

template <typename Build>
auto on_meta_device(Build&& build) {
  // The whole thread-local set is saved and restored: IncludeDispatchKeyGuard's undo is a key-set
  // difference, which keeps backend bits, so it would leave Meta behind for every later CPU op.
  auto keys = c10::impl::tls_local_dispatch_key_set();
  keys.included_ = keys.included_ | c10::DispatchKeySet(c10::DispatchKey::Meta);
  keys.excluded_ = keys.excluded_ | c10::DispatchKeySet(c10::DispatchKey::BackendSelect);
  c10::impl::ForceDispatchKeyGuard meta(keys);
  return std::forward<Build>(build)();
}

}  // namespace cb
