// GradSync semantics (DDP with find_unused_parameters) with two ranks as two threads over one HashStore,
// and the rendezvous environment parsing.
#include <catch2/catch.hpp>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include <cstdlib>
#include <functional>
#include <thread>

#include "framework/activation_checkpoint.h"
#include "framework/distributed/grad_sync.h"
#include "framework/distributed/process_group.h"
#include "framework/error.h"

using namespace cb::dist;

namespace {

// Runs fn(pg) on `world` threads, one rank each; rethrows the first failure.
void on_ranks(int world, const std::function<void(ProcessGroup&)>& fn) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::exception_ptr> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        auto pg = ProcessGroup::create(store, r, world, r);
        fn(*pg);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

torch::Tensor param(std::vector<float> v) { return torch::tensor(v).requires_grad_(true); }

struct Params {
  torch::Tensor shared = param({1, 2, 3}), only_rank0 = param({1, 1}), nobody = param({4, 4}), kept = param({7});
  torch::OrderedDict<std::string, torch::Tensor> named() const {
    torch::OrderedDict<std::string, torch::Tensor> d;
    d.insert("shared", shared);
    d.insert("only_rank0", only_rank0);
    d.insert("nobody", nobody);
    d.insert("kept", kept);
    return d;
  }
};

// Rank r's loss: shared·c_r, plus 2·sum(only_rank0) on rank 0.
torch::Tensor loss_of(const Params& p, int rank, float scale = 1) {
  auto c = torch::tensor({1.f + rank, 10.f * (rank + 1), -3.f}) * scale;
  auto l = (p.shared * c).sum();
  if (rank == 0) l = l + 2 * p.only_rank0.sum() * scale;
  return l;
}

}  // namespace

TEST_CASE("GradSync averages used gradients, zero-fills locally unused ones, leaves globally unused ones",
          "[distributed]") {
  for (bool with_prepare : {true, false}) {
    std::vector<std::vector<float>> shared(2), only0(2);
    std::vector<bool> nobody_defined(2);
    std::vector<float> kept(2);
    on_ranks(2, [&](ProcessGroup& pg) {
      Params p;
      p.kept.mutable_grad() = torch::full({1}, 5.f + pg.rank());  // stale grad of an unused parameter
      GradSync sync(p.named(), std::shared_ptr<ProcessGroup>(&pg, [](ProcessGroup*) {}));
      auto loss = loss_of(p, pg.rank());
      if (with_prepare) {
        sync.prepare(loss);
        loss.backward();
        sync.finish();
      } else {
        sync.backward(loss);
      }
      int r = pg.rank();
      shared[r] = std::vector<float>(p.shared.grad().data_ptr<float>(), p.shared.grad().data_ptr<float>() + 3);
      only0[r] = std::vector<float>(p.only_rank0.grad().data_ptr<float>(), p.only_rank0.grad().data_ptr<float>() + 2);
      nobody_defined[r] = p.nobody.grad().defined();
      kept[r] = p.kept.grad().item<float>();
    });
    INFO("prepare(loss) before backward: " << with_prepare);
    for (int r = 0; r < 2; ++r) {
      CHECK(shared[r] == std::vector<float>{1.5f, 15.f, -3.f});  // mean of (1,10,-3) and (2,20,-3)
      CHECK(only0[r] == std::vector<float>{1.f, 1.f});           // (2 + 0) / 2
      CHECK(!nobody_defined[r]);
      CHECK(kept[r] == 5.f + r);  // untouched, as DDP leaves globally unused parameters
    }
  }
}

TEST_CASE("GradSync no_sync accumulates locally and the final micro-step averages the sums", "[distributed]") {
  std::vector<std::vector<float>> shared(2);
  on_ranks(2, [&](ProcessGroup& pg) {
    Params p;
    GradSync sync(p.named(), std::shared_ptr<ProcessGroup>(&pg, [](ProcessGroup*) {}));
    {
      auto guard = sync.no_sync();
      loss_of(p, pg.rank()).backward();
    }
    // Local accumulation only: rank r still holds its own gradient.
    if (p.shared.grad()[1].item<float>() != 10.f * (pg.rank() + 1)) throw std::runtime_error("no_sync reduced");
    sync.backward(loss_of(p, pg.rank(), 2.f));
    auto g = p.shared.grad();
    shared[pg.rank()] = std::vector<float>(g.data_ptr<float>(), g.data_ptr<float>() + 3);
  });
  for (int r = 0; r < 2; ++r) CHECK(shared[r] == std::vector<float>{4.5f, 45.f, -9.f});  // 3 × the mean
}

