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
  std::vector<int64_t> all(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + n);
  // total_size = ceil(n / world) * world; the padding repeats the permutation from its start.
  const int64_t total = (n + world_size - 1) / world_size * world_size;
  for (int64_t i = n; i < total; ++i) all.push_back(all[(i - n) % n]);
  std::vector<int64_t> mine;
  mine.reserve(total / world_size);
  for (int64_t i = rank; i < total; i += world_size) mine.push_back(all[i]);
  return mine;
}

}  // namespace cb
