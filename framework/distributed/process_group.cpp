#include "framework/distributed/process_group.h"

#include <spdlog/spdlog.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>

#include "framework/distributed/watchdog.h"
#include "framework/error.h"
#include "framework/torch_compat.h"

// LibTorch builds (Debian's, the official archives) include Gloo; its headers come with libgloo-dev.
// CB_NO_GLOO (CMake: -DCB_WITH_GLOO=OFF) leaves it out where the LibTorch in use ships no Gloo headers
// (pip wheels), even though other Gloo headers are on the include path.
#if __has_include(<gloo/config.h>) && !defined(CB_NO_GLOO)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define CB_HAVE_GLOO
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace cb::dist {

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<compat::C10dBackend> backend;  // null when world size is 1
  torch::Device device = torch::kCPU;               // of the helper tensors (NCCL reduces CUDA tensors only)
  std::unique_ptr<Watchdog> watchdog;               // with the backend
};

namespace {

std::chrono::milliseconds timeout_from_env(std::chrono::milliseconds fallback) {
  const char* s = std::getenv("CHATBRIDGE_DIST_TIMEOUT");
  if (!s || !*s) return fallback;
  char* end = nullptr;
  double sec = std::strtod(s, &end);
  if (*end || !(sec > 0)) fail("environment variable CHATBRIDGE_DIST_TIMEOUT='{}': expected seconds > 0", s);
  return std::chrono::milliseconds(static_cast<int64_t>(sec * 1000));
}

bool is_loopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1"; }

// The numeric address of a socket's end.
std::string numeric(const sockaddr* sa, socklen_t len) {
  char host[NI_MAXHOST] = {};
  if (::getnameinfo(sa, len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) != 0) return "";
  return host;
}

// The first address this host's name resolves to, as Gloo's default device takes it; "" when none.
std::string host_name_address() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (::getaddrinfo(name, nullptr, &hints, &res) != 0 || !res) return "";
  std::string addr = numeric(res->ai_addr, res->ai_addrlen);
  ::freeaddrinfo(res);
  return addr;
}

// The local address the kernel routes traffic to `host` from (a UDP connect sends nothing); "" when
// `host` does not resolve or has no route.
std::string address_toward(const std::string& host) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_DGRAM;
  if (::getaddrinfo(host.c_str(), "9", &hints, &res) != 0 || !res) return "";
  std::string addr;
  if (int fd = ::socket(res->ai_family, SOCK_DGRAM, 0); fd >= 0) {
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    if (::connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0)
      addr = numeric(reinterpret_cast<sockaddr*>(&local), len);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return addr;
}

#ifdef CB_HAVE_GLOO
// Gloo binds to the address the host name resolves to and tells the peers that address. Debian and
// Ubuntu map the host name to 127.0.1.1 in /etc/hosts, and an unresolvable name makes Gloo fall back
// to 127.0.0.1: the other hosts then connect to their own loopback ("connect [127.0.1.1]:N: Connection
// refused"). Then the address this host reaches the store through is the one the peers can reach.
std::shared_ptr<::gloo::transport::Device> gloo_device_across_hosts(const std::string& master_addr) {
  const std::string own = host_name_address();
  if (!own.empty() && !is_loopback(own)) return c10d::ProcessGroupGloo::createDefaultDevice();
  const std::string route = address_toward(master_addr);
  if (route.empty() || is_loopback(route)) return c10d::ProcessGroupGloo::createDefaultDevice();
  spdlog::info(
      "distributed: this host's name resolves to {}, which other hosts cannot reach; Gloo uses {}, the "
      "address toward the store at {} (GLOO_SOCKET_IFNAME chooses an interface)",
      own.empty() ? "no address" : own, route, master_addr);
  return c10d::ProcessGroupGloo::createDeviceForHostname(route);
}
#endif

c10::intrusive_ptr<compat::C10dBackend> make_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world,
                                                     const DistOptions& opts, const std::string& master_addr) {
  std::string want = opts.backend;
  if (want == "auto") want = opts.device.is_cuda() ? "nccl" : "gloo";
  if (want == "nccl") {
#ifdef USE_C10D_NCCL
    auto o = c10d::ProcessGroupNCCL::Options::create();
    o->timeout = opts.timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, o);
#else
    if (opts.backend == "nccl") fail("distributed backend 'nccl': this LibTorch was built without NCCL");
    spdlog::warn("distributed: LibTorch has no NCCL; using gloo for CUDA tensors");
    want = "gloo";
#endif
  }
  if (want != "gloo") fail("distributed backend '{}': expected auto, gloo or nccl", opts.backend);
