// DevicePrefetcher on CUDA (framework/device_prefetch.h): a pinned batch copied on the side stream arrives
// with its values, and the copy runs beside the step's kernels instead of after them (CUDA events).
// Skipped without a CUDA device.
#include <catch2/catch.hpp>

#include <c10/core/impl/VirtualGuardImpl.h>

#include <iostream>

#include "framework/device_prefetch.h"
#include "tests/gpu/gpu_test.h"

using namespace cb;
using namespace cb::test;

namespace {

// A batch as MetaLoader makes it with run.pin_memory: page-locked image and audio.
Batch pinned_batch(int64_t images) {
  Batch b;
  b.task = "tva";
  b.image = torch::randn({images, 3, 224, 224}).pin_memory();
  b.audio = torch::randn({images, 2, 1024, 128}).pin_memory();
  b.text_input.assign(images, "a caption");
  return b;
}

}  // namespace

TEST_CASE("gpu prefetch: a pinned batch arrives on the device with its values, text untouched") {
  const auto dev = cuda_or_skip("gpu prefetch values");
  DevicePrefetcher prefetch(dev);
  REQUIRE(prefetch.active());
  for (int round = 0; round < 3; ++round) {
    const Batch host = pinned_batch(4);
    REQUIRE(host.image.is_pinned());
    prefetch.put(host);
    const Batch got = prefetch.take();
    REQUIRE(got.image.device() == dev);
    REQUIRE(got.audio.device() == dev);
    CHECK(torch::equal(got.image.cpu(), host.image));
    CHECK(torch::equal(got.audio.cpu(), host.audio));
    CHECK(got.text_input == host.text_input);
    CHECK(got.task == host.task);
  }
}

TEST_CASE("gpu prefetch: the side-stream copy overlaps the step's kernels (CUDA events)") {
  const auto dev = cuda_or_skip("gpu prefetch overlap");
  const auto compute = c10::impl::VirtualGuardImpl(torch::kCUDA).getStream(dev);
  const auto a = torch::randn({4096, 4096}, torch::TensorOptions().device(dev)) / 64;  // keeps products O(1)
  const Batch host = pinned_batch(32);  // 19 MB of image + 34 MB of audio
  torch::cuda::synchronize();

  DevicePrefetcher prefetch(dev);
  const auto side = prefetch.stream();
  REQUIRE(side.has_value());
  REQUIRE(*side != compute);
  auto event = [] { return c10::Event(torch::kCUDA, c10::EventFlag::BACKEND_DEFAULT); };  // timing on
  auto step_begin = event(), step_end = event(), copy_begin = event(), copy_end = event();

  // The step's kernels are queued first, the copy after them: on one stream it could only start once
  // the step is done; on the side stream it runs while they do.
  step_begin.record(compute);
  auto x = a;
  for (int i = 0; i < 40; ++i) x = torch::mm(x, a);
  step_end.record(compute);
  copy_begin.record(*side);
  prefetch.put(host);
  copy_end.record(*side);
  const Batch got = prefetch.take();
  torch::cuda::synchronize();

  const auto copy_start = compat::event_elapsed_ms(step_begin, copy_begin);
  if (!copy_start) {
    std::printf("SKIP gpu prefetch overlap: LibTorch %s has no CUDA event timer\n", compat::torch_version().c_str());
    std::exit(kSkipCode);
  }
  const double copy_done = *compat::event_elapsed_ms(step_begin, copy_end);
  const double step_done = *compat::event_elapsed_ms(step_begin, step_end);
  const double mb = double(host.image.nbytes() + host.audio.nbytes()) / 1e6;
  std::cout << "[gpu] prefetch: " << mb << " MB copied from " << *copy_start << " to " << copy_done
            << " ms, the step ran from 0 to " << step_done << " ms (" << mb / (copy_done - *copy_start) << " GB/s)\n";
  CHECK(copy_done < step_done);  // finished while the step's kernels still ran
  CHECK(torch::equal(got.image.cpu(), host.image));
  CHECK(torch::isfinite(x).all().item<bool>());
}
