// Host-to-device copies of the next batch on a side stream, so that they overlap the current step's
// compute instead of queueing in front of it (pinned batches: run.pin_memory). Written against
// c10's device-generic Stream/Event API, so it builds with a CPU-only LibTorch; on a CPU device
// it hands batches through untouched.
#pragma once
#include <c10/core/Event.h>
#include <c10/core/Stream.h>
#include <torch/torch.h>

#include <optional>

#include "framework/batch.h"

namespace cb {

class DevicePrefetcher {
 public:
  explicit DevicePrefetcher(torch::Device device);
  bool active() const { return side_.has_value(); }  // a device with streams (CUDA)
  bool holds_batch() const { return pending_.has_value(); }
  // The side stream the copies run on (CUDA only): tests time the copies with events recorded on it.
  std::optional<c10::Stream> stream() const { return side_; }

  // Starts copying `b`'s image and audio to the device on the side stream. One batch at a time.
  void put(Batch b);
  // The batch put last, on the device; the current stream waits for its copies (no host wait).
  Batch take();

 private:
  torch::Device device_;
  std::optional<c10::Stream> side_;
  std::optional<c10::Event> copied_;
  std::optional<Batch> pending_;
};

}  // namespace cb
