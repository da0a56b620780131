#include "framework/crash_report.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/uio.h>
#include <ucontext.h>
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

// "ADDR OBJECT(SYMBOL+OFFSET)", or "ADDR OBJECT(+OFFSET)" without an exported symbol (addr2line -f -C -e
// OBJECT OFFSET names it). Returns whether ADDR lies in a loaded object and was printed. With
// `return_addresses_only`, an address at a function's first byte (a function pointer, not a return
// address) is left out.
bool put_code_address(const char* prefix, uintptr_t a, bool return_addresses_only = false) {
  Dl_info info{};
  const bool found = ::dladdr(reinterpret_cast<void*>(a), &info) != 0 && info.dli_fname;
  if (return_addresses_only && found && info.dli_saddr == reinterpret_cast<void*>(a)) return false;
  put(prefix);
  put_hex(a);
  if (!found) {
    put(" (in no loaded object: a call through a null or stale function pointer?)\n");
    return false;
  }
  put(" ");
  put(info.dli_fname);
  put(info.dli_sname ? "(" : "(+");
  if (info.dli_sname) {
    put(info.dli_sname);
    put("+");
  }
  put_hex(a - reinterpret_cast<uintptr_t>(info.dli_sname ? info.dli_saddr : info.dli_fbase));
  put(")\n");
  return true;
}

// The executable mappings of the process (/proc/self/maps, read with open/read only): a stack word
// that points into one may be a return address; one pointing at a vtable or a global is not.
struct CodeRanges {
  uintptr_t begin[1024], end[1024];
  int n = 0;
  bool contains(uintptr_t a) const {
    for (int i = 0; i < n; ++i)
      if (a >= begin[i] && a < end[i]) return true;
    return false;
  }
};

uintptr_t parse_hex(const char*& p) {
  uintptr_t v = 0;
  for (;; ++p) {
    const char c = *p;
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return v;
    v = v * 16 + static_cast<uintptr_t>(d);
  }
}

void read_code_ranges(CodeRanges& r) {
  static char buf[1 << 18];
  const int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  size_t len = 0;
  for (ssize_t got; len < sizeof buf - 1 && (got = ::read(fd, buf + len, sizeof buf - 1 - len)) > 0;)
    len += static_cast<size_t>(got);
  ::close(fd);
  buf[len] = '\0';
  // Lines: "begin-end perms offset dev inode path"; perms "r-xp" marks code.
  for (const char* p = buf; *p && r.n < 1024;) {
    const uintptr_t b = parse_hex(p);
    const uintptr_t e = *p == '-' ? parse_hex(++p) : 0;
    if (*p == ' ' && p[1] && p[2] && p[3] == 'x') r.begin[r.n] = b, r.end[r.n] = e, ++r.n;
    while (*p && *p != '\n') ++p;
    if (*p) ++p;
  }
}

// The unwinder stops where the faulting code has no unwind tables (a jump to address 0, JIT code),
// which leaves backtrace() with nothing but this handler. The registers and the stack still say where
// the process was: the faulting instruction, the return address the last call pushed (the caller, when
// the fault is a call through a null pointer) and the words on the stack that point into named code
// (likely return addresses of the frames further out, mixed with stale ones).
void put_registers_and_stack(void* context) {
#if defined(__x86_64__) && defined(__linux__)
  const auto* uc = static_cast<const ucontext_t*>(context);
  const auto pc = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  const auto sp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
  put_code_address("faulting instruction: ", pc);
  // The stack is read with process_vm_readv, which stops at an unmapped page instead of faulting.
  static uintptr_t words[2048];
  iovec local{words, sizeof words}, remote{reinterpret_cast<void*>(sp), sizeof words};
  const ssize_t got = ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0);
  const int n = got > 0 ? static_cast<int>(got / sizeof(uintptr_t)) : 0;
  if (n > 0) put_code_address("return address at the stack pointer: ", words[0]);
  static CodeRanges code;
  read_code_ranges(code);
  put("code addresses on the stack (innermost first; likely callers):\n");
  for (int i = 1, shown = 0; i < n && shown < 32; ++i)
    if (code.contains(words[i]) && put_code_address("  ", words[i], /*return_addresses_only=*/true)) ++shown;
#else
  (void)context;
#endif
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

void on_fatal_signal(int sig, siginfo_t* info, void* context) {
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
  put_registers_and_stack(context);
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
