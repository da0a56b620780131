#include "framework/distributed/grad_sync.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <unordered_set>

#include "framework/error.h"

namespace cb::dist {

GradSync::GradSync(const torch::OrderedDict<std::string, torch::Tensor>& params, std::shared_ptr<ProcessGroup> pg,
                   GradSyncOptions opts)
    : pg_(std::move(pg)) {
  for (const auto& item : params) {
    if (!item.value().requires_grad()) fail("GradSync: parameter '{}' does not require grad", item.key());
    if (!item.value().is_leaf()) fail("GradSync: parameter '{}' is not a leaf tensor", item.key());
    names_.push_back(item.key());
    params_.push_back(item.value());
  }
  ready_.assign(params_.size(), 0);
  used_.assign(params_.size(), 0);
  slot_.resize(params_.size());
  if (pg_->world_size() == 1) return;  // nothing to average: no hooks, finish() is a no-op

  // Buckets over the parameters in reverse order (the order backward produces them), one dtype/device each.
  for (size_t k = params_.size(); k-- > 0;) {
    const auto& p = params_[k];
    size_t cap = buckets_.size() <= 1 ? opts.first_bucket_cap_bytes : opts.bucket_cap_bytes;
    bool open = !buckets_.empty();
    if (open) {
      auto& b = buckets_.back();
      const auto& head = params_[b.params.front()];
      size_t bytes = static_cast<size_t>(b.offsets.back() + params_[b.params.back()].numel()) * head.element_size();
      open = head.scalar_type() == p.scalar_type() && head.device() == p.device() && bytes < cap;
    }
    if (!open) buckets_.emplace_back();
    auto& b = buckets_.back();
    int64_t off = b.params.empty() ? 0 : b.offsets.back() + params_[b.params.back()].numel();
    slot_[k] = {buckets_.size() - 1, b.params.size()};
    b.params.push_back(k);
    b.offsets.push_back(off);
  }
  for (auto& b : buckets_) {
    const auto& last = params_[b.params.back()];
    b.flat = torch::zeros({b.offsets.back() + last.numel()}, last.options().requires_grad(false));
  }
  reset_step();

  // A post-hook on each parameter's AccumulateGrad node runs once .grad holds this backward's sum.
  for (size_t i = 0; i < params_.size(); ++i) {
    auto acc = torch::autograd::impl::grad_accumulator(params_[i]);
    if (!acc) fail("GradSync: parameter '{}' has no gradient accumulator", names_[i]);
    hook_keys_.push_back(acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [this, i](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          on_grad_ready(i);
          return outputs;
        })));
    accumulators_.push_back(std::move(acc));
  }
}

GradSync::~GradSync() {
  for (size_t i = 0; i < accumulators_.size(); ++i) accumulators_[i]->del_post_hook(hook_keys_[i]);
}

std::vector<std::vector<size_t>> GradSync::bucket_indices() const {
  std::vector<std::vector<size_t>> out;
  for (const auto& b : buckets_) out.push_back(b.params);
  return out;
}

void GradSync::reset_step() {
  std::fill(ready_.begin(), ready_.end(), 0);
  std::fill(used_.begin(), used_.end(), 0);
  for (auto& b : buckets_) {
    b.pending = b.params.size();
    b.wait = nullptr;
  }
  next_bucket_ = 0;
}

void GradSync::on_grad_ready(size_t i) {
  std::lock_guard lock(mu_);
  used_[i] = 1;  // also under no_sync: usage in any micro-step counts
  if (!sync_) return;
  if (ready_[i] == kFromHook) fail("GradSync: parameter '{}' received a second gradient before finish()", names_[i]);
  if (ready_[i] == kUnreached) {
    // Reached after all: a re-entrant backward (activation checkpointing) hides parameters from prepare().
    auto bi = slot_[i].first;
    if (bi < next_bucket_)
      fail(
          "GradSync: parameter '{}' got a gradient after prepare() found it unreachable and its bucket was already "
          "reduced (re-entrant checkpointing?); use backward()/finish() without prepare()",
          names_[i]);
    ++buckets_[bi].pending;
  }
  mark_ready(i);
  launch_ready_buckets();
}

void GradSync::mark_ready(size_t i, char how) {
  ready_[i] = how;
  auto [bi, e] = slot_[i];
  auto& b = buckets_[bi];
  auto view = b.flat.narrow(0, b.offsets[e], params_[i].numel());
  const auto& g = params_[i].grad();
  torch::NoGradGuard no_grad;
  if (g.defined())  // pre-divided as DDP does, so the sum is the mean
    torch::mul_out(view, g.reshape({-1}), 1.0 / pg_->world_size());
  else view.zero_();
  --b.pending;
}

void GradSync::launch_ready_buckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending == 0) {
    auto& b = buckets_[next_bucket_++];
    b.wait = pg_->all_reduce_sum_async(b.flat);
  }
}

void GradSync::prepare(const torch::Tensor& loss) {
  if (buckets_.empty() || !sync_) return;
  // Every node the backward of `loss` can reach.
  std::unordered_set<const torch::autograd::Node*> seen;
  std::vector<torch::autograd::Node*> stack;
  if (auto fn = loss.grad_fn()) stack.push_back(fn.get());
  while (!stack.empty()) {
    auto* n = stack.back();
    stack.pop_back();
    if (!seen.insert(n).second) continue;
    for (const auto& edge : n->next_edges())
      if (edge.function) stack.push_back(edge.function.get());
  }
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < params_.size(); ++i)
    if (!ready_[i] && !seen.count(accumulators_[i].get())) mark_ready(i, kUnreached);
  launch_ready_buckets();
}

void GradSync::finish() {
  if (buckets_.empty() || !sync_) return;
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < params_.size(); ++i)
    if (!ready_[i]) mark_ready(i, kUnreached);
  launch_ready_buckets();
  // Which parameters some rank used: those that nobody used keep their .grad as it is.
  auto used = torch::tensor(std::vector<int32_t>(used_.begin(), used_.end()), torch::kInt32)
                  .to(buckets_.front().flat.device());  // NCCL reduces device tensors only
  auto used_wait = pg_->all_reduce_sum_async(used);
  for (auto& b : buckets_) b.wait();
  used_wait();
  used = used.cpu();
  torch::NoGradGuard no_grad;
  const int32_t* any = used.data_ptr<int32_t>();
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!any[i]) continue;
    auto [bi, e] = slot_[i];
    auto avg = buckets_[bi].flat.narrow(0, buckets_[bi].offsets[e], params_[i].numel()).view(params_[i].sizes());
    auto& g = params_[i].mutable_grad();
    if (g.defined()) g.copy_(avg);
    else g = avg.clone();
  }
  reset_step();
}

void GradSync::backward(const torch::Tensor& loss) {
  loss.backward();
  finish();
}

}  // namespace cb::dist
