#include "tests/support/proc_self.h"

#include <catch2/catch.hpp>
#include <fstream>

namespace cb::test {

int64_t status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::stoll(line.substr(field.size()));
  FAIL("no " << field << " in /proc/self/status");
  return 0;
}

}  // namespace cb::test
