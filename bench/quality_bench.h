// `chatbridge-bench quality`: how far a stored precision (bf16, fp16, q8_0, q4_0) moves the LLM's
// next-token distributions from the fp32 model's, measured as llama-perplexity --kl-divergence does so
// the two can be read side by side: the text tokenized once (BOS first), cut into chunks of `ctx`
// tokens whose first token becomes BOS, and the second half of each chunk scored: mean KL(fp32 || x)
// per position and the fraction of positions whose top-1 token agrees.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace cb::bench {

struct QualityOptions {
  std::filesystem::path hf_dir;  // the LLaMA, as a Hugging Face directory (fp32, fp16 or bf16 weights)
  std::filesystem::path text;    // the text scored
  std::string precision = "q8_0";
  int64_t ctx = 128;
};

nlohmann::json run_quality(const QualityOptions& o);

}  // namespace cb::bench
