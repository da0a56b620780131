#include "framework/distributed/launcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <thread>

#include "framework/error.h"

extern char** environ;

namespace cb::dist {
namespace {

volatile sig_atomic_t g_signal = 0;
void on_signal(int sig) { g_signal = sig; }

// Installs the forwarding handlers for the launcher's lifetime.
class SignalScope {
 public:
  SignalScope() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int s : kSignals) sigaction(s, &sa, &old_[s]);
    g_signal = 0;
  }
  ~SignalScope() {
    for (int s : kSignals) sigaction(s, &old_[s], nullptr);
  }

 private:
  static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
  std::map<int, struct sigaction> old_;
};

std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    // Checked here, once: a path that is wrong on this node would otherwise fail in every worker with
    // exit code 127, attempt after attempt.
    if (::access(name.c_str(), X_OK) != 0)
      fail("chatbridge-launch: program '{}': {}", name,
           errno == ENOENT ? "no such file on this host" : std::strerror(errno));
    return name;
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  for (size_t start = 0; start <= dirs.size();) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    auto candidate =
        std::filesystem::path(dirs.substr(start, end - start).empty() ? "." : dirs.substr(start, end - start)) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    start = end + 1;
  }
  fail("chatbridge-launch: program '{}' not found in PATH", name);
}

