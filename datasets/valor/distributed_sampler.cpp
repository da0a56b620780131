#include "datasets/valor/distributed_sampler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "framework/error.h"

namespace cb {

std::vector<int64_t> distributed_sampler_indices(int64_t n, int64_t epoch, int rank, int world_size, int64_t seed) {
  if (n <= 0) fail("DistributedSampler: empty dataset");
  if (world_size < 1 || rank < 0 || rank >= world_size) fail("DistributedSampler: rank {} of {}", rank, world_size);
  auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(seed + epoch));
  torch::Tensor perm = torch::randperm(n, gen, torch::kLong);
  const int64_t* all = perm.data_ptr<int64_t>();
  // total_size = ceil(n / world) * world; the padding repeats the permutation from its start. Only
  // this rank's share is copied: a rank holds n / world_size indices after the permutation is freed.
  const int64_t total = (n + world_size - 1) / world_size * world_size;
  std::vector<int64_t> mine;
  mine.reserve(total / world_size);
  for (int64_t i = rank; i < total; i += world_size) mine.push_back(all[i < n ? i : (i - n) % n]);
  return mine;
}

}  // namespace cb
