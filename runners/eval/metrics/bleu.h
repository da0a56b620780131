// BLEU-1..4 of pycocoevalcap (`Bleu(4).compute_score`, BleuScorer with option "closest"): clipped
// n-gram counts and lengths summed over the corpus, the reference length of each image the one
// closest to its candidate (the shorter on a tie), brevity penalty exp(1 - r/c) when c < r, and the
// original's smoothing constants (1e-15 added to matches, 1e-9 to totals).
#pragma once
#include <array>
#include <string>
#include <vector>

namespace cb::metrics {

struct BleuScore {
  std::array<double, 4> corpus{};                // BLEU-1..4 over the corpus (the reported numbers)
  std::vector<std::array<double, 4>> per_image;  // the original's per-image list, same formula per image
};

// refs[i]: the tokenised references of image i (at least one); cands[i]: its tokenised candidate.
// Words are split on whitespace.
BleuScore bleu(const std::vector<std::vector<std::string>>& refs, const std::vector<std::string>& cands);

}  // namespace cb::metrics
