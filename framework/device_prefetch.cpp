#include "framework/device_prefetch.h"

#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include "framework/error.h"

namespace cb {

DevicePrefetcher::DevicePrefetcher(torch::Device device) : device_(device) {
  if (device.is_cuda()) side_ = c10::impl::VirtualGuardImpl(device.type()).getStreamFromGlobalPool(device);
}

void DevicePrefetcher::put(Batch b) {
  if (pending_) fail("DevicePrefetcher: put() twice without take()");
  if (side_) {
    // Pinned host buffers stay reserved until their copy is done (LibTorch's host allocator records
    // the copy), so nothing has to wait here.
    c10::StreamGuard on_side(*side_);
    for (auto* t : {&b.image, &b.audio})
      if (t->defined()) *t = t->to(device_, /*non_blocking=*/true);
    copied_.emplace(device_.type());
    copied_->record(*side_);
  }
  pending_ = std::move(b);
}

Batch DevicePrefetcher::take() {
  if (!pending_) fail("DevicePrefetcher: take() before put()");
  Batch b = std::move(*pending_);
  pending_.reset();
  if (side_) {
    const auto compute = c10::impl::VirtualGuardImpl(device_.type()).getStream(device_);
    copied_->block(compute);
    // Memory made on the side stream and used on the compute stream: the caching allocator must not
    // hand it out again before the compute stream is done with it.
    for (auto* t : {&b.image, &b.audio})
      if (t->defined()) t->record_stream(compute);
    copied_.reset();
  }
  return b;
}

}  // namespace cb
