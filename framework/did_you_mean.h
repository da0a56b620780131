// "Did you mean ...?" suggestions for unknown names (config keys, registry names).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace cb {

size_t edit_distance(std::string_view a, std::string_view b);  // Levenshtein

// " (did you mean 'x'?)" for the closest candidate within a third of the name's length (at least 2
// edits), or "" when nothing is close.
std::string did_you_mean(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace cb
