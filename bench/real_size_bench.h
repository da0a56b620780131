// Real-size LLaMA runs on this machine (docs/benchmarks.md, "Real size"; not in CI): a 7B-shaped
// (32 × 4096 / 11008) or 13B-shaped (40 × 5120 / 13824) LLaMA, vocab 32000, with random weights
// written once as a Hugging Face directory in fp32, bf16, fp16, q8_0 or q4_0 (the layout
// chatbridge-convert --quantize writes), then loaded through load_llama_hf and decoded greedily. Beside
// tokens/s, the memory-bound limit as `decode` gives it: the read bandwidth measured after each run over
// the weight bytes a step reads. `--layers` keeps the shape's widths with fewer layers: an fp32 7B (27 GB)
// does not fit a 24 GB machine, 8 of its layers (7.5 GB) still far exceed any L3, which the medium
// workload does not.
//
// Two commands, two processes, so the run's peak RSS is the load's and the decode's alone:
//   chatbridge-bench real-size --shape 13b --format q4_0 --dir /tmp/llama13b-q4_0 --make
//   chatbridge-bench real-size --shape 13b --format q4_0 --dir /tmp/llama13b-q4_0
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace cb::bench {

struct RealSizeOptions {
  std::string shape = "7b";     // 7b or 13b
  std::string format = "bf16";  // fp32, bf16, fp16, q8_0, q4_0: how the linear weights are stored
  int64_t layers = 0;           // decoder layers written by --make; 0: the shape's (32 or 40)
  std::filesystem::path dir;    // the Hugging Face directory
  bool make = false;            // write `dir` (must not exist) and stop
  bool mmap = false;            // packed weights used from the file's mapping (model.llama_mmap)
  int64_t prompt_tokens = 32;   // prefill length
  int64_t new_tokens = 16;      // decode steps
  int64_t runs = 1;             // timed generations (each followed by a bandwidth reading)
};

// --make: {"written_gb", "write_s"}; else {"load_s", "peak_rss_gb", "weights_gb", "prefill_s", "decode_tok_s",
// "read_bandwidth_gb_s", "bound_tok_s", "pct_of_bound", ...} (medians over the runs; per run in *_runs).
nlohmann::json run_real_size(const RealSizeOptions& opts);

}  // namespace cb::bench
