// chatbridge-bench: the benchmarks of docs/benchmarks.md (train1, train2, decode, data, kernels, all) on a
// workload file, printed as one JSON object on stdout (logs go to stderr).
//
//   chatbridge-bench all --workload tests/bench/small.json --tokenizer tests/golden/tokenizer.model
//   chatbridge-bench decode --workload WORKLOAD.json --threads 2    (a workload of your own, same format)
//   chatbridge-bench decode --workload W --export-hf DIR      (its LLaMA for llama.cpp: bench/llama_cpp_peer.py)
//   chatbridge-bench quality --hf-dir DIR --text FILE --precision q4_0   (bench/quality_bench.h)
//   chatbridge-bench real-size --shape 13b --format q4_0 --dir /tmp/llama13b-q4_0 [--make]   (bench/real_size_bench.h)
//   chatbridge-bench annotations --records 10000000 --dir /tmp/cb-annotations   (bench/annotation_bench.h)
#include <CLI/CLI.hpp>

#include <cstdio>
#include <optional>

#include "bench/annotation_bench.h"
#include "bench/decode_bench.h"
#include "bench/quality_bench.h"
#include "bench/real_size_bench.h"
#include "bench/run.h"
#include "framework/app_options.h"
#include "framework/cli_checks.h"
#include "framework/error.h"
#include "framework/logging.h"
#include "framework/runtime.h"
#include "models/llama_causal_lm.h"

