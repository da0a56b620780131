// Integration: data-parallel equivalence, multi-node launch, restarts, exit codes and signals, with real
// processes (tests/framework/distributed/dist_worker.cpp) talking over loopback TCP. Each test picks its own ports.
#include <signal.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <iostream>
#include <thread>

#include "framework/checkpoint/safetensors.h"
#include "framework/distributed/launcher.h"
#include "tests/support/process_util.h"
#include "tests/support/scratch_dir.h"

namespace fs = std::filesystem;
using cb::test::fresh_dir;
using cb::test::read_losses;
using cb::test::spawn;
using cb::test::torchrun_env;
using cb::test::wait_exit;

namespace {

const std::string kWorker = CB_DIST_WORKER;
const std::string kLaunch = CB_LAUNCH;

// `world` worker processes started directly with the torchrun variables (no launcher).
void run_direct(const fs::path& out, int world, std::vector<std::string> args) {
  auto port = std::to_string(cb::dist::free_tcp_port());
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> argv = {kWorker, "--out", out.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    pids.push_back(spawn(argv, torchrun_env(r, world, port), out / "log.txt"));
  }
  for (pid_t p : pids) REQUIRE(wait_exit(p) == 0);
}

std::vector<std::string> launch_argv(const std::string& port, std::vector<std::string> opts, const fs::path& out,
                                     std::vector<std::string> worker_args) {
  std::vector<std::string> argv = {kLaunch, "--master-addr",      "127.0.0.1", "--master-port",
                                   port,    "--monitor-interval", "0.05"};
  argv.insert(argv.end(), opts.begin(), opts.end());
  argv.insert(argv.end(), {kWorker, "--out", out.string()});
  argv.insert(argv.end(), worker_args.begin(), worker_args.end());
  return argv;
}

void require_close(const std::vector<double>& a, const std::vector<double>& b, double tol, const std::string& what) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  std::cout << "[dist] " << what << ": max_err=" << m << " bound=" << tol << "\n";
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("step " << i << ": " << a[i] << " vs " << b[i]);
    REQUIRE(std::abs(a[i] - b[i]) <= tol);
  }
}

double max_param_diff(const fs::path& a, const fs::path& b, const std::string& what) {
  cb::SafetensorsFile fa(a / "final.safetensors"), fb(b / "final.safetensors");
  double m = 0;
  for (const auto& e : fa.entries())
    m = std::max(m, (fa.tensor(e.name) - fb.tensor(e.name)).abs().max().item<double>());
  std::cout << "[dist] " << what << " final parameters: max_err=" << m << " bound=1e-05\n";
  return m;
}