#ifdef CB_HAVE_GLOO
  auto o = c10d::ProcessGroupGloo::Options::create(opts.timeout);
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  else if (is_loopback(master_addr))  // a single-machine job: the host name may not resolve in containers
    o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  else o->devices.push_back(gloo_device_across_hosts(master_addr));
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, o);
#else
  fail("distributed backend 'gloo': built without the Gloo headers (install libgloo-dev and rebuild)");
#endif
}

// The watchdog's own connection to the store (its calls may block while a link is cut), in the
// attempt's key space under a launcher.
c10::intrusive_ptr<c10d::Store> watchdog_store(const DistEnv& env, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions so;
  so.port = env.master_port;
  so.isServer = false;
  so.waitWorkers = false;
  so.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> store = compat::make_tcp_store<c10d::TCPStore>(env.master_addr, so);
  if (env.use_agent_store)
    store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(env.restart_count), store);
  return store;
}

// Flat byte tensor <-> string.
torch::Tensor bytes_tensor(const std::string& s, int64_t size) {
  auto t = torch::zeros({size}, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), s.data(), s.size());
  return t;
}

}  // namespace

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl, int rank, int world, int local_rank,
                           std::chrono::milliseconds timeout)
    : impl_(std::move(impl)), rank_(rank), world_(world), local_rank_(local_rank), timeout_(timeout) {}

ProcessGroup::~ProcessGroup() = default;

std::shared_ptr<ProcessGroup> ProcessGroup::create(c10::intrusive_ptr<c10d::Store> store, int rank, int world_size,
                                                   int local_rank, DistOptions opts) {
  opts.timeout = timeout_from_env(opts.timeout);
  auto impl = std::make_unique<Impl>();
  impl->device = opts.device;
  if (world_size > 1 && !store) fail("distributed: world size {} needs a store", world_size);
  // Given a store, a real backend even for one rank (tests/gpu runs NCCL with world size 1).
  if (store) {
    impl->backend = make_backend(store, rank, world_size, opts, "127.0.0.1");
    impl->watchdog =
        std::make_unique<Watchdog>(store, WatchdogOptions{rank, world_size, opts.timeout, "the given store"});
  }
  impl->store = std::move(store);
  return std::shared_ptr<ProcessGroup>(new ProcessGroup(std::move(impl), rank, world_size, local_rank, opts.timeout));
}

std::shared_ptr<ProcessGroup> ProcessGroup::init(const DistEnv& env, DistOptions opts) {
  opts.timeout = timeout_from_env(opts.timeout);
  auto impl = std::make_unique<Impl>();
  impl->device = opts.device;
  if (env.distributed()) {
    c10d::TCPStoreOptions so;
    so.port = env.master_port;
    so.timeout = opts.timeout;
    // Under a launcher (torchrun, chatbridge-launch) the agent already hosts the store; each restart
    // attempt gets its own key space so stale keys of a failed attempt are never read.
    so.isServer = env.rank == 0 && !env.use_agent_store;
    so.numWorkers = env.world_size;
    so.waitWorkers = false;
    c10::intrusive_ptr<c10d::Store> store;
    try {
      store = compat::make_tcp_store<c10d::TCPStore>(env.master_addr, so);
    } catch (const std::exception& e) {
      fail("distributed rendezvous at {}:{} (rank {}/{}): {}", env.master_addr, env.master_port, env.rank,
           env.world_size, e.what());
    }
    if (env.use_agent_store)
      store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(env.restart_count), store);
    impl->backend = make_backend(store, env.rank, env.world_size, opts, env.master_addr);
    impl->store = std::move(store);
    impl->watchdog = std::make_unique<Watchdog>(
        watchdog_store(env, opts.timeout), WatchdogOptions{env.rank, env.world_size, opts.timeout,
                                                           fmt::format("{}:{}", env.master_addr, env.master_port)});
    spdlog::info("distributed: rank {}/{} (local {}/{}) joined via {} at {}:{}, backend {}, timeout {} s", env.rank,
                 env.world_size, env.local_rank, env.local_world_size, env.source, env.master_addr, env.master_port,
                 impl->backend->getBackendName(), opts.timeout.count() / 1000.0);
  }
  return std::shared_ptr<ProcessGroup>(
      new ProcessGroup(std::move(impl), env.rank, env.world_size, env.local_rank, opts.timeout));
}

