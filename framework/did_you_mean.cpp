#include "framework/did_you_mean.h"

#include <algorithm>
#include <numeric>

#include "framework/error.h"

namespace cb {

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), size_t(0));
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

namespace {

std::vector<std::string_view> components(std::string_view s) {  // "init_lr" -> {"init", "lr"}
  std::vector<std::string_view> out;
  for (size_t start = 0;;) {
    const size_t end = s.find('_', start);
    if (end > start) out.push_back(s.substr(start, end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

bool all_in(const std::vector<std::string_view>& part, const std::vector<std::string_view>& whole) {
  return std::all_of(part.begin(), part.end(),
                     [&](auto p) { return std::find(whole.begin(), whole.end(), p) != whole.end(); });
}

}  // namespace

std::string did_you_mean(std::string_view name, const std::vector<std::string>& candidates, std::string_view prefix) {
  const std::string* best = nullptr;
  size_t best_d = std::max<size_t>(2, name.size() / 3) + 1;
  for (const auto& c : candidates) {
    size_t d = edit_distance(name, c);
    if (d < best_d) best_d = d, best = &c;
  }
  if (best) return fmt::format(" (did you mean '{}{}'?)", prefix, *best);
  // Nothing a few edits away: names built from the same words, e.g. lr -> init_lr, min_lr, warmup_lr;
  // batch_size -> batch_size_train; vit_ckpt_path -> vit_ckpt.
  const auto words = components(name);
  std::vector<std::string> near;
  for (const auto& c : candidates) {
    const auto cw = components(c);
    if (!words.empty() && (all_in(words, cw) || (cw.size() > 1 && all_in(cw, words))))
      near.push_back(fmt::format("'{}{}'", prefix, c));
  }
  if (near.empty() || near.size() > 5) return "";
  std::string list = near[0];
  for (size_t i = 1; i < near.size(); ++i) list += (i + 1 == near.size() ? " or " : ", ") + near[i];
  return fmt::format(" (did you mean {}?)", list);
}

}  // namespace cb
