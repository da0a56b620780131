// chatbridge-convert --quantize holds one input shard at a time: its peak RSS (the child's ru_maxrss,
// i.e. VmHWM) above the same command's on a tiny directory stays within one input shard plus one
// output shard, far below the whole checkpoint. And the command on quantized directories: converted,
// inspected, refused as --quantize input.
#include <sys/resource.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "framework/checkpoint/convert.h"
#include "framework/checkpoint/load.h"
#include "tests/framework/checkpoint/llama_dir.h"
#include "tests/support/process_util.h"
#include "tests/support/scratch_dir.h"

namespace fs = std::filesystem;

namespace {

struct ChildRun {
  int exit_code = -1;
  double peak_mb = 0;
  std::string log;
};

ChildRun convert(const std::vector<std::string>& args, const fs::path& log) {
  std::vector<std::string> argv{CHATBRIDGE_CONVERT_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = cb::test::spawn(argv, {{"OMP_NUM_THREADS", "2"}}, log);
  int status = 0;
  rusage usage{};
  REQUIRE(::wait4(pid, &status, 0, &usage) == pid);
  ChildRun r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.peak_mb = usage.ru_maxrss / 1024.0;
  std::ifstream in(log);
  r.log.assign(std::istreambuf_iterator<char>(in), {});
  return r;
}

double largest_file_mb(const fs::path& dir, const std::string& ext) {
  uintmax_t most = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ext) most = std::max(most, fs::file_size(e.path()));
  return most / 1048576.0;
}

double total_file_mb(const fs::path& dir, const std::string& ext) {
  uintmax_t sum = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ext) sum += fs::file_size(e.path());
  return sum / 1048576.0;
}

}  // namespace

TEST_CASE("chatbridge-convert --quantize streams shard by shard: peak RSS within one input + one output shard") {
  const auto root = cb::test::fresh_dir("quantize_memory");
  torch::manual_seed(5);
  cb::test::write_llama_dir(root / "tiny", {.hidden = 64, .intermediate = 128, .vocab = 64, .layers = 1});
  // 6 shards of ~42 MB of fp32 (one decoder layer each; the vocab rows ride on the first and last).
  cb::test::write_llama_dir(root / "big", {.hidden = 1024, .intermediate = 2048, .vocab = 512, .layers = 6});

  const auto base =
      convert({"--quantize", "q8_0", (root / "tiny").string(), (root / "tiny-q8").string()}, root / "tiny.log");
  INFO(base.log);
  REQUIRE(base.exit_code == 0);
  const auto run =
      convert({"--quantize", "q8_0", (root / "big").string(), (root / "big-q8").string()}, root / "big.log");
  INFO(run.log);
  REQUIRE(run.exit_code == 0);
  REQUIRE(fs::exists(root / "big-q8" / "model-00006-of-00006.safetensors"));

  const double shard_in = largest_file_mb(root / "big", ".safetensors");
  const double shard_out = largest_file_mb(root / "big-q8", ".safetensors");
  const double whole = total_file_mb(root / "big", ".safetensors");
  const double held = run.peak_mb - base.peak_mb;
  INFO("peak " << run.peak_mb << " MB, tiny run " << base.peak_mb << " MB, held " << held << " MB; largest shard in "
               << shard_in << " MB, out " << shard_out << " MB, whole checkpoint " << whole << " MB");
  CHECK(held <= (shard_in + shard_out) * 1.10);
  CHECK(held < whole / 2);
}

TEST_CASE("chatbridge-convert --quantize: a truncated shard fails naming the file, a bad format is refused") {
  const auto root = cb::test::fresh_dir("quantize_damaged");
  torch::manual_seed(6);
  cb::test::write_llama_dir(root / "in", {});
  const auto shard = root / "in" / "model-1.safetensors";
  fs::resize_file(shard, fs::file_size(shard) / 2);
  const auto r = convert({"--quantize", "q4_0", (root / "in").string(), (root / "out").string()}, root / "a.log");
  INFO(r.log);
  CHECK(r.exit_code != 0);
  CHECK(r.log.find(shard.string()) != std::string::npos);
  const auto bad = convert({"--quantize", "q3_k", (root / "in").string(), (root / "out2").string()}, root / "b.log");
  INFO(bad.log);
  CHECK(bad.exit_code != 0);
  CHECK(bad.log.find("'q3_k' is not a weight format") != std::string::npos);
}

TEST_CASE(
    "chatbridge-convert on a quantized directory: conversion keeps the packed weights tagged and the config, "
    "--inspect shows their format, --quantize refuses it") {
  const auto root = cb::test::fresh_dir("convert_packed");
  torch::manual_seed(7);
  cb::test::write_llama_dir(root / "in", {});
  const auto in = (root / "in").string(), q4 = (root / "q4").string();
  auto has = [](const std::string& log, const std::string& part) { return log.find(part) != std::string::npos; };
  auto ok = [&](const std::vector<std::string>& args, const std::string& log) {
    const auto r = convert(args, root / log);
    INFO(r.log);
    REQUIRE(r.exit_code == 0);
    return r.log;
  };
  auto log = ok({"--quantize", "q4_0", in, q4}, "q4.log");
  CHECK(has(log, "15 weights packed as q4_0, 8 tensors kept dense; "));
  CHECK(has(log, " KB -> "));  // ~380 KB of fp32, not "0.00 GB"
  log = ok({"--quantize", "bf16", in, (root / "bf16").string()}, "bf16.log");
  CHECK(has(log, "23 tensors stored as bf16; "));
  CHECK_FALSE(has(log, "weights packed"));

  // One file, and shards that load as the HF directory they came from.
  ok({q4, "-o", (root / "one.safetensors").string()}, "one.log");
  CHECK(cb::load_with_packed_tags(root / "one.safetensors").packed.size() == 15);
  ok({q4, "--max-shard-size", "20KB", "-o", (root / "shards").string()}, "shards.log");
  CHECK(fs::exists(root / "shards" / "model.safetensors.index.json"));
  const auto shards = cb::load_with_packed_tags(root / "shards");
  CHECK(shards.packed.size() == 15);
  CHECK(shards.packed.at("lm_head.weight").packed == cb::kernels::WeightFormat::q4_0);
  CHECK(fs::exists(root / "shards" / "tokenizer.model"));
  CHECK(cb::hf_weight_format(root / "shards") == cb::kernels::WeightFormat::q4_0);

  // A packed weight listed as its format and logical shape, counted as its parameters.
  log = ok({"--log-level", "warn", "--inspect", q4}, "inspect.log");
  CHECK(has(log, "lm_head.weight\tq4_0\t[96, 64]\n"));
  uint64_t parameters = 0;
  for (const auto& kv : cb::load_hf_directory(in)) parameters += kv.value().numel();
  CHECK(has(log, "23 tensors, " + std::to_string(parameters) + " parameters, "));

  for (const char* format : {"q8_0", "bf16"}) {
    const auto out = root / (std::string("re-") + format);
    const auto r = convert({"--quantize", format, q4, out.string()}, out.string() + ".log");
    INFO(r.log);
    CHECK(r.exit_code != 0);
    CHECK(has(r.log, q4 + " is already q4_0: quantize from the fp32/fp16/bf16 directory"));
    CHECK_FALSE(fs::exists(out));
  }
  const auto r = convert({"--quantize", "q4_0", in}, root / "no-output.log");
  CHECK(r.exit_code != 0);
  CHECK(has(r.log, "--quantize FORMAT IN_DIR OUT_DIR"));
}
