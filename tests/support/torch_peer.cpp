#include "tests/support/torch_peer.h"

#include <catch2/catch.hpp>

#include <fstream>

#include "tests/support/process_util.h"
#include "tests/support/scratch_dir.h"

namespace cb::test {
namespace {

constexpr const char* kPython = "/usr/bin/python3";
constexpr std::string_view kMarker = "TORCH_PEER_JSON ";

}  // namespace

bool torch_peer_available() {
  static const bool ok =
      std::filesystem::exists(kPython) &&
      wait_exit(spawn({kPython, "-c", "import torch"}, {}, fresh_dir("torch_peer") / "probe.txt")) == 0;
  return ok;
}

nlohmann::json torch_peer(const std::vector<std::string>& args) {
  static int calls = 0;
  const auto log = fresh_dir("torch_peer_" + std::to_string(calls++)) / "log.txt";
  std::vector<std::string> argv = {kPython, std::string(CHATBRIDGE_SOURCE_DIR) + "/tests/support/torch_peer.py"};
  argv.insert(argv.end(), args.begin(), args.end());
  const int code = wait_exit(spawn(argv, {}, log));
  std::ifstream in(log);
  std::string text, line;
  std::optional<nlohmann::json> out;
  while (std::getline(in, line)) {
    text += line + "\n";
    if (line.rfind(kMarker, 0) == 0) out = nlohmann::json::parse(line.substr(kMarker.size()));
  }
  if (code != 0 || !out) FAIL("torch_peer.py exited with " << code << ":\n" << text);
  return *out;
}

}  // namespace cb::test
