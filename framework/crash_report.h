// A crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE) prints the program, the signal, the faulting address and a
// native backtrace to stderr before the process dies with the signal's usual status. A crash on a
// machine where no debugger can be attached in time (a lent GPU, a cluster node) then still says
// where it happened. Executables are linked with exported symbols, so the frames carry function
// names.
#pragma once

namespace cb {

// Installs the handlers (again, if something replaced them since). `program` names the process in the
// report; the string must outlive the process (a literal).
void install_crash_report(const char* program);

}  // namespace cb
