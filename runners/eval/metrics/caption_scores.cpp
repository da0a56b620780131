#include "runners/eval/metrics/caption_scores.h"

#include <fmt/format.h>

#include "runners/eval/metrics/bleu.h"
#include "runners/eval/metrics/cider.h"
#include "runners/eval/metrics/ptb_tokenizer.h"
#include "runners/eval/metrics/rouge.h"

namespace cb::metrics {

nlohmann::ordered_json caption_scores(const std::vector<std::vector<std::string>>& refs,
                                      const std::vector<std::string>& cands) {
  std::vector<std::vector<std::string>> r;
  std::vector<std::string> c;
  for (size_t i = 0; i < refs.size(); ++i) {
    std::vector<std::string> tokenized;
    for (const auto& s : refs[i]) tokenized.push_back(ptb_tokenize(s));
    r.push_back(std::move(tokenized));
    c.push_back(ptb_tokenize(cands[i]));
  }
  nlohmann::ordered_json m;
  const auto b = bleu(r, c);
  for (int k = 0; k < 4; ++k) m[fmt::format("Bleu_{}", k + 1)] = b.corpus[k];
  m["ROUGE_L"] = rouge_l(r, c).score;
  m["CIDEr"] = cider_d(r, c).score;
  return m;
}

}  // namespace cb::metrics
