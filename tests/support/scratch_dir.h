// Scratch directories for tests, under the temp directory and removed when the test process exits.
#pragma once
#include <filesystem>
#include <string>

namespace cb::test {

// A fresh empty directory <temp>/cb_test_<pid>_<name>, removed when this process exits (not by a forked
// child); CB_KEEP_TEST_DIRS=1 keeps it to look at. Calling it again with the same name empties it.
std::filesystem::path fresh_dir(const std::string& name);

}  // namespace cb::test
