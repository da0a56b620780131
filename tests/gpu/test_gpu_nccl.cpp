// The process group (framework/distributed/process_group.h) on NCCL with world size 1 over a HashStore:
// every collective the trainer uses runs on CUDA tensors through ProcessGroupNCCL. Skipped without CUDA
// or when the build has no NCCL.
#include <catch2/catch.hpp>

#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include "framework/distributed/process_group.h"
#include "framework/error.h"
#include "tests/gpu/gpu_test.h"

using namespace cb;
using namespace cb::test;

TEST_CASE("gpu nccl: world size 1 process group, every collective on CUDA tensors") {
  const auto dev = cuda_or_skip("gpu nccl");
  dist::DistOptions opts;
  opts.backend = "nccl";
  opts.device = dev;
  std::shared_ptr<dist::ProcessGroup> pg;
  try {
    pg = dist::ProcessGroup::create(c10::make_intrusive<c10d::HashStore>(), 0, 1, 0, opts);
  } catch (const Error& e) {  // a CUDA LibTorch configured without nccl.h (framework/CMakeLists.txt)
    if (std::string(e.what()).find("without NCCL") == std::string::npos) throw;
    std::printf("SKIP gpu nccl: %s\n", e.what());
    std::exit(kSkipCode);
  }
  REQUIRE(pg->world_size() == 1);

  auto a = torch::arange(6, torch::TensorOptions().dtype(torch::kFloat).device(dev));
  auto b = torch::ones({2, 3}, torch::TensorOptions().dtype(torch::kLong).device(dev));
  const auto a0 = a.clone(), b0 = b.clone();
  pg->broadcast({a, b});
  CHECK(torch::equal(a, a0));
  CHECK(torch::equal(b, b0));

  pg->all_reduce_sum(a);
  CHECK(torch::equal(a, a0));
  auto wait = pg->all_reduce_sum_async(a);
  wait();
  CHECK(torch::equal(a, a0));

  CHECK(pg->all_reduce_mean(2.5) == 2.5);
  CHECK(pg->all_gather("rank zero") == std::vector<std::string>{"rank zero"});
  CHECK(pg->all_gather_json({{"step", 7}})[0].at("step") == 7);
  pg->barrier();
}
