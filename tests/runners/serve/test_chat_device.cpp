// chatbridge-chat's --device / --gpu-id: the spellings, and a clear error (before any model loads) when
// LibTorch has no CUDA or the index is not a visible device. Which branch runs depends on the machine:
// without CUDA every cuda spelling must fail; with it, the last visible index works and the next fails.
#include <catch2/catch.hpp>

#include "framework/error.h"
#include "runners/serve/chat_device.h"
#include "runners/serve/chat_session.h"
#include "tests/runners/serve/chat_fixture.h"
#include "tests/support/make_media.h"

using namespace cb;
using Catch::Matchers::Contains;

TEST_CASE("chat device: cpu by default, wrong spellings and conflicting options refused") {
  CHECK(chat_device(std::nullopt, std::nullopt) == torch::Device(torch::kCPU));
  CHECK(chat_device("cpu", std::nullopt) == torch::Device(torch::kCPU));
  for (const std::string bad : {"gpu", "cuda:", "cuda:x", "cuda:-1", "cuda:1x", "CUDA", "cpu:0", ""})
    CHECK_THROWS_WITH(chat_device(bad, std::nullopt), "--device '" + bad + "': expected cpu, cuda or cuda:N");
  CHECK_THROWS_WITH(chat_device("cpu", 0), "--device cpu and --gpu-id 0 exclude each other");
  CHECK_THROWS_WITH(chat_device(std::nullopt, -1), "--gpu-id -1: expected a CUDA device index >= 0");
}

TEST_CASE("chat device: cuda spellings fail clearly without CUDA, or name the visible range") {
  const auto count = at::hasCUDA() ? static_cast<int>(torch::cuda::device_count()) : 0;
  if (count == 0) {
    const std::string why = at::hasCUDA() ? "no CUDA device is visible" : "this LibTorch build has no CUDA support";
    CHECK_THROWS_WITH(chat_device("cuda", std::nullopt), Contains("--device cuda: " + why));
    CHECK_THROWS_WITH(chat_device("cuda:0", std::nullopt), Contains("--device cuda:0: " + why));
    CHECK_THROWS_WITH(chat_device(std::nullopt, 0), Contains("--device cuda:0: " + why));  // the demo's --gpu-id 0
    return;
  }
  CHECK(chat_device("cuda", std::nullopt) == torch::Device(torch::kCUDA, 0));
  CHECK(chat_device(std::nullopt, count - 1) == torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(count - 1)));
  const auto over = "cuda:" + std::to_string(count);
  CHECK_THROWS_WITH(chat_device(over, std::nullopt), Contains("only " + std::to_string(count) + " CUDA device(s)"));
  CHECK_THROWS_WITH(chat_device(std::nullopt, count), Contains("only " + std::to_string(count) + " CUDA device(s)"));
}

TEST_CASE("chat on the chosen device: every parameter there, an answer from an upload on the CPU") {
  const auto count = at::hasCUDA() ? static_cast<int>(torch::cuda::device_count()) : 0;
  const auto device = count > 0 ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  test::TempDir dir;
  auto model = test::tiny_chat_model(dir.path);
  model->place(device);
  for (const auto& p : model->parameters()) REQUIRE(p.device() == device);
  for (const auto& b : model->buffers()) REQUIRE(b.device() == device);
  ChatSession chat(model);
  const int64_t s = model->config().image_size;
  chat.upload_image(torch::rand({3, s, s}));  // media arrive on the CPU, as decoded
  chat.ask("What is in the image?");
  ChatSettings settings;
  settings.do_sample = false;
  settings.max_new_tokens = 4;
  chat.answer(settings);  // a device mismatch anywhere on the way throws
  CHECK(chat.last_stats().generated_tokens >= 1);
}