int exit_code_of(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

// The failure code a rejoining node publishes for the attempt that ran without it.
constexpr int kRejoinCode = 1;

struct Worker {
  int local_rank = 0;
  pid_t pid = -1;
  std::optional<int> code;  // set once reaped
};

class Node {
 public:
  explicit Node(const LaunchOptions& o) : o_(o), program_(find_program(o.command.at(0))) {
    c10d::TCPStoreOptions so;
    so.port = o.master_port;
    so.isServer = o.node_rank == 0;
    so.waitWorkers = false;
    so.timeout = o.rendezvous_timeout;
    // A wrong --master-addr/--master-port or a node 0 not started yet looks the same from here: say
    // what this launcher waits for, rather than nothing for the whole timeout.
    if (!so.isServer)
      spdlog::info("chatbridge-launch: node {} connects to the store of node 0's launcher at {}:{} (up to {} s)",
                   o.node_rank, o.master_addr, o.master_port, o.rendezvous_timeout.count() / 1000);
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
    } catch (const std::exception& e) {
      fail("chatbridge-launch: store at {}:{} ({}): {}", o.master_addr, o.master_port,
           so.isServer ? "hosting" : "connecting", e.what());
    }
    check_layout();
  }

  int run() {
    for (int attempt = entry_attempt();; ++attempt) {
      if (auto code = join(attempt)) return finish(*code);
      spawn(attempt);
      Outcome out = monitor(attempt);
      if (out.kind == Outcome::kSuccess) return finish(0);
      if (out.kind == Outcome::kShutdown) return finish(out.code);
      if (attempt >= o_.max_restarts) {
        spdlog::error("chatbridge-launch: worker failed with exit code {}; no restarts left ({} allowed)", out.code,
                      o_.max_restarts);
        return finish(out.code);
      }
      spdlog::warn("chatbridge-launch: worker failed with exit code {}; restarting the job ({}/{})", out.code,
                   attempt + 1, o_.max_restarts);
    }
  }

 private:
  struct Outcome {
    enum Kind { kSuccess, kFailure, kShutdown } kind;
    int code = 0;
  };

  std::string key(int attempt, const char* what) const { return fmt::format("launch/attempt_{}/{}", attempt, what); }
  int64_t counter(const std::string& k) { return store_->add(k, 0); }
  int read_code(const std::string& k) {
    auto v = store_->get(k);
    return std::stoi(std::string(v.begin(), v.end()));
  }
  void set_code(const std::string& k, int code) {
    auto s = std::to_string(code);
    store_->set(k, std::vector<uint8_t>(s.begin(), s.end()));
  }
  void sleep_interval() const { std::this_thread::sleep_for(o_.monitor_interval); }

  // Every launcher must describe the same job. Ranks are node_rank x nproc_per_node + local rank, so a
  // node with another --nproc-per-node gives overlapping ranks and another world size (Gloo then fails
  // with an opaque size check); another --nnodes or --max-restarts waits for nodes or attempts that
  // never come. Node 0 publishes its options; a node that differs says so, and so do the others.
  void check_layout() {
    const std::string mine = fmt::format("--nnodes {} --nproc-per-node {} --max-restarts {} --rdzv-id {}", o_.nnodes,
                                         o_.nproc_per_node, o_.max_restarts, o_.run_id);
    if (o_.node_rank == 0) {
      store_->set("launch/layout", std::vector<uint8_t>(mine.begin(), mine.end()));
      return;
    }
    const auto v = store_->get("launch/layout");  // waits for node 0's launcher
    if (const std::string first(v.begin(), v.end()); first != mine) {
      const auto why = fmt::format(
          "node {} was started with {}, node 0 with {} (store {}:{}): start every node's launcher with the same "
          "options",
          o_.node_rank, mine, first, o_.master_addr, o_.master_port);
      store_->set("launch/abort", std::vector<uint8_t>(why.begin(), why.end()));
      store_->add("launch/exited", 1);
      fail("chatbridge-launch: {}", why);
    }
  }

  // Signal received here, or a shutdown published by another node: the exit code to use.
  std::optional<int> shutdown_requested() {
    if (g_signal) {
      int code = 128 + g_signal;
      if (store_->add("launch/nshutdown", 1) == 1) set_code("launch/shutdown", code);
      spdlog::warn("chatbridge-launch: {} received, stopping the job", strsignal(g_signal));
      return code;
    }
    if (store_->check({"launch/shutdown"})) return read_code("launch/shutdown");
    if (store_->check({"launch/abort"})) {
      const auto why = store_->get("launch/abort");
      spdlog::error("chatbridge-launch: stopping: {}", std::string(why.begin(), why.end()));
      return 1;
    }
    return std::nullopt;
  }

  // The attempt this launcher joins. 0 for a new job; a launcher started while the job runs (its host
  // is back after a loss) joins the attempt in progress, or, when that one already runs with every
  // node (it counted this node's lost launcher), marks it failed so that all nodes restart together.
  int entry_attempt() {
    if (!store_->check({"launch/attempt"})) return 0;
    int attempt = read_code("launch/attempt");
    if (counter(key(attempt, "joined")) < o_.nnodes) return attempt;
    spdlog::warn("chatbridge-launch: node {} rejoins a running job: restarting attempt {} with every node",
                 o_.node_rank, attempt);
    if (store_->add(key(attempt, "nfailed"), 1) == 1) set_code(key(attempt, "failcode"), kRejoinCode);
    return attempt + 1;
  }

  // Every node's launcher arrives before attempt `attempt` starts; nullopt when it may start.
  std::optional<int> join(int attempt) {
    set_code("launch/attempt", attempt);
    // Once per node: a launcher started again on its node while the others still wait (the first one
    // was lost after joining) would otherwise count twice, and the attempt start without a node.
    if (store_->add(key(attempt, ("node_" + std::to_string(o_.node_rank)).c_str()), 1) == 1)
      store_->add(key(attempt, "joined"), 1);
    auto deadline = std::chrono::steady_clock::now() + o_.rendezvous_timeout;
    if (const auto joined = counter(key(attempt, "joined")); joined < o_.nnodes)
      spdlog::info("chatbridge-launch: node {} waits for {} more node(s) to join attempt {} (up to {} s)", o_.node_rank,
                   o_.nnodes - joined, attempt, o_.rendezvous_timeout.count() / 1000);
    while (counter(key(attempt, "joined")) < o_.nnodes) {
      if (auto code = shutdown_requested()) return code;
      if (std::chrono::steady_clock::now() > deadline)
        fail("chatbridge-launch: only {} of {} nodes joined attempt {} at {}:{}", counter(key(attempt, "joined")),
             o_.nnodes, attempt, o_.master_addr, o_.master_port);
      sleep_interval();
    }
    return std::nullopt;
  }

  std::vector<std::string> worker_env(int local_rank, int attempt) const {
    int world = o_.nnodes * o_.nproc_per_node, rank = o_.node_rank * o_.nproc_per_node + local_rank;
    std::map<std::string, std::string> set = {
        {"RANK", std::to_string(rank)},
        {"LOCAL_RANK", std::to_string(local_rank)},
        {"WORLD_SIZE", std::to_string(world)},
        {"LOCAL_WORLD_SIZE", std::to_string(o_.nproc_per_node)},
        {"GROUP_RANK", std::to_string(o_.node_rank)},
        {"GROUP_WORLD_SIZE", std::to_string(o_.nnodes)},
        {"ROLE_RANK", std::to_string(rank)},
        {"ROLE_WORLD_SIZE", std::to_string(world)},
        {"ROLE_NAME", "default"},
        {"MASTER_ADDR", o_.master_addr},
        {"MASTER_PORT", std::to_string(o_.master_port)},
        {"TORCHELASTIC_RESTART_COUNT", std::to_string(attempt)},
        {"TORCHELASTIC_MAX_RESTARTS", std::to_string(o_.max_restarts)},
        {"TORCHELASTIC_RUN_ID", o_.run_id},
        {"TORCHELASTIC_USE_AGENT_STORE", "True"},
    };
    // torchrun's default against oversubscription when several workers share a node.
    if (o_.nproc_per_node > 1 && !std::getenv("OMP_NUM_THREADS")) set["OMP_NUM_THREADS"] = "1";
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      std::string kv = *e;
      if (!set.count(kv.substr(0, kv.find('=')))) env.push_back(kv);
    }
    for (const auto& [k, v] : set) env.push_back(k + "=" + v);
    return env;
  }

  void spawn(int attempt) {
    workers_.clear();
    std::vector<char*> argv;
    for (const auto& a : o_.command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t self = ::getpid();
    for (int lr = 0; lr < o_.nproc_per_node; ++lr) {
      auto env = worker_env(lr, attempt);  // built before fork: the child only calls async-signal-safe functions
      std::vector<char*> envp;
      for (auto& kv : env) envp.push_back(kv.data());
      envp.push_back(nullptr);
      const std::string exec_failed =
          fmt::format("chatbridge-launch: rank {}: cannot run {}: ", o_.node_rank * o_.nproc_per_node + lr, program_);
      pid_t pid = ::fork();
      if (pid < 0) fail("chatbridge-launch: fork failed: {}", std::strerror(errno));
      if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a launcher killed with -9 takes its workers along
        if (::getppid() != self) ::_exit(128 + SIGKILL);
        ::execve(program_.c_str(), argv.data(), envp.data());
        // Only async-signal-safe calls past fork: write(2), and glibc's static table of errno texts.
        const char* why = ::strerrordesc_np(errno);
        [[maybe_unused]] auto n = ::write(2, exec_failed.data(), exec_failed.size());
        n = ::write(2, why ? why : "unknown error", why ? std::strlen(why) : 13);
        n = ::write(2, "\n", 1);
        ::_exit(127);
      }
      workers_.push_back({lr, pid, std::nullopt});
    }
    spdlog::info("chatbridge-launch: node {}/{} attempt {}: started ranks {}..{} of {}: {}", o_.node_rank, o_.nnodes,
                 attempt, o_.node_rank * o_.nproc_per_node, (o_.node_rank + 1) * o_.nproc_per_node - 1,
                 o_.nnodes * o_.nproc_per_node, fmt::join(o_.command, " "));
  }

  // Reaps exited workers; returns the first failure's code. `stopping`: the exits were asked for.
  std::optional<int> reap(bool stopping = false) {
    std::optional<int> failed;
    for (auto& w : workers_) {
      if (w.code) continue;
      int status = 0;
      pid_t r = ::waitpid(w.pid, &status, WNOHANG);
      if (r != w.pid) continue;
      w.code = exit_code_of(status);
      if (*w.code != 0) {
        spdlog::log(stopping ? spdlog::level::info : spdlog::level::err,
                    "chatbridge-launch: local rank {} (pid {}) exited with code {}", w.local_rank, w.pid, *w.code);
        if (!failed) failed = w.code;
      }
    }
    return failed;
  }

  void signal_workers(int sig) {
    for (auto& w : workers_)
      if (!w.code) ::kill(w.pid, sig);
  }

  void stop_workers(int sig = SIGTERM) {
    signal_workers(sig);
    signal_workers(SIGCONT);  // a stopped worker acts on the signal now, not after the grace period
    auto deadline = std::chrono::steady_clock::now() + o_.stop_grace;
    while (std::any_of(workers_.begin(), workers_.end(), [](const Worker& w) { return !w.code; })) {
      if (std::chrono::steady_clock::now() > deadline) {
        spdlog::warn("chatbridge-launch: workers still alive after {} ms, sending SIGKILL", o_.stop_grace.count());
        signal_workers(SIGKILL);
        for (auto& w : workers_) {
          int status = 0;
          if (!w.code && ::waitpid(w.pid, &status, 0) == w.pid) w.code = exit_code_of(status);
        }
        break;
      }
      reap(/*stopping=*/true);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  Outcome monitor(int attempt) {
    bool done_reported = false;
    try {
      for (;;) {
        sleep_interval();
        if (g_signal) signal_workers(g_signal);  // forwarded first, as torchrun does
        if (auto code = shutdown_requested()) {
          stop_workers();
          return {Outcome::kShutdown, *code};
        }
        if (auto code = reap(); code && store_->add(key(attempt, "nfailed"), 1) == 1)
          set_code(key(attempt, "failcode"), *code);
        if (store_->check({key(attempt, "failcode")})) {
          stop_workers();
          return {Outcome::kFailure, read_code(key(attempt, "failcode"))};
        }
        bool all_ok = std::all_of(workers_.begin(), workers_.end(), [](const Worker& w) { return w.code == 0; });
        if (all_ok && !done_reported) {
          store_->add(key(attempt, "done"), 1);
          done_reported = true;
        }
        if (done_reported && counter(key(attempt, "done")) == o_.nnodes) return {Outcome::kSuccess, 0};
      }
    } catch (const c10::Error& e) {  // the store (node 0's launcher) is gone
      spdlog::error("chatbridge-launch: lost the store at {}:{}: {}", o_.master_addr, o_.master_port,
                    e.what_without_backtrace());
      stop_workers();
      return {Outcome::kShutdown, 1};
    }
  }

  // Node 0 hosts the store: it leaves last, so that the others can read the outcome.
  int finish(int code) {
    try {
      if (o_.node_rank != 0) {
        store_->add("launch/exited", 1);
      } else {
        auto deadline = std::chrono::steady_clock::now() + o_.stop_grace;
        while (counter("launch/exited") < o_.nnodes - 1 && std::chrono::steady_clock::now() < deadline)
          sleep_interval();
      }
    } catch (const c10::Error&) {
    }
    return code;
  }

  const LaunchOptions& o_;
  std::string program_;
  c10::intrusive_ptr<c10d::Store> store_;
  std::vector<Worker> workers_;
};

}  // namespace

