// A crash prints the signal and a backtrace with function names (framework/crash_report.h), and the
// process still dies of the signal. Checked in a forked child, whose stderr the parent reads.
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <csignal>
#include <string>

#include "framework/crash_report.h"

namespace cb::test {

// Not inlined, with external linkage (exported): its name must appear in the backtrace.
[[gnu::noinline]] void crash_here_for_the_test(volatile int* p) { *p = 1; }

}  // namespace cb::test

TEST_CASE("crash report: a SIGSEGV prints the signal and a named backtrace, then dies of it") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[0]);
    // Only this handler: Catch's would report to the parent's reporter from the child.
    for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE}) std::signal(sig, SIG_DFL);
    cb::install_crash_report("crash-test");
    volatile int* null = nullptr;
    cb::test::crash_here_for_the_test(null);
    ::_exit(0);  // not reached
  }
  ::close(fds[1]);
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  INFO(err);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGSEGV);
  CHECK(err.find("crash-test: fatal SIGSEGV") != std::string::npos);
  CHECK(err.find("at address 0x0000000000000000") != std::string::npos);
  CHECK(err.find("crash_here_for_the_test") != std::string::npos);
}
