// Child processes for the distributed integration tests.
#pragma once
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace cb::test {

// Starts argv[0] with the current environment plus `env`; stdout/stderr go to `log` (appended).
pid_t spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            const std::filesystem::path& log);
// Waits for the child; its exit code, or 128 + signal number.
int wait_exit(pid_t pid);
// The variables torchrun gives rank `rank` of `world` processes on one host (rendezvous on 127.0.0.1:port).
std::map<std::string, std::string> torchrun_env(int rank, int world, const std::string& port);
std::vector<double> read_losses(const std::filesystem::path& file);

}  // namespace cb::test