int run_launcher(const LaunchOptions& opts) {
  if (opts.command.empty()) fail("chatbridge-launch: no program to run");
  if (opts.nproc_per_node < 1) fail("chatbridge-launch: --nproc-per-node must be >= 1, got {}", opts.nproc_per_node);
  if (opts.nnodes < 1) fail("chatbridge-launch: --nnodes must be >= 1, got {}", opts.nnodes);
  if (opts.node_rank < 0 || opts.node_rank >= opts.nnodes)
    fail("chatbridge-launch: --node-rank {} is not in [0, {})", opts.node_rank, opts.nnodes);
  if (opts.max_restarts < 0) fail("chatbridge-launch: --max-restarts must be >= 0, got {}", opts.max_restarts);
  SignalScope signals;
  std::optional<Node> node;
  try {
    node.emplace(opts);
  } catch (const std::exception& e) {
    if (!g_signal) throw;
    // Ctrl-C while connecting or checking the options interrupts a store call: a stop, not a failure.
    spdlog::warn("chatbridge-launch: {} received while joining the store at {}:{}, stopping", strsignal(g_signal),
                 opts.master_addr, opts.master_port);
    return 128 + g_signal;
  }
  return node->run();
}

uint16_t free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("free_tcp_port: socket: {}", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    ::close(fd);
    fail("free_tcp_port: {}", std::strerror(err));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace cb::dist
