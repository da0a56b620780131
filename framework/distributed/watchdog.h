// The collective watchdog of one rank, on two background threads:
//   * the heartbeat thread writes the time into the store every `interval` ("cb/hb/<rank>") and, while
//     a collective is overdue or a failure is being reported, reads every peer's, so that a report can
//     name the peers that went silent (a host lost, a link cut) and their hosts. Store calls can block
//     for as long as a cut link lasts, so this thread never decides anything;
//   * the deadline thread never touches the network: a collective still waiting `timeout` after it
//     began is reported (rank, collective, step, silent peers) even when the backend never returns,
//     and `grace` later the process exits with kWatchdogExitCode, so a job never hangs on a dead peer.
// The backend's own timeout (Gloo's, NCCL's) normally fires first; wait() then throws the same report.
#pragma once
#include <c10/util/intrusive_ptr.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace c10d {
class Store;
}

namespace cb::dist {

// Exit code of a rank the watchdog ends (a collective stuck past timeout + grace), as timeout(1)'s.
constexpr int kWatchdogExitCode = 124;

struct WatchdogOptions {
  int rank = 0, world_size = 1;
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};
  std::string store_addr;  // for reports: where the store lives ("10.0.0.1:29500")
};

// Heartbeat period for a collective timeout: a twentieth of it, within [100 ms, 5 s].
std::chrono::milliseconds heartbeat_interval(std::chrono::milliseconds timeout);

class Watchdog {
 public:
  // `store`: a connection of this rank's own, used by the heartbeat thread only.
  Watchdog(c10::intrusive_ptr<c10d::Store> store, WatchdogOptions o);
  // Joins the deadline thread; the heartbeat thread may sit in a store call on a cut link, so it is
  // left to finish on its own (it owns what it uses).
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Runs `wait` (the end of collective `name` issued at `step`) under the deadline; a failure is
  // rethrown as cb::Error naming this rank, the collective, the step and the silent peers.
  void wait(const char* name, int64_t step, const std::function<void()>& wait);

 private:
  struct State;
  std::shared_ptr<State> s_;
  std::thread deadline_;
};

}  // namespace cb::dist
