#include "tests/support/scratch_dir.h"

#include <unistd.h>

#include <cstdlib>
#include <vector>

namespace cb::test {
namespace {

// The directories fresh_dir made in this process: a test run otherwise leaves hundreds of MB in /tmp
// each time (quantized models, checkpoints).
struct MadeDirs {
  pid_t owner = ::getpid();  // a forked child that exits must not remove its parent's directories
  std::vector<std::filesystem::path> dirs;
  ~MadeDirs() {
    const char* keep = std::getenv("CB_KEEP_TEST_DIRS");
    if (::getpid() != owner || (keep && std::string(keep) == "1")) return;
    std::error_code ec;  // best effort: a leftover directory must not fail the test
    for (const auto& d : dirs) std::filesystem::remove_all(d, ec);
  }
};

}  // namespace

std::filesystem::path fresh_dir(const std::string& name) {
  static MadeDirs made;
  auto d = std::filesystem::temp_directory_path() / ("cb_test_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  made.dirs.push_back(d);
  return d;
}

}  // namespace cb::test
