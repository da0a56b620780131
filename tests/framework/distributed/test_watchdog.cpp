// The collective watchdog on its own, over an in-process store: a failing wait names the rank, the
// collective, the step and the peers without a heartbeat; a wait that never returns is reported after
// the timeout and ends the process with kWatchdogExitCode.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "framework/distributed/watchdog.h"
#include "framework/error.h"
#include "tests/support/process_util.h"
#include "tests/support/scratch_dir.h"

using namespace std::chrono_literals;
using cb::dist::Watchdog;
using cb::dist::WatchdogOptions;

namespace {

std::string error_of(Watchdog& w, const char* name, int64_t step) {
  try {
    w.wait(name, step, [] { throw std::runtime_error("Connection closed by peer [10.0.0.2]:4000"); });
  } catch (const cb::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("watchdog: a failed collective names the rank, the collective, the step and the silent peer") {
  auto store = c10::make_intrusive<c10d::HashStore>();
  Watchdog w(store, WatchdogOptions{0, 3, 2000ms, "test store"});
  Watchdog peer(store, WatchdogOptions{1, 3, 2000ms, "test store"});  // rank 1 beats, rank 2 never started
  const std::string e = error_of(w, "all_reduce", 17);
  INFO(e);
  CHECK(e.find("rank 0/3: all_reduce at step 17 failed") != std::string::npos);
  CHECK(e.find("Connection closed by peer [10.0.0.2]:4000") != std::string::npos);
  CHECK(e.find("rank 2 (host ?, no heartbeat yet)") != std::string::npos);
  CHECK(e.find("rank 1 ") == std::string::npos);  // it beats
}

TEST_CASE("watchdog: a peer that stops beating is named with its host and silence") {
  auto store = c10::make_intrusive<c10d::HashStore>();
  Watchdog w(store, WatchdogOptions{0, 2, 2000ms, "test store"});
  { Watchdog peer(store, WatchdogOptions{1, 2, 2000ms, "test store"}); }  // beat once, then gone
  std::this_thread::sleep_for(200ms);
  const std::string e = error_of(w, "barrier", 4);
  INFO(e);
  CHECK(e.find("rank 0/2: barrier at step 4 failed") != std::string::npos);
  CHECK(e.find("rank 1 (host ") != std::string::npos);
  CHECK(e.find("silent for") != std::string::npos);
}

TEST_CASE("watchdog: a collective that never returns is reported after the timeout, then the rank exits") {
  const auto log = cb::test::fresh_dir("watchdog") / "child.txt";
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {  // the rank: its report goes to the log through spdlog's stderr sink
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    ::dup2(fd, 1);
    auto store = c10::make_intrusive<c10d::HashStore>();
    Watchdog w(store, WatchdogOptions{0, 2, 500ms, "test store"});
    w.wait("broadcast", 3, [] { std::this_thread::sleep_for(1h); });
    ::_exit(0);
  }
  const int code = cb::test::wait_exit(pid);
  std::stringstream text;
  text << std::ifstream(log).rdbuf();
  INFO(text.str());
  CHECK(code == cb::dist::kWatchdogExitCode);
  CHECK(text.str().find("rank 0/2: broadcast at step 3 has not finished after") != std::string::npos);
  CHECK(text.str().find("rank 1 (host ?, no heartbeat yet)") != std::string::npos);
  CHECK(text.str().find("exiting with code 124") != std::string::npos);
}
