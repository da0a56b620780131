#include "datasets/webdataset/shard_pattern.h"

#include <algorithm>
#include <cstdint>

#include "framework/error.h"

namespace cb {

std::vector<std::string> expand_braces(const std::string& pattern) {
  const size_t open = pattern.find('{');
  if (open == std::string::npos) return {pattern};
  const size_t close = pattern.find('}', open);
  if (close == std::string::npos) fail("shard pattern '{}': unbalanced '{{'", pattern);
  const std::string head = pattern.substr(0, open), body = pattern.substr(open + 1, close - open - 1);
  std::vector<std::string> choices;
  if (const size_t dots = body.find(".."); dots != std::string::npos) {
    const std::string a = body.substr(0, dots), b = body.substr(dots + 2);
    int64_t lo = 0, hi = 0;
    try {
      lo = std::stoll(a), hi = std::stoll(b);
    } catch (const std::exception&) {
      fail("shard pattern '{}': '{{{}}}' is not a numeric range", pattern, body);
    }
    const bool padded = (a.size() > 1 && a[0] == '0') || (b.size() > 1 && b[0] == '0');
    const size_t width = padded ? std::max(a.size(), b.size()) : 0;
    const int64_t step = lo <= hi ? 1 : -1;
    for (int64_t v = lo;; v += step) {
      std::string s = std::to_string(v);
      if (s.size() < width) s.insert(0, width - s.size(), '0');
      choices.push_back(std::move(s));
      if (v == hi) break;
    }
  } else {
    for (size_t start = 0;;) {
      const size_t comma = body.find(',', start);
      choices.push_back(body.substr(start, comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  std::vector<std::string> out;
  for (const std::string& c : choices)
    for (std::string& tail : expand_braces(pattern.substr(close + 1))) out.push_back(head + c + tail);
  return out;
}

}  // namespace cb
