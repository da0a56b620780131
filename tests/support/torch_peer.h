// Debian's python3-torch as a peer of the torch.save writer and reader: runs tests/support/torch_peer.py
// with /usr/bin/python3 (the interpreter python3-torch installs into; another python3 first on PATH,
// e.g. pyenv's, has no torch).
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace cb::test {

// Whether /usr/bin/python3 imports torch.
bool torch_peer_available();
// torch_peer.py <args...>: the JSON it prints. Fails the test (with the script's output) when it exits
// non-zero.
nlohmann::json torch_peer(const std::vector<std::string>& args);

}  // namespace cb::test
