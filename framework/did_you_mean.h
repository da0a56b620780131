// "Did you mean ...?" suggestions for unknown names (config keys, registry names).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace cb {

size_t edit_distance(std::string_view a, std::string_view b);  // Levenshtein

// " (did you mean 'x'?)" for the closest candidate within a third of the name's length (at least 2
// edits); else up to five candidates made of the same '_'-separated words (" (did you mean 'a' or
// 'b'?)" for "lr" among init_lr, min_lr); else "". `prefix` goes before each name shown ("run.").
std::string did_you_mean(std::string_view name, const std::vector<std::string>& candidates,
                         std::string_view prefix = {});

}  // namespace cb
