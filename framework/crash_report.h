// A crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE) prints the program, the signal, the faulting address, a
// native backtrace and (x86-64) the faulting instruction, the return address at the stack pointer and
// the named code addresses on the stack to stderr before the process dies with the signal's usual
// status. A crash on a machine where no debugger can be attached in time (a lent GPU, a cluster node)
// then still says where it happened, also when the unwinder cannot get past the faulting frame (a call
// through a null function pointer). Executables are linked with exported symbols, so the frames carry
// function names.
#pragma once

namespace cb {

// Installs the handlers (again, if something replaced them since). `program` names the process in the
// report; the string must outlive the process (a literal).
void install_crash_report(const char* program);

}  // namespace cb
