// CIDEr-D and CIDEr of the original's utils/cider (pyciderevalcap), df="corpus" mode: the idf comes
// from the references of the scored set itself. Inputs are pre-tokenised strings (lowercase, words
// separated by whitespace); every image has one candidate and at least one reference.
#pragma once
#include <string>
#include <vector>

namespace cb::metrics {

struct CorpusScore {
  double score = 0;               // mean over images (numpy's summation order)
  std::vector<double> per_image;  // one score per image, in input order
};

// `CiderD(n, sigma, df="corpus").compute_score`: candidate tf-idf weights clipped by the reference's,
// Gaussian length penalty exp(-delta^2 / (2 sigma^2)) where the "length" is the number of BIGRAMS
// (quirk of the original), mean over n-gram orders, divided by the number of references, x10.
CorpusScore cider_d(const std::vector<std::vector<std::string>>& refs, const std::vector<std::string>& cands, int n = 4,
                    double sigma = 6.0);

// `Cider(n, df="corpus").compute_score`: the same without clipping and without the length penalty.
CorpusScore cider(const std::vector<std::vector<std::string>>& refs, const std::vector<std::string>& cands, int n = 4);

}  // namespace cb::metrics
