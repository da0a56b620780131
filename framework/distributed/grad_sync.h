// Data-parallel gradient averaging as DistributedDataParallel(find_unused_parameters=True) does it:
// gradients are divided by the world size and summed over ranks in buckets (parameters in reverse
// registration order, ~25 MB each, a smaller first one), and a bucket's all-reduce starts from the
// autograd hook of its last gradient, overlapping the rest of backward.
//
//   GradSync sync(trainable_named_params, pg);      // hooks installed once
//   ...
//   sync.backward(loss);                            // = loss.backward(); sync.finish();
//   optimizer.step();
//
// Gradient accumulation: non-final micro-steps run under `auto g = sync.no_sync();` (local accumulation
// only, like DDP.no_sync()); the final micro-step's finish() averages the accumulated gradients.
//
// Parameters without a gradient in a step (ChatBridge routes a batch to one modality, so e.g.
// audio_query_tokens is unused on image steps) still take part: their current .grad (or zeros) fills
// their slot, so every rank issues the same collectives and nobody deadlocks. After the reduction a
// parameter used on some rank receives the average; one used on no rank (in this step or any no_sync
// micro-step since the last sync) keeps its .grad untouched (undefined stays undefined), as in DDP.
// Buckets are always launched in index order, so ranks issue collectives in the same order whatever
// order their hooks fire in.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "framework/distributed/process_group.h"
#include "framework/torch_compat.h"

namespace cb::dist {

struct GradSyncOptions {
  size_t bucket_cap_bytes = 25u << 20;       // DDP's bucket_cap_mb=25
  size_t first_bucket_cap_bytes = 1u << 20;  // DDP's _DEFAULT_FIRST_BUCKET_BYTES: the first bucket starts early
};

class GradSync {
 public:
  GradSync(const torch::OrderedDict<std::string, torch::Tensor>& params, std::shared_ptr<ProcessGroup> pg,
           GradSyncOptions opts = {});
  ~GradSync();
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // Optional, before backward: parameters the graph of `loss` cannot reach are marked ready at once
  // (DDP's find_unused_parameters traversal), so their buckets do not wait for finish(). Parameters
  // used only inside a re-entrant checkpoint are invisible to it: they are taken back if their bucket has
  // not been reduced yet, otherwise backward fails with cb::Error (DDP fails there too).
  void prepare(const torch::Tensor& loss);
  // After backward: reduces the buckets still pending, waits, writes the averaged gradients.
  void finish();
  void backward(const torch::Tensor& loss);

  class NoSync {
   public:
    explicit NoSync(GradSync& s) : s_(s), prev_(s.sync_) { s_.sync_ = false; }
    ~NoSync() { s_.sync_ = prev_; }
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    GradSync& s_;
    bool prev_;
  };
  [[nodiscard]] NoSync no_sync() { return NoSync(*this); }

  // Parameter indices (in the order given) of each bucket, in launch order.
  std::vector<std::vector<size_t>> bucket_indices() const;

 private:
  struct Bucket {
    std::vector<size_t> params;
    std::vector<int64_t> offsets;  // into flat, per entry of params
    torch::Tensor flat;
    size_t pending = 0;
    WaitFn wait;
  };
  enum : char { kNotReady = 0, kFromHook = 1, kUnreached = 2 };  // ready_ values
  void on_grad_ready(size_t i);                                  // autograd hook
  void mark_ready(size_t i, char how = kFromHook);               // callers hold mu_
  void launch_ready_buckets();                                   // callers hold mu_
  void reset_step();

  std::vector<std::string> names_;
  std::vector<torch::Tensor> params_;
  std::shared_ptr<ProcessGroup> pg_;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<size_t, size_t>> slot_;        // param -> (bucket, entry)
  std::vector<compat::AutogradNodePtr> accumulators_;  // kept alive: they carry the hooks
  std::vector<uintptr_t> hook_keys_;
  std::vector<char> ready_, used_;
  size_t next_bucket_ = 0;
  bool sync_ = true;
  std::mutex mu_;
};

}  // namespace cb::dist
