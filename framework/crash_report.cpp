#include "framework/crash_report.h"

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

namespace cb {

namespace {

const char* g_program = "chatbridge";

// Async-signal-safe output: write(2) only, no allocation, no stdio.
void put(const char* s) { [[maybe_unused]] auto n = ::write(STDERR_FILENO, s, std::strlen(s)); }

void put_hex(uintptr_t v) {
  char buf[2 + 16 + 1] = "0x";
  for (int i = 0; i < 16; ++i) buf[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 0xf];
  buf[18] = '\0';
  put(buf);
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV (invalid memory access)";
    case SIGBUS: return "SIGBUS (bus error)";
    case SIGILL: return "SIGILL (illegal instruction: an instruction this CPU lacks?)";
    case SIGFPE: return "SIGFPE (arithmetic fault)";
    default: return "a fatal signal";
  }
}

void on_fatal_signal(int sig, siginfo_t* info, void*) {
  put("\n");
  put(g_program);
  put(": fatal ");
  put(signal_name(sig));
  put(" at address ");
  put_hex(reinterpret_cast<uintptr_t>(info ? info->si_addr : nullptr));
  put("; backtrace (innermost first):\n");
  void* frames[64];
  const int n = ::backtrace(frames, 64);
  ::backtrace_symbols_fd(frames, n, STDERR_FILENO);
  // SA_RESETHAND restored the default action: re-raised, the process ends as it would have.
  ::raise(sig);
}

}  // namespace

void install_crash_report(const char* program) {
  g_program = program;
  static const bool prepared = [] {
    void* warm[1];
    ::backtrace(warm, 1);  // loads the unwinder now: the first call may allocate, not allowed in a handler
    // Its own stack, so a stack overflow is reported too.
    static char alt_stack[1 << 16];
    stack_t ss{};
    ss.ss_sp = alt_stack;
    ss.ss_size = sizeof alt_stack;
    return ::sigaltstack(&ss, nullptr) == 0;
  }();
  (void)prepared;
  struct sigaction sa {};
  sa.sa_sigaction = on_fatal_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE}) ::sigaction(sig, &sa, nullptr);
}

}  // namespace cb
