// ROUGE-L of pycocoevalcap (`Rouge().compute_score`): per image, the longest common subsequence with
// each reference; the MAXIMUM precision and the MAXIMUM recall over the references (taken
// separately) combine into F with beta 1.2; the corpus score is the numpy mean. Words are split on
// single spaces as the original does (an empty caption is one empty word).
#pragma once
#include <string>
#include <vector>

#include "runners/eval/metrics/cider.h"

namespace cb::metrics {

CorpusScore rouge_l(const std::vector<std::vector<std::string>>& refs, const std::vector<std::string>& cands);

}  // namespace cb::metrics
