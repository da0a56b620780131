// The process manager behind chatbridge-launch: starts this node's workers with the environment
// torchrun gives them, watches them, and restarts the whole job when one fails.
//
// Contract with the workers (what a trainer must do to be restartable):
//   * the environment is torchrun's: RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK,
//     GROUP_WORLD_SIZE, ROLE_RANK, ROLE_WORLD_SIZE, ROLE_NAME, MASTER_ADDR, MASTER_PORT,
//     TORCHELASTIC_RESTART_COUNT, TORCHELASTIC_MAX_RESTARTS, TORCHELASTIC_RUN_ID,
//     TORCHELASTIC_USE_AGENT_STORE=True (the launcher of node 0 hosts the TCPStore at MASTER_ADDR:MASTER_PORT;
//     workers connect as clients under the prefix "/worker/attempt_<restart count>", as torch's env:// does),
//     and OMP_NUM_THREADS=1 when several workers share a node and it was not set;
//   * TORCHELASTIC_RESTART_COUNT > 0 means an earlier attempt failed: the worker resumes from the latest
//     checkpoint it finds in its output directory (no command-line change between attempts);
//   * the program is executed directly (torchrun's --no-python), with its arguments unchanged.
//
// Failure handling: when a worker on any node exits non-zero or dies from a signal, every launcher stops
// its workers (SIGTERM, SIGKILL after the grace period) and all nodes start the next attempt together,
// up to max_restarts times; then each launcher exits with the first failing worker's code (128 + signal
// number for a worker killed by a signal). SIGINT/SIGTERM/SIGHUP to any launcher are forwarded to its
// workers and shut the whole job down (no restart); that launcher exits with 128 + the signal number.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace cb::dist {

struct LaunchOptions {
  int nproc_per_node = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";
  uint16_t master_port = 29500;
  int max_restarts = 0;
  std::string run_id = "none";
  std::chrono::milliseconds monitor_interval{100};
  std::chrono::milliseconds stop_grace{30000};  // SIGTERM -> SIGKILL
  // Waiting for node 0's store, for every node to join an attempt, and for a store out of reach
  // (torchrun's 900 s); --rdzv-conf join_timeout=SECONDS. Each launcher's own: not compared across nodes.
  std::chrono::milliseconds rendezvous_timeout{900000};
  std::vector<std::string> command;  // program and its arguments
};

// Applies torchrun's --rdzv-conf "key=value[,key=value]": join_timeout (or timeout, the name torchrun's
// static backend reads) in seconds; torchrun's other keys, and unknown ones, are refused by name.
void apply_rdzv_conf(const std::string& conf, LaunchOptions& opts);

// How long node 0's launcher, which hosts the store, stays up at the end of the job for the other
// launchers to read the outcome (each says once it has): lost launchers delay its exit by this at most.
std::chrono::milliseconds final_wait(const LaunchOptions& opts);

// Runs the job on this node; returns the launcher's exit code.
int run_launcher(const LaunchOptions& opts);

// A TCP port that was free on 127.0.0.1 a moment ago (--standalone, tests).
uint16_t free_tcp_port();

}  // namespace cb::dist