namespace {

// --device: LibTorch reads the spelling (cpu, cuda, cuda:N); a CUDA device must be visible here.
torch::Device bench_device(const std::string& spec) {
  std::optional<torch::Device> device;
  try {
    device = torch::Device(spec);
  } catch (const std::exception&) {
    cb::fail("--device '{}': expected cpu, cuda or cuda:N", spec);
  }
  if (device->is_cpu()) return *device;
  if (!device->is_cuda()) cb::fail("--device '{}': expected cpu, cuda or cuda:N", spec);
  const auto count = static_cast<int>(torch::cuda::device_count());
  if (count == 0) cb::fail("--device {}: no CUDA device (this LibTorch has no CUDA or none is visible)", spec);
  if (device->index() >= count) cb::fail("--device {}: only {} CUDA device(s) visible", spec, count);
  return *device;
}

int run(int argc, char** argv) {
  CLI::App app{"ChatBridge benchmarks (docs/benchmarks.md): prints one JSON object"};
  std::string workload_file, log_level = "warn", device = "cpu", llama_precision;
  int threads = 0;
  double peak_flops = 0;
  cb::bench::BenchOptions opts;
  app.require_subcommand(1);
  for (const char* part : {"train1", "train2", "decode", "data", "kernels", "all"}) {
    auto* sub = app.add_subcommand(part, std::string("run the ") + part + " benchmark(s)");
    sub->add_option("--workload", workload_file,
                    "workload JSON (e.g. tests/bench/small.json; format: docs/benchmarks.md)")
        ->required();
    sub->add_option("--threads", threads, "intra-op and BLAS threads (default: the workload's)")
        ->check(cb::cli::non_negative);
    sub->add_option("--tokenizer", opts.tokenizer, "tokenizer.model (default: the workload's, found upward)");
    sub->add_option("--work-dir", opts.work_dir, "scratch directory for the generated media (reused)");
    sub->add_option("--peak-flops", peak_flops, "device peak FLOP/s: the train benches then print MFU")
        ->check(cb::cli::positive);
    sub->add_option(
           "--profile-ops", opts.profile_top,
           "train and decode parts: after timing, profile the steps op by op (decode: the single-position steps, "
           "then one prefill as generate() runs it) and list the N ops with most self time")
        ->check(cb::cli::positive);
    sub->add_option("--device", device, "cpu, cuda or cuda:N: where train1, train2 and decode run (default cpu)");
    sub->add_option("--llama-precision", llama_precision,
                    "the LLaMA's linear layers in fp32, bf16, fp16, q8_0 or q4_0 (model.llama_precision; default: "
                    "the workload's, else fp32)");
    sub->add_option("--log-level", log_level, "trace, debug, info, warn, error");
  }
  std::string export_hf;
  app.get_subcommand("decode")->add_option(
      "--export-hf", export_hf,
      "write the workload's LLaMA (fp32, the weights every --llama-precision packs) as a Hugging Face directory and "
      "stop: the same weights for llama.cpp (bench/llama_cpp_peer.py)");
  cb::bench::QualityOptions quality;
  auto* quality_cmd = app.add_subcommand(
      "quality",
      "KL divergence and top-1 agreement of a stored precision against fp32, as llama-perplexity reports them");
  quality_cmd->add_option("--hf-dir", quality.hf_dir, "the LLaMA as a Hugging Face directory (with tokenizer.model)")
      ->required();
  quality_cmd->add_option("--text", quality.text, "the text scored")->required();
  quality_cmd->add_option("--precision", quality.precision, "bf16, fp16, q8_0 or q4_0");
  quality_cmd->add_option("--ctx", quality.ctx, "tokens per chunk (the second half of each is scored)")
      ->check(cb::cli::positive);
  quality_cmd->add_option("--threads", threads, "intra-op threads (default: all cores)")->check(cb::cli::non_negative);
  quality_cmd->add_option("--log-level", log_level, "trace, debug, info, warn, error");
  cb::bench::RealSizeOptions real;
  auto* real_size = app.add_subcommand("real-size", "a 7B/13B-shaped LLaMA from a file: load time, peak RSS, tokens/s");
  real_size->add_option("--shape", real.shape, "7b (32 x 4096/11008) or 13b (40 x 5120/13824)");
  real_size->add_option("--format", real.format, "fp32, bf16, fp16, q8_0 or q4_0");
  real_size->add_option("--layers", real.layers, "with --make: decoder layers written (default: the shape's)")
      ->check(cb::cli::non_negative);
  real_size->add_option("--dir", real.dir, "the model directory (written by --make)")->required();
  real_size->add_flag("--make", real.make, "write the directory from random weights and stop");
  real_size->add_flag("--mmap", real.mmap, "use packed weights from the file's mapping (model.llama_mmap True)");
  real_size->add_option("--new-tokens", real.new_tokens, "tokens decoded")->check(cb::cli::positive);
  real_size->add_option("--runs", real.runs, "timed generations, each followed by a read-bandwidth reading")
      ->check(cb::cli::positive);
  real_size->add_option("--threads", threads, "intra-op threads (default: all cores)")->check(cb::cli::non_negative);
  real_size->add_option("--log-level", log_level, "trace, debug, info, warn, error");
  cb::bench::AnnotationBenchOptions annotations;
  auto* annotations_cmd = app.add_subcommand(
      "annotations", "annotation readers at N records beside the original's json.load: start-up time, RSS per record");
  annotations_cmd->add_option("--records", annotations.records, "records in the generated annotation file")
      ->check(cb::cli::positive);
  annotations_cmd->add_option("--dir", annotations.dir, "where the generated files are written and reused")->required();
  annotations_cmd->add_option("--reader", annotations.reader, "valor (stage-1 mapper), lavis (coco_caption) or both");
  annotations_cmd->add_option("--side", annotations.side, "both (each side in a child process) or ours (this process)");
  annotations_cmd->add_option("--rounds", annotations.rounds, "alternating rounds per reader (medians reported)")
      ->check(cb::cli::positive);
  annotations_cmd->add_option("--python", annotations.python, "the Python that runs the original's path");
  annotations_cmd->add_option("--threads", threads, "threads, as the apps' --threads (default: all cores)")
      ->check(cb::cli::non_negative);
  annotations_cmd->add_option("--log-level", log_level, "trace, debug, info, warn, error");
  CLI11_PARSE(app, argc, argv);
  if (annotations_cmd->parsed()) {
    cb::init_logging(0, 1, log_level);
    cb::configure_threads(threads);  // the records are checked on these threads, as in train and eval
    std::printf("%s\n", cb::bench::run_annotation_bench(annotations).dump(1).c_str());
    return 0;
  }
  if (real_size->parsed()) {
    cb::init_logging(0, 1, log_level);
    cb::configure_threads(threads);
    std::printf("%s\n", cb::bench::run_real_size(real).dump(1).c_str());
    return 0;
  }
  if (quality_cmd->parsed()) {
    cb::init_logging(0, 1, log_level);
    cb::configure_threads(threads);
    std::printf("%s\n", cb::bench::run_quality(quality).dump(1).c_str());
    return 0;
  }
  opts.part = app.get_subcommands().front()->get_name();
  cb::init_logging(0, 1, log_level);
  auto w = cb::bench::Workload::load(workload_file);
  w.device = bench_device(device);
  if (!llama_precision.empty()) w.config["llama_precision"] = llama_precision;
  opts.threads = cb::configure_threads(threads > 0 ? threads : w.threads);
  if (peak_flops > 0) opts.peak_flops = peak_flops;
  if (!export_hf.empty()) {
    w.config["llama_precision"] = "fp32";
    auto model = cb::bench::build_decode_model(w);
    cb::save_llama_hf(*model, w.tokenizer_path(opts.tokenizer), export_hf);
    return 0;
  }
  auto out = cb::bench::run_benchmark(w, opts);
  std::printf("%s\n", out.dump(1).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cb::run_main("chatbridge-bench", run, argc, argv); }
