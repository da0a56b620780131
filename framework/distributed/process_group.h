// A c10d process group for data-parallel training: LibTorch's TCPStore for the rendezvous,
// ProcessGroupGloo on CPU, ProcessGroupNCCL for CUDA tensors when LibTorch was built with it.
// With world size 1 there is no store and no backend: every collective is the identity.
//
//   auto pg = cb::dist::ProcessGroup::init(cb::dist::dist_env_from_environment());
//   pg->broadcast(trainable_params);            // rank 0's initial values everywhere
//   double loss = pg->all_reduce_mean(local);   // for logs
//   if (pg->is_main()) save(...);  pg->barrier();
//
// Collectives must be called in the same order on every rank (c10d's rule). Every wait runs under
// the collective watchdog (watchdog.h): a collective that fails or outlasts the timeout is reported
// with this rank, the collective, the step (set_step) and the peers that went silent.
#pragma once
#include <torch/torch.h>

#include <c10/util/intrusive_ptr.h>

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "framework/distributed/rendezvous.h"

namespace c10d {
class Store;
}

namespace cb::dist {

struct DistOptions {
  // Store and collective timeout (run.dist_timeout). The original used 365 days, which turns a dead peer
  // into a hung job; torchrun's 30 minutes still cover a slow rank-0 checkpoint save.
  // $CHATBRIDGE_DIST_TIMEOUT (seconds) overrides.
  std::chrono::milliseconds timeout = std::chrono::minutes(30);
  // "auto" (nccl when `device` is CUDA and LibTorch has NCCL, else gloo), "gloo" or "nccl".
  std::string backend = "auto";
  torch::Device device = torch::kCPU;  // where the tensors handed to collectives live
};

// Waits for an asynchronous collective; rethrows its error.
using WaitFn = std::function<void()>;

class ProcessGroup {
 public:
  // Joins the job `env` describes (rank 0 or the launcher hosts the TCPStore at MASTER_ADDR:MASTER_PORT).
  static std::shared_ptr<ProcessGroup> init(const DistEnv& env, DistOptions opts = {});
  // Over an existing store (tests: one HashStore shared by threads); world_size 1 needs no store, and
  // with one still gets a real backend.
  static std::shared_ptr<ProcessGroup> create(c10::intrusive_ptr<c10d::Store> store, int rank, int world_size,
                                              int local_rank, DistOptions opts = {});
  ~ProcessGroup();

  int rank() const { return rank_; }
  int world_size() const { return world_; }
  bool is_main() const { return rank_ == 0; }
  int local_rank() const { return local_rank_; }
  // This process's compute device (DistOptions::device): where its collectives' tensors live.
  torch::Device device() const;
  std::chrono::milliseconds timeout() const { return timeout_; }
  // The training step the following collectives belong to, for failure reports.
  void set_step(int64_t step) { step_ = step; }

  void barrier();
  // Overwrites `tensors` with root's values (coalesced: one broadcast per dtype).
  void broadcast(const std::vector<torch::Tensor>& tensors, int root = 0);
  // Sum over ranks, in place, asynchronously (gradient buckets).
  WaitFn all_reduce_sum_async(torch::Tensor& tensor);
  void all_reduce_sum(torch::Tensor& tensor) { all_reduce_sum_async(tensor)(); }
  double all_reduce_mean(double value);
  // Every rank receives every rank's value, in rank order.
  std::vector<std::string> all_gather(const std::string& value);
  std::vector<nlohmann::json> all_gather_json(const nlohmann::json& value);

 private:
  struct Impl;
  ProcessGroup(std::unique_ptr<Impl> impl, int rank, int world, int local_rank, std::chrono::milliseconds timeout);
  std::unique_ptr<Impl> impl_;
  // Waits for `work` under the watchdog.
  void wait(const char* name, const std::function<void()>& work);
  int rank_ = 0, world_ = 1, local_rank_ = 0;
  std::chrono::milliseconds timeout_;
  int64_t step_ = 0;
};

}  // namespace cb::dist
