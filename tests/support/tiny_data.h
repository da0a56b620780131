// The tiny dataset of the quick start, built at test time by scripts/make-tiny-data.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace cb::test {

// Runs scripts/make-tiny-data into `out` (a no-op when it is already complete); its output goes to
// `log`, or without one stdout is dropped and stderr shown. Throws when the script fails.
inline void make_tiny_data(const std::filesystem::path& out, const std::filesystem::path& log = {}) {
  const auto script = std::filesystem::path(CHATBRIDGE_SOURCE_DIR) / "scripts" / "make-tiny-data";
  const auto to = log.empty() ? std::string(" > /dev/null") : " > '" + log.string() + "' 2>&1";
  if (std::system(("python3 '" + script.string() + "' '" + out.string() + "'" + to).c_str()) != 0)
    throw std::runtime_error("scripts/make-tiny-data " + out.string() + " failed" +
                             (log.empty() ? std::string() : ", see " + log.string()));
}

}  // namespace cb::test
