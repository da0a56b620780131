#include "framework/distributed/launcher.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "framework/error.h"
#include "framework/text/parse_number.h"
#include "framework/torch_compat.h"

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

// Returns once something accepts TCP connections at host:port, or at the deadline (the store's own
// connect then reports the timeout); throws when a signal arrived meanwhile. The store client of
// LibTorch 2.x retries through EINTR until its timeout, where 1.13's gave up at once, so without
// this a Ctrl-C to a launcher whose node 0 is not up yet did nothing for the whole join timeout.
void wait_for_listener(const std::string& host, uint16_t port, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (g_signal) fail("{} while waiting for {}:{}", strsignal(g_signal), host, port);
    addrinfo hints{}, *found = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) == 0) {
      bool up = false;
      for (const addrinfo* a = found; a && !up; a = a->ai_next) {
        const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        up = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0;  // a signal interrupts it (no SA_RESTART)
        ::close(fd);
      }
      ::freeaddrinfo(found);
      if (up) return;
    }
    if (std::chrono::steady_clock::now() >= deadline) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

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
      if (!so.isServer) wait_for_listener(o.master_addr, o.master_port, o.rendezvous_timeout);
      store_ = compat::make_tcp_store<c10d::TCPStore>(o.master_addr, so);
    } catch (const std::exception& e) {
      fail("chatbridge-launch: store at {}:{} ({}): {}", o.master_addr, o.master_port,
           so.isServer ? "hosting"
                       : fmt::format("connecting, waited up to {} s: --rdzv-conf join_timeout",
                                     o.rendezvous_timeout.count() / 1000),
           e.what());
    }
    check_layout();
    so.isServer = false;  // the heartbeat's own connection: its calls never wait behind the main loop's
    claim_rank(compat::make_tcp_store<c10d::TCPStore>(o.master_addr, so));
  }

  int run() {
    for (int attempt = entry_attempt();; ++attempt) {
      if (auto code = join(attempt)) return finish(*code);
      spawn(attempt);
      Outcome out = monitor(attempt);
      if (out.kind != Outcome::kFailure || attempt >= o_.max_restarts) leave();  // the outcome is final
      stop_workers();
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

  std::string rank_key(const char* what) const { return fmt::format("launch/node_{}/{}", o_.node_rank, what); }

  // --node-rank is one launcher's alone. A second launcher given the same rank by mistake counted as
  // the first one started again after a loss: the job ran with two workers of the same RANK (a Gloo
  // error) or waited for the node nobody started. The launcher holding a rank ticks
  // launch/node_<r>/beat from a thread of its own every kBeat; a launcher that finds the rank held
  // watches that tick for kBeatWatch: ticking, the holder runs, and this launcher stops naming both
  // hosts (every launcher stops, unless the job already runs with every node); silent, the holder
  // was lost (its host is back, the launcher started again) and this one takes its place.
  static constexpr std::chrono::milliseconds kBeat{200}, kBeatWatch{2000};

  void claim_rank(c10::intrusive_ptr<c10d::Store> beat_store) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    const auto me = fmt::format("{} (pid {})", host, ::getpid());
    const auto id = fmt::format("{}|{}", std::random_device{}(), me);  // unique even where pids repeat
    const auto bytes = [](const std::string& t) { return std::vector<uint8_t>(t.begin(), t.end()); };
    for (;;) {
      const auto held = store_->compareSet(rank_key("holder"), {}, bytes(id));
      const std::string holder(held.begin(), held.end());
      if (holder == id) break;
      const auto who = holder.substr(holder.find('|') + 1);
      spdlog::info("chatbridge-launch: node {} is held by the launcher on {}; checking for {} ms whether it runs",
                   o_.node_rank, who, kBeatWatch.count());
      const auto before = counter(rank_key("beat"));
      for (auto end = std::chrono::steady_clock::now() + kBeatWatch; std::chrono::steady_clock::now() < end;) {
        if (g_signal) fail("chatbridge-launch: interrupted");  // run_launcher makes it a stop
        std::this_thread::sleep_for(kBeat / 4);
        if (counter(rank_key("beat")) != before) duplicate_rank(who, me);
      }
      // Silent: take its place, unless a third launcher of this rank did meanwhile (then check that one).
      const auto now = store_->compareSet(rank_key("holder"), held, bytes(id));
      if (std::string(now.begin(), now.end()) == id) {
        spdlog::warn("chatbridge-launch: the launcher of node {} on {} is gone; this one on {} takes its place",
                     o_.node_rank, who, me);
        break;
      }
    }
    beat_store->add(rank_key("beat"), 1);
    std::thread([store = std::move(beat_store), k = rank_key("beat")] {
      try {
        for (;; std::this_thread::sleep_for(kBeat)) store->add(k, 1);
      } catch (const std::exception&) {  // the store is gone: the main loop says so
      }
    }).detach();
  }

  [[noreturn]] void duplicate_rank(const std::string& holder, const std::string& me) {
    auto why = fmt::format(
        "--node-rank {} was given to two launchers: the one on {} holds it, the one on {} was started with it too "
        "(store {}:{}): give each node's launcher its own --node-rank in [0, {})",
        o_.node_rank, holder, me, o_.master_addr, o_.master_port, o_.nnodes);
    // Before the job runs a node is missing (its rank was given twice): every launcher stops rather
    // than wait for it. A job already running with every node is left alone.
    const bool running =
        store_->check({"launch/attempt"}) && counter(key(read_code("launch/attempt"), "joined")) >= o_.nnodes;
    if (running) {
      why += "; the job runs on without this launcher";
    } else {
      store_->set("launch/abort", std::vector<uint8_t>(why.begin(), why.end()));
      store_->add("launch/exited", 1);  // stands for the node nobody started: node 0 need not wait for it
    }
    fail("chatbridge-launch: {}", why);
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
      if (std::chrono::steady_clock::now() > deadline) {
        std::vector<int> missing;
        for (int n = 0; n < o_.nnodes; ++n)
          if (!store_->check({key(attempt, ("node_" + std::to_string(n)).c_str())})) missing.push_back(n);
        fail(
            "chatbridge-launch: only {} of {} nodes joined attempt {} at {}:{} within {} s (--rdzv-conf "
            "join_timeout); missing: node {}",
            counter(key(attempt, "joined")), o_.nnodes, attempt, o_.master_addr, o_.master_port,
            o_.rendezvous_timeout.count() / 1000, fmt::join(missing, ", "));
      }
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
        if (auto code = shutdown_requested()) return {Outcome::kShutdown, *code};
        if (auto code = reap(); code && store_->add(key(attempt, "nfailed"), 1) == 1)
          set_code(key(attempt, "failcode"), *code);
        if (store_->check({key(attempt, "failcode")})) return {Outcome::kFailure, read_code(key(attempt, "failcode"))};
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
      store_lost_ = true;
      return {Outcome::kShutdown, 1};
    }
  }

  // Node 0 hosts the store: it leaves last, so that the others can read the outcome. Each other
  // launcher says it has read it as soon as it has, before stopping its workers (which may take the
  // stop grace), so node 0 waits only for launchers that are lost, and those for final_wait at most.
  void leave() {
    if (o_.node_rank == 0 || left_ || store_lost_) return;  // a lost store would block here, not fail
    left_ = true;
    try {
      store_->add("launch/exited", 1);
    } catch (const c10::Error&) {
    }
  }

  int finish(int code) {
    leave();
    if (o_.node_rank != 0) return code;
    try {
      const auto deadline = std::chrono::steady_clock::now() + final_wait(o_);
      while (counter("launch/exited") < o_.nnodes - 1 && std::chrono::steady_clock::now() < deadline) sleep_interval();
      if (const auto left = counter("launch/exited"); left < o_.nnodes - 1)
        spdlog::warn(
            "chatbridge-launch: {} of {} other launchers did not read the outcome within {} ms; closing the store",
            o_.nnodes - 1 - left, o_.nnodes - 1, final_wait(o_).count());
    } catch (const c10::Error&) {
    }
    return code;
  }

  const LaunchOptions& o_;
  std::string program_;
  c10::intrusive_ptr<c10d::Store> store_;
  std::vector<Worker> workers_;
  bool left_ = false, store_lost_ = false;
};

}  // namespace

