// DevicePrefetcher on a CPU device: batches pass through untouched and in order; misuse is refused.
// (The CUDA side-stream path only compiles here: no GPU on this machine.)
#include <catch2/catch.hpp>

#include "framework/device_prefetch.h"

using namespace cb;

TEST_CASE("DevicePrefetcher on CPU: put/take hands the batch through, one at a time") {
  DevicePrefetcher prefetch(torch::kCPU);
  CHECK_FALSE(prefetch.active());
  CHECK_THROWS_WITH(prefetch.take(), Catch::Contains("before put"));
  Batch b;
  b.task = "ti";
  b.image = torch::arange(6, torch::kFloat).view({1, 6});
  b.text_input = {"a caption"};
  const void* pixels = b.image.data_ptr();
  prefetch.put(b);
  CHECK(prefetch.holds_batch());
  CHECK_THROWS_WITH(prefetch.put(b), Catch::Contains("twice"));
  auto out = prefetch.take();
  CHECK_FALSE(prefetch.holds_batch());
  CHECK(out.image.data_ptr() == pixels);  // no copy on the host
  CHECK(out.text_input == b.text_input);
  CHECK(out.task == "ti");
}
