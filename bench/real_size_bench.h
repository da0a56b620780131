// Real-size LLaMA runs on this machine (docs/benchmarks.md, "Real size"; not in CI): a 7B-shaped
// (32 × 4096 / 11008) or 13B-shaped (40 × 5120 / 13824) LLaMA, vocab 32000, with random weights
// written once as a Hugging Face directory in bf16, fp16, q8_0 or q4_0 (the layout chatbridge-convert
// --quantize writes), then loaded through load_llama_hf and decoded greedily.
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
  std::string format = "bf16";  // bf16, fp16, q8_0, q4_0: how the linear weights are stored
  std::filesystem::path dir;    // the Hugging Face directory
  bool make = false;            // write `dir` (must not exist) and stop
  bool mmap = false;            // packed weights used from the file's mapping (model.llama_mmap)
  int64_t prompt_tokens = 32;   // prefill length
  int64_t new_tokens = 16;      // decode steps
};

// --make: {"written_gb", "write_s"}; else {"load_s", "peak_rss_gb", "weights_gb", "prefill_s", "decode_tok_s", ...}.
nlohmann::json run_real_size(const RealSizeOptions& opts);

}  // namespace cb::bench
