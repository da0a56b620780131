#include "runners/eval/metrics/cider.h"

#include <cmath>
#include <numbers>
#include <unordered_map>
#include <unordered_set>

#include "framework/error.h"
#include "framework/text/python_str.h"
#include "runners/eval/metrics/numpy_sum.h"

namespace cb::metrics {

namespace {

// An n-gram is its words joined by single spaces (words never contain whitespace), so orders never
// collide. Counts keep first-occurrence order: the original iterates Python dicts in insertion order,
// and the floating-point sums below follow that order.
struct NgramCounts {
  std::vector<std::pair<std::string, int64_t>> items;  // (ngram, count), first occurrence order
  std::vector<int> order;                              // words in items[i] (1..n)
};

// precook(): every 1..n-gram of s.split() with its count, enumerated order by order.
NgramCounts count_ngrams(const std::string& sentence, int n) {
  const auto words = pystr::split_whitespace(sentence);
  NgramCounts c;
  std::unordered_map<std::string, size_t> index;
  for (int k = 1; k <= n; ++k) {
    for (size_t i = 0; i + k <= words.size(); ++i) {
      std::string gram = words[i];
      for (int j = 1; j < k; ++j) gram += ' ' + words[i + j];
      auto [it, inserted] = index.try_emplace(gram, c.items.size());
      if (inserted) {
        c.items.emplace_back(std::move(gram), 0);
        c.order.push_back(k);
      }
      ++c.items[it->second].second;
    }
  }
  return c;
}

// counts2vec(): tf-idf weights per order, their L2 norms and the (bigram-count) "length".
struct TfIdf {
  std::vector<std::vector<std::pair<const std::string*, double>>> weights;  // per order, insertion order
  std::vector<std::unordered_map<std::string_view, double>> lookup;         // per order
  std::vector<double> norm;
  int64_t length = 0;
};

class Scorer {
 public:
  Scorer(const std::vector<std::vector<std::string>>& refs, const std::vector<std::string>& cands, int n) : n_(n) {
    // doc_freq_ and the TfIdf lookups hold views into test_/refs_, which never change after this.
    if (n < 1) fail("CIDEr: n-gram order n must be >= 1 (got {})", n);
    if (cands.empty()) fail("CIDEr: no candidates to score");
    if (refs.size() != cands.size())
      fail("CIDEr: {} candidates but references for {} images", cands.size(), refs.size());
    for (size_t i = 0; i < cands.size(); ++i) {
      if (refs[i].empty()) fail("CIDEr: image {} has no reference captions", i);
      test_.push_back(count_ngrams(cands[i], n));
      auto& r = refs_.emplace_back();
      for (const auto& s : refs[i]) r.push_back(count_ngrams(s, n));
    }
    // compute_doc_freq(): in how many images' reference sets each n-gram occurs.
    for (const auto& image_refs : refs_) {
      std::unordered_set<std::string_view> seen;
      for (const auto& r : image_refs)
        for (const auto& [gram, count] : r.items)
          if (seen.insert(gram).second) doc_freq_[gram] += 1.0;
    }
    ref_len_ = std::log(double(refs_.size()));
  }

  Scorer(const Scorer&) = delete;
  Scorer& operator=(const Scorer&) = delete;

  // compute_cider(): per-image scores; `sim` is the per-order similarity of one (candidate, reference).
  template <typename Sim>
  CorpusScore score(Sim sim) const {
    CorpusScore out;
    for (size_t i = 0; i < test_.size(); ++i) {
      const TfIdf hyp = tfidf(test_[i]);
      std::vector<double> acc(size_t(n_), 0.0);
      for (const auto& r : refs_[i]) {
        const TfIdf ref = tfidf(r);
        for (int k = 0; k < n_; ++k) acc[size_t(k)] += sim(hyp, ref, k);
      }
      double s = numpy_mean(acc);  // mean over n-gram orders
      s /= double(refs_[i].size());
      s *= 10.0;
      out.per_image.push_back(s);
    }
    out.score = numpy_mean(out.per_image);
    return out;
  }

  // Cosine of order k, optionally with the CIDEr-D clipping of the candidate weight.
  static double cosine(const TfIdf& hyp, const TfIdf& ref, int k, bool clip) {
    double val = 0.0;
    const auto& ref_w = ref.lookup[size_t(k)];
    for (const auto& [gram, w] : hyp.weights[size_t(k)]) {
      auto it = ref_w.find(*gram);
      const double r = it == ref_w.end() ? 0.0 : it->second;
      val += (clip ? std::min(w, r) : w) * r;
    }
    if (hyp.norm[size_t(k)] != 0 && ref.norm[size_t(k)] != 0) val /= hyp.norm[size_t(k)] * ref.norm[size_t(k)];
    return val;
  }

 private:
  TfIdf tfidf(const NgramCounts& c) const {
    TfIdf v;
    v.weights.resize(size_t(n_));
    v.lookup.resize(size_t(n_));
    v.norm.assign(size_t(n_), 0.0);
    for (size_t i = 0; i < c.items.size(); ++i) {
      const auto& [gram, tf] = c.items[i];
      auto it = doc_freq_.find(gram);
      const double df = std::log(std::max(1.0, it == doc_freq_.end() ? 0.0 : it->second));
      const size_t k = size_t(c.order[i] - 1);
      const double w = double(tf) * (ref_len_ - df);
      v.weights[k].emplace_back(&gram, w);
      v.lookup[k].emplace(gram, w);
      v.norm[k] += w * w;
      if (k == 1) v.length += tf;  // quirk: the "length" counts bigrams, not words
    }
    for (auto& x : v.norm) x = std::sqrt(x);
    return v;
  }

  int n_;
  std::vector<NgramCounts> test_;
  std::vector<std::vector<NgramCounts>> refs_;
  std::unordered_map<std::string_view, double> doc_freq_;
  double ref_len_ = 0;
};

}  // namespace

CorpusScore cider_d(const std::vector<std::vector<std::string>>& refs, const std::vector<std::string>& cands, int n,
                    double sigma) {
  const Scorer scorer(refs, cands, n);
  return scorer.score([sigma](const TfIdf& hyp, const TfIdf& ref, int k) {
    const double delta = double(hyp.length - ref.length);
    // np.e ** x in the original: pow(e, x), not exp(x), to keep the same rounding.
    return Scorer::cosine(hyp, ref, k, true) * std::pow(std::numbers::e, -(delta * delta) / (2 * sigma * sigma));
  });
}

CorpusScore cider(const std::vector<std::vector<std::string>>& refs, const std::vector<std::string>& cands, int n) {
  const Scorer scorer(refs, cands, n);
  return scorer.score([](const TfIdf& hyp, const TfIdf& ref, int k) { return Scorer::cosine(hyp, ref, k, false); });
}

}  // namespace cb::metrics
