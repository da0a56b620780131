// What COCOEvalCap reports for generated sentences against reference sentences (pycocoevalcap's
// evaluate(): PTB tokenisation of both, then Bleu_1..4, ROUGE_L and CIDEr; METEOR and SPICE need
// Java and are not computed). Shared by the caption and the dialogue evaluation tasks (the AVSD
// challenge scores its responses with the same coco-caption scorers).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cb::metrics {

// refs[i]: the raw reference sentences of sample i (at least one); cands[i]: its raw generated text.
// Returns {"Bleu_1".."Bleu_4", "ROUGE_L", "CIDEr"} in that order.
nlohmann::ordered_json caption_scores(const std::vector<std::vector<std::string>>& refs,
                                      const std::vector<std::string>& cands);

}  // namespace cb::metrics
