#include "runners/eval/metrics/rouge.h"

#include <algorithm>

#include "framework/error.h"
#include "runners/eval/metrics/numpy_sum.h"

namespace cb::metrics {
namespace {

constexpr double kBeta = 1.2;

// str.split(" ").
std::vector<std::string> split_spaces(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == ' ') {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

size_t lcs(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<size_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

double rouge_one(const std::vector<std::string>& refs, const std::string& cand) {
  const auto c = split_spaces(cand);
  double prec_max = 0, rec_max = 0;
  for (const auto& ref : refs) {
    const auto r = split_spaces(ref);
    const auto l = static_cast<double>(lcs(r, c));
    prec_max = std::max(prec_max, l / static_cast<double>(c.size()));
    rec_max = std::max(rec_max, l / static_cast<double>(r.size()));
  }
  if (prec_max == 0 || rec_max == 0) return 0;
  return (1 + kBeta * kBeta) * prec_max * rec_max / (rec_max + kBeta * kBeta * prec_max);
}

}  // namespace

CorpusScore rouge_l(const std::vector<std::vector<std::string>>& refs, const std::vector<std::string>& cands) {
  if (refs.size() != cands.size()) fail("rouge_l: {} reference sets for {} candidates", refs.size(), cands.size());
  CorpusScore out;
  for (size_t i = 0; i < cands.size(); ++i) {
    if (refs[i].empty()) fail("rouge_l: image {} has no reference", i);
    out.per_image.push_back(rouge_one(refs[i], cands[i]));
  }
  out.score = numpy_mean(out.per_image);
  return out;
}

}  // namespace cb::metrics
