#include "bench/quality_bench.h"

#include <fstream>
#include <iterator>

#include "framework/checkpoint/convert.h"
#include "framework/error.h"
#include "models/llama_hf.h"
#include "models/tokenizer.h"

namespace cb::bench {
namespace {

std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) fail("{}: cannot open the text file", p.string());
  return {std::istreambuf_iterator<char>(f), {}};
}

}  // namespace

nlohmann::json run_quality(const QualityOptions& o) {
  if (o.ctx < 4) fail("--ctx {}: need at least 4 tokens per chunk", o.ctx);
  // The reference is the directory read as fp32: a packed one would be compared with itself.
  if (const auto packed = hf_weight_format(o.hf_dir))
    fail(
        "{}: the weights are already {}, so the fp32 reference would be the same model; give the fp32, fp16 or "
        "bf16 directory it was quantized from",
        o.hf_dir.string(), kernels::weight_format_name(*packed));
  const auto tok = LlamaTokenizer::load(o.hf_dir / "tokenizer.model");
  const auto ids = tok.encode(read_text(o.text), /*add_bos=*/true);
  const int64_t chunks = static_cast<int64_t>(ids.size()) / o.ctx;
  if (chunks == 0) fail("{}: {} tokens, fewer than one chunk of --ctx {}", o.text.string(), ids.size(), o.ctx);
  auto base = load_llama_hf(o.hf_dir, "fp32");
  auto other = load_llama_hf(o.hf_dir, o.precision);
  c10::InferenceMode inference;
  const int64_t first = o.ctx / 2;
  double kl_sum = 0;
  int64_t same = 0, positions = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    auto chunk = torch::tensor(std::vector<int64_t>(ids.begin() + c * o.ctx, ids.begin() + (c + 1) * o.ctx));
    chunk[0] = tok.bos_id();
    LlamaInputs in;
    in.input_ids = chunk.unsqueeze(0);  // [1, ctx]
    // Positions first .. ctx-2 predict tokens first+1 .. ctx-1.
    auto p = base->forward(in).logits[0].slice(0, first, o.ctx - 1).to(torch::kDouble).log_softmax(-1);
    auto q = other->forward(in).logits[0].slice(0, first, o.ctx - 1).to(torch::kDouble).log_softmax(-1);
    kl_sum += (p.exp() * (p - q)).sum().item<double>();
    same += (p.argmax(-1) == q.argmax(-1)).sum().item<int64_t>();
    positions += p.size(0);
  }
  const auto& c = base->config();
  return {{"precision", o.precision},
          {"mean_kld", kl_sum / double(positions)},
          {"top1_agreement", double(same) / double(positions)},
          {"ctx", o.ctx},
          {"chunks", chunks},
          {"positions", positions},
          {"model", {{"hidden_size", c.hidden_size}, {"layers", c.num_hidden_layers}, {"vocab_size", c.vocab_size}}},
          {"hf_dir", o.hf_dir.string()},
          {"text", o.text.string()}};
}

}  // namespace cb::bench