void apply_rdzv_conf(const std::string& conf, LaunchOptions& opts) {
  // torchrun's rendezvous keys that have no counterpart here: membership is fixed (no last call for
  // late nodes, no closing), the store is this launcher's own TCPStore (no other store type, host or
  // read timeout of its own), and nodes are watched through their workers, not rendezvous heartbeats.
  static const std::map<std::string, const char*> unsupported = {
      {"last_call_timeout", "membership is fixed: every node is waited for, none joins late"},
      {"close_timeout", "membership is fixed: a rendezvous is never closed early"},
      {"read_timeout", "the store's reads are bounded by join_timeout"},
      {"heartbeat", "nodes are not watched through rendezvous heartbeats"},
      {"keep_alive_interval", "nodes are not watched through rendezvous heartbeats"},
      {"keep_alive_max_attempt", "nodes are not watched through rendezvous heartbeats"},
      {"is_host", "node 0's launcher always hosts the store"},
      {"store_type", "the store is always a TCPStore on node 0"},
      {"use_libuv", "the store is always a TCPStore on node 0"},
      {"local_addr", "every launcher reaches the store at --master-addr"},
      {"rank", "use --node-rank"},
  };
  std::optional<std::pair<std::string, int64_t>> timeout;  // the key that set it, and its value
  for (size_t start = 0, end = 0; !conf.empty() && end != conf.size(); start = end + 1) {
    end = std::min(conf.find(',', start), conf.size());
    const auto item = conf.substr(start, end - start);
    const auto eq = item.find('=');
    const auto key = item.substr(0, eq);
    if (eq == std::string::npos || key.empty() || eq + 1 == item.size())
      fail("--rdzv-conf '{}': '{}' is not key=value (expected key=value[,key=value])", conf, item);
    const auto value = item.substr(eq + 1);
    if (key == "join_timeout" || key == "timeout") {
      const auto seconds = parse_int<int64_t>(value, "--rdzv-conf " + key, 1, 365LL * 24 * 3600);
      if (timeout && timeout->second != seconds)
        fail("--rdzv-conf: {}={} and {}={} both set the rendezvous wait", timeout->first, timeout->second, key,
             seconds);
      timeout = {key, seconds};
    } else if (auto it = unsupported.find(key); it != unsupported.end()) {
      fail("--rdzv-conf {}: torchrun's {} is not supported by chatbridge-launch ({}); it takes join_timeout", key, key,
           it->second);
    } else {
      std::vector<std::string> others;
      for (const auto& [k, why] : unsupported) others.push_back(k);
      fail(
          "--rdzv-conf: unknown key '{}'; known: join_timeout (or timeout), in seconds; torchrun's {} are not "
          "supported here",
          key, fmt::join(others, ", "));
    }
  }
  if (timeout) opts.rendezvous_timeout = std::chrono::seconds(timeout->second);
}

std::chrono::milliseconds final_wait(const LaunchOptions& opts) {
  // A live launcher reads the outcome within a monitor interval or two; 5 s absorbs a loaded host.
  return std::max(std::chrono::milliseconds(5000), 10 * opts.monitor_interval);
}

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