bool exists_attempt(const fs::path& out, int attempt, int rank) {
  return fs::exists(out / ("attempt_" + std::to_string(attempt) + "_rank" + std::to_string(rank)));
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Until `file` holds `what` (bounded, not timed); whether it does.
bool wait_for_text(const fs::path& file, const std::string& what) {
  for (int i = 0; i < 800 && read_text(file).find(what) == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  return read_text(file).find(what) != std::string::npos;
}

// Node n's launcher of a job of `nnodes` on `port`, its output in out/log.
pid_t start_node(const std::string& port, int nnodes, int n, const fs::path& out,
                 const std::vector<std::string>& worker_args, const std::string& log) {
  return spawn(
      launch_argv(port, {"--nnodes", std::to_string(nnodes), "--node-rank", std::to_string(n)}, out, worker_args), {},
      out / log);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("2 ranks with batch b train as 1 rank with batch 2b", "[distributed]") {
  auto one = fresh_dir("eq_one"), two = fresh_dir("eq_two"), two_acc = fresh_dir("eq_two_accum");
  run_direct(one, 1, {"--batch", "8"});
  run_direct(two, 2, {"--batch", "4"});
  run_direct(two_acc, 2, {"--batch", "4", "--accum", "2"});
  auto ref = read_losses(one / "losses.txt");
  REQUIRE(ref.size() == 8);
  REQUIRE(ref.back() < ref.front());  // it trains
  require_close(read_losses(two / "losses.txt"), ref, 1e-5, "2 ranks vs 1 rank losses");
  require_close(read_losses(two_acc / "losses.txt"), ref, 1e-5, "2 ranks x 2 micro-steps vs 1 rank losses");
  CHECK(max_param_diff(one, two, "2 ranks vs 1 rank") <= 1e-5);
  CHECK(max_param_diff(one, two_acc, "2 ranks x 2 micro-steps vs 1 rank") <= 1e-5);
  for (const auto& d : {one, two, two_acc}) fs::remove_all(d);
}

TEST_CASE("2 nodes x 2 processes through chatbridge-launch", "[distributed]") {
  auto one = fresh_dir("nodes_one"), four = fresh_dir("nodes_four");
  run_direct(one, 1, {"--batch", "8"});
  auto port = std::to_string(cb::dist::free_tcp_port());
  std::vector<pid_t> nodes;
  // The rendezvous wait is each launcher's own: node 1's differs from node 0's and the layout check lets it.
  for (int n = 0; n < 2; ++n)
    nodes.push_back(spawn(launch_argv(port,
                                      {"--nnodes", "2", "--node-rank", std::to_string(n), "--nproc-per-node", "2",
                                       "--rdzv-conf", n == 1 ? "join_timeout=120" : "timeout=900"},
                                      four, {"--batch", "2"}),
                          {}, four / ("launcher" + std::to_string(n) + ".txt")));
  for (pid_t p : nodes) REQUIRE(wait_exit(p) == 0);
  require_close(read_losses(four / "losses.txt"), read_losses(one / "losses.txt"), 1e-5, "2x2 ranks vs 1 rank losses");
  CHECK(max_param_diff(one, four, "2x2 ranks vs 1 rank") <= 1e-5);
  auto gathered = nlohmann::json::parse(std::ifstream(four / "gathered.json"));
  REQUIRE(gathered.size() == 4);
  for (int r = 0; r < 4; ++r) CHECK(gathered[r]["rank"] == r);
  for (const auto& d : {one, four}) fs::remove_all(d);
}

TEST_CASE("kill -9 of a worker: the launcher restarts the job and the losses match an uninterrupted run",
          "[distributed]") {
  auto clean = fresh_dir("kill_clean"), killed = fresh_dir("kill_killed");
  auto args = std::vector<std::string>{"--batch", "4", "--steps", "10"};
  REQUIRE(
      wait_exit(spawn(launch_argv(std::to_string(cb::dist::free_tcp_port()), {"--nproc-per-node", "2"}, clean, args),
                      {}, clean / "launcher.txt")) == 0);
  auto crash = args;
  crash.insert(crash.end(), {"--crash-step", "5", "--crash-rank", "1"});
  REQUIRE(wait_exit(spawn(launch_argv(std::to_string(cb::dist::free_tcp_port()),
                                      {"--nproc-per-node", "2", "--max-restarts", "2"}, killed, crash),
                          {}, killed / "launcher.txt")) == 0);
  CHECK(exists_attempt(killed, 1, 0));   // restarted once ...
  CHECK(!exists_attempt(killed, 2, 0));  // ... and only once
  auto a = read_losses(clean / "losses.txt"), b = read_losses(killed / "losses.txt");
  REQUIRE(a.size() == 10);
  require_close(b, a, 0.0, "restarted vs uninterrupted losses");  // same arithmetic, same order: identical
  for (const auto& d : {clean, killed}) fs::remove_all(d);
}

TEST_CASE("a worker exiting with code 3: the launcher exits 3 after its restarts", "[distributed]") {
  auto out = fresh_dir("exit3");
  int code = wait_exit(
      spawn(launch_argv(std::to_string(cb::dist::free_tcp_port()), {"--nproc-per-node", "2", "--max-restarts", "1"},
                        out, {"--exit-code", "3", "--exit-step", "2"}),
            {}, out / "launcher.txt"));
  CHECK(code == 3);
  CHECK(exists_attempt(out, 0, 1));
  CHECK(exists_attempt(out, 1, 1));
  CHECK(!exists_attempt(out, 2, 1));
  fs::remove_all(out);
}

TEST_CASE("SIGTERM to the launcher stops every worker", "[distributed]") {
  auto out = fresh_dir("sigterm");
  pid_t launcher = spawn(
      launch_argv(std::to_string(cb::dist::free_tcp_port()), {"--nproc-per-node", "2"}, out, {"--wait-for-signal"}), {},
      out / "launcher.txt");
  // Wait (bounded, not timed) until both workers have joined the group and written their pids.
  for (int i = 0; i < 1200 && !(fs::exists(out / "pid_0") && fs::exists(out / "pid_1")); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(fs::exists(out / "pid_0"));
  REQUIRE(fs::exists(out / "pid_1"));
  std::vector<pid_t> workers;
  for (int r = 0; r < 2; ++r) {
    std::ifstream in(out / ("pid_" + std::to_string(r)));
    pid_t p = 0;
    in >> p;
    workers.push_back(p);
  }
  REQUIRE(::kill(launcher, SIGTERM) == 0);
  CHECK(wait_exit(launcher) == 128 + SIGTERM);
  for (pid_t p : workers) CHECK((::kill(p, 0) == -1 && errno == ESRCH));
  fs::remove_all(out);
}

TEST_CASE("launchers started with different --nproc-per-node stop at once, naming both nodes' options",
          "[distributed]") {
  // Ranks are node_rank x nproc_per_node + local rank: without the check node 1's worker took rank 1
  // of 2 while node 0's took ranks 0..1 of 4, and Gloo failed with "sizeof(impl_) == bytes.size()".
  auto out = fresh_dir("layout");
  auto port = std::to_string(cb::dist::free_tcp_port());
  std::vector<pid_t> nodes;
  for (int n = 0; n < 2; ++n)
    nodes.push_back(spawn(
        launch_argv(port, {"--nnodes", "2", "--node-rank", std::to_string(n), "--nproc-per-node", n == 0 ? "2" : "1"},
                    out, {"--batch", "2"}),
        {}, out / ("launcher" + std::to_string(n) + ".txt")));
  for (pid_t p : nodes) CHECK(wait_exit(p) == 1);
  for (int n = 0; n < 2; ++n) {
    std::ifstream in(out / ("launcher" + std::to_string(n) + ".txt"));
    const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    INFO("node " << n << " log:\n" << log);
    CHECK(log.find("node 1 was started with --nnodes 2 --nproc-per-node 1") != std::string::npos);
    CHECK(log.find("node 0 with --nnodes 2 --nproc-per-node 2") != std::string::npos);
    CHECK(!exists_attempt(out, 0, 0));  // no worker started
  }
  fs::remove_all(out);
}

TEST_CASE("Ctrl-C to a launcher waiting for node 0's store: it says what it waits for and exits 130", "[distributed]") {
  auto out = fresh_dir("no_store");
  const auto log = out / "launcher1.txt";
  // Nothing listens on the port: node 0 not started yet, or a wrong --master-addr/--master-port.
  pid_t node1 = spawn(launch_argv(std::to_string(cb::dist::free_tcp_port()), {"--nnodes", "2", "--node-rank", "1"}, out,
                                  {"--batch", "2"}),
                      {}, log);
  auto text = [&] {
    std::ifstream in(log);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  for (int i = 0; i < 400 && text().find("connects to the store") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  INFO(text());
  CHECK(text().find("node 1 connects to the store of node 0's launcher at 127.0.0.1:") != std::string::npos);
  REQUIRE(::kill(node1, SIGINT) == 0);
  CHECK(wait_exit(node1) == 128 + SIGINT);  // a stop, as torchrun's; was 1 ("Interrupted system call")
  fs::remove_all(out);
}

TEST_CASE("a launcher started again while the others wait for a third node counts once", "[distributed]") {
  auto out = fresh_dir("rejoin_wait");
  auto port = std::to_string(cb::dist::free_tcp_port());
  auto node = [&](int n, const std::string& log) { return start_node(port, 3, n, out, {"--batch", "2"}, log); };
  auto text = [&](const std::string& log) {
    std::ifstream in(out / log);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  pid_t node0 = node(0, "launcher0.txt"), lost = node(1, "launcher1_lost.txt");
  // Node 1 has joined attempt 0 once it waits for the one node left (bounded, not timed).
  for (int i = 0; i < 400 && text("launcher1_lost.txt").find("waits for 1 more node") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  REQUIRE(text("launcher1_lost.txt").find("waits for 1 more node") != std::string::npos);
  REQUIRE(::kill(lost, SIGKILL) == 0);
  wait_exit(lost);
  // Its node starts it again, then node 2 arrives. Before, node 1 counted twice: nodes 0 and 1 started
  // attempt 0 without node 2, whose arrival failed that attempt, and with no restarts the job.
  pid_t node1 = node(1, "launcher1.txt");
  for (int i = 0; i < 400 && text("launcher1.txt").find("waits for 1 more node") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  pid_t node2 = node(2, "launcher2.txt");
  for (pid_t p : {node0, node1, node2}) CHECK(wait_exit(p) == 0);
  INFO(text("launcher0.txt"));
  CHECK(exists_attempt(out, 0, 2));
  CHECK(!exists_attempt(out, 1, 0));  // no restart
  fs::remove_all(out);
}

TEST_CASE("a program path that does not exist on this node fails the launcher at once, naming it", "[distributed]") {
  auto out = fresh_dir("no_program");
  const std::string missing = (out / "bin" / "chatbridge-train").string();
  const int code = wait_exit(spawn({kLaunch, "--standalone", "--nproc-per-node", "2", "--max-restarts", "2", missing},
                                   {}, out / "launcher.txt"));
  std::ifstream in(out / "launcher.txt");
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  INFO(log);
  CHECK(code == 1);  // was 127 after every worker of every attempt printed "exec failed"
  CHECK(log.find("program '" + missing + "': no such file on this host") != std::string::npos);
  CHECK(log.find("exec failed") == std::string::npos);
  fs::remove_all(out);
}

TEST_CASE(
    "launch option --rdzv-conf join_timeout=2 with node 1 never started: node 0 stops after about 2 s, naming node 1",
    "[distributed]") {
  auto out = fresh_dir("join_timeout");
  const auto t0 = std::chrono::steady_clock::now();
  const int code = wait_exit(
      spawn(launch_argv(std::to_string(cb::dist::free_tcp_port()),
                        {"--nnodes", "2", "--node-rank", "0", "--rdzv-conf", "join_timeout=2"}, out, {"--batch", "2"}),
            {}, out / "launcher0.txt"));
  const double took = seconds_since(t0);
  const auto log = read_text(out / "launcher0.txt");
  INFO(log << "took " << took << " s");
  CHECK(code == 1);
  CHECK(took >= 2.0);
  CHECK(took < 12.0);  // the wait, the launcher's start-up and slack for a loaded machine; was 900 s
  CHECK(log.find("only 1 of 2 nodes joined attempt 0 at 127.0.0.1:") != std::string::npos);
  CHECK(log.find("within 2 s (--rdzv-conf join_timeout); missing: node 1") != std::string::npos);
  fs::remove_all(out);
}

TEST_CASE("a second launcher with the same --node-rank: every launcher stops, naming the rank and both launchers",
          "[distributed]") {
  // Before, it counted as node 1's launcher started again after a loss: three nodes were expected, two
  // ranks came, and every launcher waited for node 2 for 900 s.
  auto out = fresh_dir("same_rank");
  auto port = std::to_string(cb::dist::free_tcp_port());
  auto node = [&](int n, const std::string& log) { return start_node(port, 3, n, out, {"--batch", "2"}, log); };
  pid_t node0 = node(0, "launcher0.txt"), first = node(1, "launcher1.txt");
  REQUIRE(wait_for_text(out / "launcher1.txt", "waits for 1 more node"));
  const auto t0 = std::chrono::steady_clock::now();
  pid_t second = node(1, "launcher1b.txt");
  for (pid_t p : {node0, first, second}) CHECK(wait_exit(p) == 1);
  const double took = seconds_since(t0);
  const std::string why = "--node-rank 1 was given to two launchers: the one on ";
  for (const auto* log : {"launcher0.txt", "launcher1.txt", "launcher1b.txt"}) {
    const auto text = read_text(out / log);
    INFO(log << ":\n" << text);
    const auto at = text.find(why);
    REQUIRE(at != std::string::npos);
    // Both launchers by host and pid, the holder first.
    CHECK(text.find("holds it, the one on ", at) != std::string::npos);
    CHECK(text.find("was started with it too", at) != std::string::npos);
  }
  CHECK(took < 15.0);
  CHECK(!exists_attempt(out, 0, 0));  // no worker started
  fs::remove_all(out);
}

TEST_CASE("a second launcher with the same --node-rank while the job runs: it stops alone, the job runs on",
          "[distributed]") {
  auto out = fresh_dir("same_rank_running");
  auto port = std::to_string(cb::dist::free_tcp_port());
  auto node = [&](int n, const std::string& log) { return start_node(port, 2, n, out, {"--wait-for-signal"}, log); };
  pid_t node0 = node(0, "launcher0.txt"), node1 = node(1, "launcher1.txt");
  REQUIRE(wait_for_text(out / "launcher1.txt", "attempt 0: started ranks 1..1"));
  CHECK(wait_exit(node(1, "launcher1b.txt")) == 1);
  const auto text = read_text(out / "launcher1b.txt");
  INFO(text);
  CHECK(text.find("--node-rank 1 was given to two launchers") != std::string::npos);
  CHECK(text.find("the job runs on without this launcher") != std::string::npos);
  CHECK(::kill(node0, 0) == 0);  // still running
  CHECK(::kill(node1, 0) == 0);
  REQUIRE(::kill(node0, SIGTERM) == 0);
  CHECK(wait_exit(node0) == 128 + SIGTERM);
  CHECK(wait_exit(node1) == 128 + SIGTERM);
  fs::remove_all(out);
}

TEST_CASE("node 0 waits for a lost launcher a few seconds at its end, not the stop grace", "[distributed]") {
  auto out = fresh_dir("lost_launcher");
  auto port = std::to_string(cb::dist::free_tcp_port());
  auto node = [&](int n, const std::string& log) { return start_node(port, 2, n, out, {"--wait-for-signal"}, log); };
  pid_t node0 = node(0, "launcher0.txt"), node1 = node(1, "launcher1.txt");
  REQUIRE(wait_for_text(out / "launcher1.txt", "attempt 0: started ranks 1..1"));
  REQUIRE(wait_for_text(out / "launcher0.txt", "attempt 0: started ranks 0..0"));
  REQUIRE(::kill(node1, SIGKILL) == 0);  // its worker goes with it (PR_SET_PDEATHSIG)
  wait_exit(node1);
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(::kill(node0, SIGTERM) == 0);
  CHECK(wait_exit(node0) == 128 + SIGTERM);
  const double took = seconds_since(t0);
  INFO(read_text(out / "launcher0.txt"));
  CHECK(took >= cb::dist::final_wait({}).count() / 1000.0 - 0.5);  // it did wait for node 1 ...
  CHECK(took < 20.0);                                              // ... not 30 s (the stop grace) as before
  CHECK(read_text(out / "launcher0.txt").find("1 of 1 other launchers did not read the outcome") != std::string::npos);
  fs::remove_all(out);
}
