// This test process's own figures from /proc/self.
#pragma once
#include <cstdint>
#include <string>

namespace cb::test {

// A "VmRSS:"-style line of /proc/self/status, in KiB; the test fails when the kernel has no such field.
int64_t status_kib(const std::string& field);

}  // namespace cb::test
