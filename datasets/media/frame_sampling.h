// The valor loaders' sampling of frames (video) and fbank slices (audio): split the items into n
// consecutive groups, then take the middle of each group (eval) or a random member (training).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace cb {

// The original's split(): pad a short list with its last element, then cut it into n nearly equal
// consecutive groups, the first len % n groups one longer (numpy.array_split). `items` must be non-empty.
std::vector<std::vector<int64_t>> split_groups(std::vector<int64_t> items, int64_t n);

// Eval: group[(len + 1) // 2 - 1] (the middle, lower); training: a uniformly random member.
int64_t pick_in_group(const std::vector<int64_t>& group, bool training, std::mt19937_64& rng);

// split_groups(0..count-1, n) then one pick per group.
std::vector<int64_t> sample_indices(int64_t count, int64_t n, bool training, std::mt19937_64& rng);

}  // namespace cb
