#include "framework/distributed/watchdog.h"

#include <spdlog/spdlog.h>
#include <unistd.h>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>

#include "framework/error.h"

namespace cb::dist {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

int64_t wall_ms() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string text(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

std::string hb_key(int rank) { return "cb/hb/" + std::to_string(rank); }
std::string host_key(int rank) { return "cb/host/" + std::to_string(rank); }

// First line of an exception's message (c10::Error appends a backtrace).
std::string first_line(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string s = c10 ? c10->what_without_backtrace() : e.what();
  return s.substr(0, s.find('\n'));
}

}  // namespace

milliseconds heartbeat_interval(milliseconds timeout) {
  return std::clamp(timeout / 20, milliseconds(100), milliseconds(5000));
}

struct Watchdog::State {
  struct Pending {
    const char* name;
    int64_t step;
    Clock::time_point since;
  };
  struct Peers {           // one read of every peer's heartbeat
    Clock::time_point at;  // when the read began
    std::string text;      // the silent peers, "every peer's heartbeat is current", or the store's error
  };

  c10::intrusive_ptr<c10d::Store> store;
  WatchdogOptions o;
  milliseconds interval{0};
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Pending> pending;
  std::optional<Peers> peers;
  std::optional<Clock::time_point> read_wanted;  // a report wants a read begun after this time
  bool stop = false;

  milliseconds silent_after() const { return 3 * interval; }
  milliseconds grace() const { return 3 * interval; }

  // Reads every peer's heartbeat; store calls only, no lock held.
  Peers read_peers() {
    Peers p{Clock::now(), {}};
    try {
      std::vector<std::string> silent;
      const int64_t now = wall_ms();
      for (int r = 0; r < o.world_size; ++r) {
        if (r == o.rank) continue;
        const std::string host = store->check({host_key(r)}) ? text(store->get(host_key(r))) : "?";
        if (!store->check({hb_key(r)})) {
          silent.push_back(fmt::format("rank {} (host {}, no heartbeat yet)", r, host));
          continue;
        }
        const double age = (now - std::stoll(text(store->get(hb_key(r))))) / 1000.0;
        if (age * 1000 > silent_after().count())
          silent.push_back(fmt::format("rank {} (host {}, silent for {:.1f} s)", r, host, age));
      }
      p.text = silent.empty() ? "every peer's heartbeat is current"
                              : "lost peers: " + fmt::format("{}", fmt::join(silent, ", "));
    } catch (const std::exception& e) {
      p.text = fmt::format("the store at {} is unreachable ({}): the host of node 0 or the link to it is lost",
                           o.store_addr, first_line(e));
    }
    return p;
  }

  void heartbeat_loop() {
    std::unique_lock<std::mutex> lk(mu);
    while (!stop) {
      lk.unlock();
      try {
        store->set(hb_key(o.rank), bytes(std::to_string(wall_ms())));
      } catch (const std::exception&) {  // read_peers says what is wrong with the store
      }
      lk.lock();
      const auto now = Clock::now();
      if (read_wanted || (pending && now - pending->since > 2 * interval)) {
        lk.unlock();
        Peers p = read_peers();
        lk.lock();
        peers = std::move(p);
        cv.notify_all();
      }
      cv.wait_for(lk, interval, [&] { return stop || (read_wanted && (!peers || peers->at < *read_wanted)); });
    }
  }

  // What the last read found, or that the store has not answered lately; under the lock.
  std::string peers_text(Clock::time_point now) const {
    if (peers && now - peers->at <= silent_after() + interval) return peers->text;
    return fmt::format("the store at {} has not answered for {:.1f} s: the host of node 0 or the link to it is lost",
                       o.store_addr, peers ? seconds(now - peers->at) : seconds(silent_after()));
  }

  std::string overdue(const Pending& p, Clock::time_point now) const {
    return fmt::format("distributed: rank {}/{}: {} at step {} has not finished after {:.1f} s (timeout {:.1f} s); {}",
                       o.rank, o.world_size, p.name, p.step, seconds(now - p.since), seconds(o.timeout),
                       peers_text(now));
  }

  void deadline_loop() {
    std::unique_lock<std::mutex> lk(mu);
    std::optional<Clock::time_point> reported;  // the pending collective already reported
    while (!stop) {
      cv.wait_for(lk, interval / 2, [&] { return stop; });
      if (stop || !pending) continue;
      const auto now = Clock::now();
      if (now - pending->since < o.timeout) continue;
      if (reported != pending->since) {
        spdlog::error("{}", overdue(*pending, now));
        reported = pending->since;
      }
      if (now - pending->since >= o.timeout + grace()) {
        spdlog::error(
            "distributed: rank {}: exiting with code {}: {} at step {} still waits {:.1f} s after the timeout", o.rank,
            kWatchdogExitCode, pending->name, pending->step, seconds(now - pending->since - o.timeout));
        spdlog::default_logger()->flush();
        std::_Exit(kWatchdogExitCode);
      }
    }
  }

  // After a failure: the silent peers once a peer lost at `from` has had time to fall silent; waits a
  // bounded time for a fresh read (the store may be out of reach).
  std::string silent_peers(Clock::time_point from) {
    const auto ready = from + silent_after();
    std::this_thread::sleep_until(ready);
    std::unique_lock<std::mutex> lk(mu);
    read_wanted = ready;
    cv.notify_all();
    cv.wait_until(lk, ready + 2 * interval + milliseconds(1000), [&] { return peers && peers->at >= ready; });
    read_wanted.reset();
    return peers_text(Clock::now());
  }
};

Watchdog::Watchdog(c10::intrusive_ptr<c10d::Store> store, WatchdogOptions o) : s_(std::make_shared<State>()) {
  s_->store = std::move(store);
  s_->o = std::move(o);
  s_->interval = heartbeat_interval(s_->o.timeout);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  s_->store->set(host_key(s_->o.rank), bytes(host));
  s_->store->set(hb_key(s_->o.rank), bytes(std::to_string(wall_ms())));
  std::thread([s = s_] { s->heartbeat_loop(); }).detach();
  deadline_ = std::thread([s = s_.get()] { s->deadline_loop(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lk(s_->mu);
    s_->stop = true;
  }
  s_->cv.notify_all();
  deadline_.join();
}

void Watchdog::wait(const char* name, int64_t step, const std::function<void()>& wait) {
  const State::Pending p{name, step, Clock::now()};
  {
    std::lock_guard<std::mutex> lk(s_->mu);
    s_->pending = p;
  }
  try {
    wait();
  } catch (const std::exception& e) {
    const auto failed = Clock::now();
    {
      std::lock_guard<std::mutex> lk(s_->mu);
      s_->pending.reset();
    }
    const std::string why = first_line(e);
    spdlog::error("distributed: rank {}/{}: {} at step {} failed after {:.1f} s: {}; naming the lost peers...",
                  s_->o.rank, s_->o.world_size, name, step, seconds(failed - p.since), why);
    fail("distributed: rank {}/{}: {} at step {} failed after {:.1f} s (timeout {:.1f} s): {}; {}", s_->o.rank,
         s_->o.world_size, name, step, seconds(failed - p.since), seconds(s_->o.timeout), why,
         s_->silent_peers(failed));
  }
  std::lock_guard<std::mutex> lk(s_->mu);
  s_->pending.reset();
}

}  // namespace cb::dist
