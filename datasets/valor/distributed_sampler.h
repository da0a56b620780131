// torch.utils.data.DistributedSampler(dataset) as the valor loaders use it (shuffle=True, seed 0,
// drop_last=False): a permutation from torch.randperm with a generator seeded seed + epoch, padded by
// repeating its head until it divides evenly across ranks, then every world_size-th index from `rank`.
// Bit-identical to the original's order (same CPU generator and randperm kernel).
#pragma once
#include <cstdint>
#include <vector>

namespace cb {

std::vector<int64_t> distributed_sampler_indices(int64_t dataset_size, int64_t epoch, int rank, int world_size,
                                                 int64_t seed = 0);

}  // namespace cb
