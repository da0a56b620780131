#include "datasets/media/frame_sampling.h"

#include <algorithm>
#include <numeric>

#include "framework/error.h"

namespace cb {

std::vector<std::vector<int64_t>> split_groups(std::vector<int64_t> items, int64_t n) {
  if (items.empty() || n <= 0)
    fail("split: need a non-empty list and a positive group count (got {} items, n={})", items.size(), n);
  if (int64_t(items.size()) < n) items.resize(size_t(n), items.back());
  const int64_t k = int64_t(items.size()) / n, m = int64_t(items.size()) % n;
  std::vector<std::vector<int64_t>> groups;
  for (int64_t i = 0; i < n; ++i)
    groups.emplace_back(items.begin() + i * k + std::min(i, m), items.begin() + (i + 1) * k + std::min(i + 1, m));
  return groups;
}

int64_t pick_in_group(const std::vector<int64_t>& group, bool training, std::mt19937_64& rng) {
  if (training) return group[std::uniform_int_distribution<size_t>(0, group.size() - 1)(rng)];
  return group[(group.size() + 1) / 2 - 1];
}

std::vector<int64_t> sample_indices(int64_t count, int64_t n, bool training, std::mt19937_64& rng) {
  std::vector<int64_t> all(size_t(std::max<int64_t>(count, 0)));
  std::iota(all.begin(), all.end(), 0);
  std::vector<int64_t> picks;
  for (const auto& group : split_groups(std::move(all), n)) picks.push_back(pick_in_group(group, training, rng));
  return picks;
}

}  // namespace cb