void ProcessGroup::wait(const char* name, const std::function<void()>& work) {
  impl_->watchdog->wait(name, step_, work);
}

torch::Device ProcessGroup::device() const { return impl_->device; }

void ProcessGroup::barrier() {
  if (!impl_->backend) return;
  auto work = impl_->backend->barrier();
  wait("barrier", [&] { work->wait(); });
}

void ProcessGroup::broadcast(const std::vector<torch::Tensor>& tensors, int root) {
  if (!impl_->backend || tensors.empty()) return;
  torch::NoGradGuard no_grad;
  // One flat buffer per dtype, in the given order.
  std::map<torch::ScalarType, std::vector<torch::Tensor>> by_dtype;
  for (const auto& t : tensors) by_dtype[t.scalar_type()].push_back(t);
  for (auto& [dtype, group] : by_dtype) {
    std::vector<torch::Tensor> flat_parts;
    for (const auto& t : group) flat_parts.push_back(t.detach().reshape({-1}));
    std::vector<torch::Tensor> flat{torch::cat(flat_parts)};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    auto work = impl_->backend->broadcast(flat, o);
    wait("broadcast", [&] { work->wait(); });
    int64_t off = 0;
    for (const auto& t : group) {
      t.detach().copy_(flat[0].narrow(0, off, t.numel()).view(t.sizes()));
      off += t.numel();
    }
  }
}

WaitFn ProcessGroup::all_reduce_sum_async(torch::Tensor& tensor) {
  if (!impl_->backend) return [] {};
  std::vector<torch::Tensor> v{tensor};
  auto work = impl_->backend->allreduce(v);
  return [this, work] { wait("all_reduce", [&] { work->wait(); }); };
}

double ProcessGroup::all_reduce_mean(double value) {
  if (!impl_->backend) return value;
  auto t = torch::tensor({value}, torch::kFloat64).to(impl_->device);
  all_reduce_sum(t);
  return t.item<double>() / world_;
}

std::vector<std::string> ProcessGroup::all_gather(const std::string& value) {
  if (!impl_->backend) return {value};
  // Gloo gathers equal shapes: sizes first, then the bytes padded to the longest.
  const auto dev = impl_->device;
  std::vector<torch::Tensor> size_in{torch::tensor({static_cast<int64_t>(value.size())}, torch::kInt64).to(dev)};
  std::vector<std::vector<torch::Tensor>> size_out(1);
  for (int r = 0; r < world_; ++r) size_out[0].push_back(torch::empty({1}, torch::dtype(torch::kInt64).device(dev)));
  auto sizes = impl_->backend->allgather(size_out, size_in);
  wait("all_gather", [&] { sizes->wait(); });
  int64_t longest = 1;
  for (const auto& s : size_out[0]) longest = std::max(longest, s.item<int64_t>());
  std::vector<torch::Tensor> data_in{bytes_tensor(value, longest).to(dev)};
  std::vector<std::vector<torch::Tensor>> data_out(1);
  for (int r = 0; r < world_; ++r)
    data_out[0].push_back(torch::empty({longest}, torch::dtype(torch::kUInt8).device(dev)));
  auto data = impl_->backend->allgather(data_out, data_in);
  wait("all_gather", [&] { data->wait(); });
  std::vector<std::string> out;
  for (int r = 0; r < world_; ++r) {
    auto bytes = data_out[0][r].cpu();
    out.emplace_back(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()),
                     static_cast<size_t>(size_out[0][r].item<int64_t>()));
  }
  return out;
}

std::vector<nlohmann::json> ProcessGroup::all_gather_json(const nlohmann::json& value) {
  std::vector<nlohmann::json> out;
  for (const auto& s : all_gather(value.dump())) out.push_back(nlohmann::json::parse(s));
  return out;
}

}  // namespace cb::dist
