#include "runners/eval/metrics/bleu.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include "framework/error.h"
#include "framework/text/python_str.h"

namespace cb::metrics {
namespace {

constexpr int kN = 4;
constexpr double kTiny = 1e-15, kSmall = 1e-9;

using Ngrams = std::map<std::vector<std::string>, int64_t>;

Ngrams count_ngrams(const std::vector<std::string>& words) {
  Ngrams counts;
  for (int k = 1; k <= kN; ++k)
    for (size_t i = 0; i + k <= words.size(); ++i) ++counts[{words.begin() + i, words.begin() + i + k}];
  return counts;
}

struct Cooked {
  double testlen = 0, reflen = 0;
  std::array<double, kN> guess{}, correct{};
};

// cook_refs + cook_test: max reference count per n-gram, closest reference length.
Cooked cook(const std::vector<std::string>& refs, const std::string& cand) {
  Ngrams maxcounts;
  std::vector<int64_t> reflens;
  for (const auto& r : refs) {
    const auto words = pystr::split_whitespace(r);
    reflens.push_back(static_cast<int64_t>(words.size()));
    for (const auto& [g, n] : count_ngrams(words)) maxcounts[g] = std::max(maxcounts[g], n);
  }
  const auto words = pystr::split_whitespace(cand);
  const auto testlen = static_cast<int64_t>(words.size());
  Cooked c;
  c.testlen = static_cast<double>(testlen);
  // min over (|l - testlen|, l): the closest, the shorter on a tie.
  auto best = *std::min_element(reflens.begin(), reflens.end(), [&](int64_t a, int64_t b) {
    return std::pair(std::llabs(a - testlen), a) < std::pair(std::llabs(b - testlen), b);
  });
  c.reflen = static_cast<double>(best);
  for (int k = 1; k <= kN; ++k) c.guess[k - 1] = static_cast<double>(std::max<int64_t>(0, testlen - k + 1));
  for (const auto& [g, n] : count_ngrams(words)) {
    auto it = maxcounts.find(g);
    c.correct[g.size() - 1] += static_cast<double>(std::min(it == maxcounts.end() ? 0 : it->second, n));
  }
  return c;
}

// The cumulative geometric mean of the precisions (BLEU-k = (p1...pk)^(1/k)) times the brevity penalty.
std::array<double, kN> score(const Cooked& c) {
  std::array<double, kN> out{};
  double product = 1;
  for (int k = 0; k < kN; ++k) {
    product *= (c.correct[k] + kTiny) / (c.guess[k] + kSmall);
    out[k] = std::pow(product, 1.0 / (k + 1));
  }
  const double ratio = (c.testlen + kTiny) / (c.reflen + kSmall);
  if (ratio < 1)
    for (auto& v : out) v *= std::exp(1 - 1 / ratio);
  return out;
}

}  // namespace

BleuScore bleu(const std::vector<std::vector<std::string>>& refs, const std::vector<std::string>& cands) {
  if (refs.size() != cands.size()) fail("bleu: {} reference sets for {} candidates", refs.size(), cands.size());
  BleuScore result;
  Cooked total;
  for (size_t i = 0; i < cands.size(); ++i) {
    if (refs[i].empty()) fail("bleu: image {} has no reference", i);
    const auto c = cook(refs[i], cands[i]);
    total.testlen += c.testlen;
    total.reflen += c.reflen;
    for (int k = 0; k < kN; ++k) {
      total.guess[k] += c.guess[k];
      total.correct[k] += c.correct[k];
    }
    result.per_image.push_back(score(c));
  }
  result.corpus = score(total);
  return result;
}

}  // namespace cb::metrics