TEST_CASE("GradSync with a re-entrant checkpoint: parameters used inside it are averaged", "[distributed]") {
  std::vector<float> inner(2), outer(2);
  on_ranks(2, [&](ProcessGroup& pg) {
    auto w_in = param({3}), w_out = param({2});
    torch::OrderedDict<std::string, torch::Tensor> d;
    d.insert("w_in", w_in);
    d.insert("w_out", w_out);
    GradSync sync(d, std::shared_ptr<ProcessGroup>(&pg, [](ProcessGroup*) {}));
    auto x = torch::full({1}, 1.f + pg.rank()).requires_grad_(true);
    auto loss = (cb::checkpoint([&](const torch::Tensor& t) { return t * w_in; }, x) * w_out).sum();
    sync.backward(loss);  // w_in gets its gradient in the checkpoint's inner backward
    inner[pg.rank()] = w_in.grad().item<float>();
    outer[pg.rank()] = w_out.grad().item<float>();
  });
  for (int r = 0; r < 2; ++r) {
    CHECK(inner[r] == 3.f);   // mean of x·w_out = 2 and 4
    CHECK(outer[r] == 4.5f);  // mean of x·w_in = 3 and 6
  }
}

TEST_CASE("GradSync buckets: reverse parameter order, first bucket capped separately", "[distributed]") {
  std::vector<std::vector<size_t>> buckets;
  on_ranks(2, [&](ProcessGroup& pg) {
    torch::OrderedDict<std::string, torch::Tensor> d;
    for (int i = 0; i < 5; ++i) d.insert(fmt::format("p{}", i), param({1, 2}));  // 8 bytes each
    GradSync sync(d, std::shared_ptr<ProcessGroup>(&pg, [](ProcessGroup*) {}), {/*cap*/ 16, /*first cap*/ 8});
    if (pg.rank() == 0) buckets = sync.bucket_indices();
  });
  CHECK(buckets == std::vector<std::vector<size_t>>{{4}, {3, 2}, {1, 0}});
}

TEST_CASE("ProcessGroup collectives: broadcast, mean, all_gather of strings and json", "[distributed]") {
  on_ranks(3, [](ProcessGroup& pg) {
    auto a = torch::full({2, 2}, float(pg.rank())), b = torch::full({3}, double(pg.rank() + 7));
    pg.broadcast({a, b});
    if (a.sum().item<float>() != 0.f || b.sum().item<double>() != 21.0) throw std::runtime_error("broadcast");
    if (pg.all_reduce_mean(pg.rank()) != 1.0) throw std::runtime_error("all_reduce_mean");
    auto s = pg.all_gather(std::string(pg.rank() * 3, 'x'));
    if (s != std::vector<std::string>{"", "xxx", "xxxxxx"}) throw std::runtime_error("all_gather");
    auto j = pg.all_gather_json({{"r", pg.rank()}});
    if (j.size() != 3 || j[2]["r"] != 2) throw std::runtime_error("all_gather_json");
    pg.barrier();
  });
}

TEST_CASE("Rendezvous environment: torchrun, SLURM, none", "[distributed]") {
  for (auto v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID",
                 "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE", "SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST",
                 "SLURM_JOB_ID", "SLURM_STEP_TASKS_PER_NODE", "TORCHELASTIC_RESTART_COUNT"})
    ::unsetenv(v);
  CHECK(!dist_env_from_environment().distributed());

  ::setenv("SLURM_PROCID", "5", 1);
  ::setenv("SLURM_NTASKS", "8", 1);
  ::setenv("SLURM_LOCALID", "1", 1);
  ::setenv("SLURM_NTASKS_PER_NODE", "4(x2)", 1);
  ::setenv("SLURM_JOB_NODELIST", "gpu[07-08]", 1);
  ::setenv("SLURM_JOB_ID", "123456", 1);
  auto s = dist_env_from_environment();
  CHECK(s.source == "slurm");
  CHECK((s.rank == 5 && s.world_size == 8 && s.local_rank == 1 && s.local_world_size == 4));
  CHECK(s.master_addr == "gpu07");
  CHECK(s.master_port == 20000 + 123456 % 10000);

  ::setenv("RANK", "2", 1);  // torchrun variables win over SLURM's
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("MASTER_ADDR", "10.1.2.3", 1);
  ::setenv("MASTER_PORT", "29511", 1);
  ::setenv("TORCHELASTIC_RESTART_COUNT", "1", 1);
  auto t = dist_env_from_environment();
  CHECK(t.source == "torchrun");
  CHECK((t.rank == 2 && t.world_size == 4 && t.master_addr == "10.1.2.3" && t.master_port == 29511));
  CHECK(t.restart_count == 1);

  ::setenv("RANK", "4", 1);
  CHECK_THROWS_AS(dist_env_from_environment(), cb::Error);  // RANK must be below WORLD_SIZE
  ::unsetenv("WORLD_SIZE");
  CHECK_THROWS_AS(dist_env_from_environment(), cb::Error);  // RANK without WORLD_SIZE

  CHECK(first_slurm_host("node1,node2") == "node1");
  CHECK(first_slurm_host("gpu[003-005,9],cpu1") == "gpu003");
  CHECK(first_slurm_host("a[1,3]-ib") == "a1-ib");
}
