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

// A call through a null function pointer: the fault is at address 0, where no unwind table is.
[[gnu::noinline]] void call_null_for_the_test(void (*f)()) {
  void (*volatile g)() = f;  // read back from memory: the compiler cannot see that it is null
  g();
  asm volatile("");  // keeps the call a call (not a tail jump), so its return address is on the stack
}

}  // namespace cb::test

namespace {

// Runs `crash` in a forked child with only the crash report installed; returns the child's stderr
// and checks that it died of SIGSEGV.
template <class F>
std::string crash_report_of(F crash) {
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
    crash();
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
  return err;
}

}  // namespace

TEST_CASE("crash report: a SIGSEGV prints the signal and a named backtrace, then dies of it") {
  const auto err = crash_report_of([] {
    volatile int* null = nullptr;
    cb::test::crash_here_for_the_test(null);
  });
  INFO(err);
  CHECK(err.find("crash-test: fatal SIGSEGV") != std::string::npos);
  CHECK(err.find("at address 0x0000000000000000") != std::string::npos);
  CHECK(err.find("crash_here_for_the_test") != std::string::npos);
#if defined(__x86_64__) && defined(__linux__)
  CHECK(err.find("faulting instruction: 0x") != std::string::npos);
#endif
}

#if defined(__x86_64__) && defined(__linux__)
TEST_CASE("crash report: a call through a null function pointer still names its caller") {
  const auto err = crash_report_of([] { cb::test::call_null_for_the_test(nullptr); });
  INFO(err);
  CHECK(err.find("faulting instruction: 0x0000000000000000 (in no loaded object") != std::string::npos);
  const auto ret = err.find("return address at the stack pointer: ");
  REQUIRE(ret != std::string::npos);
  CHECK(err.find("call_null_for_the_test", ret) < err.find('\n', ret));
}
#endif
