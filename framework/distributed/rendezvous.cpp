#include "framework/distributed/rendezvous.h"

#include <cstdlib>
#include <cstring>
#include <optional>

#include "framework/error.h"
#include "framework/text/parse_number.h"

namespace cb::dist {
namespace {

std::optional<std::string> env(const char* name) {
  const char* s = std::getenv(name);
  if (!s || !*s) return std::nullopt;
  return std::string(s);
}

int64_t env_int(const char* name, int64_t fallback, int64_t min, int64_t max = INT32_MAX) {
  auto s = env(name);
  return s ? parse_int(*s, fmt::format("environment variable {}", name), min, max) : fallback;
}

// Leading count of a SLURM tasks-per-node value such as "4(x2),3".
std::optional<int> slurm_leading_count(const char* name) {
  auto s = env(name);
  if (!s) return std::nullopt;
  size_t n = 0;
  while (n < s->size() && std::isdigit(static_cast<unsigned char>((*s)[n]))) ++n;
  if (n == 0) fail("environment variable {}='{}': expected a task count", name, *s);
  return parse_int<int>(s->substr(0, n), fmt::format("environment variable {}", name), 1, INT32_MAX);
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // The first entry ends at a ',' outside brackets.
  size_t depth = 0, end = 0;
  for (; end < nodelist.size(); ++end) {
    char c = nodelist[end];
    if (c == '[') ++depth;
    if (c == ']' && depth > 0) --depth;
    if (c == ',' && depth == 0) break;
  }
  std::string first = nodelist.substr(0, end);
  auto lb = first.find('[');
  if (lb == std::string::npos) return first;
  // "prefix[03-05,9]suffix": the first range's first number keeps its zero padding.
  auto rb = first.find(']', lb);
  if (rb == std::string::npos) fail("SLURM node list '{}': unbalanced '['", nodelist);
  std::string inner = first.substr(lb + 1, rb - lb - 1);
  std::string lo = inner.substr(0, inner.find_first_of(",-"));
  if (lo.empty()) fail("SLURM node list '{}': empty range", nodelist);
  return first.substr(0, lb) + lo + first.substr(rb + 1);
}

DistEnv dist_env_from_environment() {
  DistEnv e;
  bool has_rank = env("RANK").has_value(), has_world = env("WORLD_SIZE").has_value();
  if (has_rank != has_world) fail("environment: RANK and WORLD_SIZE must be set together (torchrun sets both)");
  if (has_rank) {
    e.source = "torchrun";
    e.world_size = static_cast<int>(env_int("WORLD_SIZE", 1, 1));
    e.rank = static_cast<int>(env_int("RANK", 0, 0, e.world_size - 1));
    e.local_world_size = static_cast<int>(env_int("LOCAL_WORLD_SIZE", e.world_size, 1, e.world_size));
    e.local_rank = static_cast<int>(env_int("LOCAL_RANK", e.rank % e.local_world_size, 0, e.local_world_size - 1));
    if (e.world_size > 1 && !env("MASTER_ADDR"))
      fail("environment: WORLD_SIZE={} but MASTER_ADDR is not set", e.world_size);
    if (e.world_size > 1 && !env("MASTER_PORT"))
      fail("environment: WORLD_SIZE={} but MASTER_PORT is not set", e.world_size);
    e.master_addr = env("MASTER_ADDR").value_or(e.master_addr);
  } else if (env("SLURM_PROCID")) {
    e.source = "slurm";
    e.world_size = static_cast<int>(env_int("SLURM_NTASKS", 1, 1));
    e.rank = static_cast<int>(env_int("SLURM_PROCID", 0, 0, e.world_size - 1));
    auto per_node = slurm_leading_count("SLURM_NTASKS_PER_NODE");
    if (!per_node) per_node = slurm_leading_count("SLURM_STEP_TASKS_PER_NODE");
    e.local_world_size = per_node.value_or(1);
    e.local_rank = static_cast<int>(env_int("SLURM_LOCALID", 0, 0, e.local_world_size - 1));
    if (auto addr = env("MASTER_ADDR")) {
      e.master_addr = *addr;
    } else if (auto nodes = env("SLURM_STEP_NODELIST") ? env("SLURM_STEP_NODELIST") : env("SLURM_JOB_NODELIST")) {
      e.master_addr = first_slurm_host(*nodes);
    } else if (e.world_size > 1) {
      fail("environment: SLURM_NTASKS={} but neither MASTER_ADDR nor SLURM_JOB_NODELIST is set", e.world_size);
    }
    if (!env("MASTER_PORT")) e.master_port = static_cast<uint16_t>(20000 + env_int("SLURM_JOB_ID", 0, 0) % 10000);
  } else {
    return e;
  }
  e.master_port = static_cast<uint16_t>(env_int("MASTER_PORT", e.master_port, 1, 65535));
  e.restart_count = static_cast<int>(env_int("TORCHELASTIC_RESTART_COUNT", 0, 0));
  e.use_agent_store = env("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  return e;
}

}  // namespace cb::dist
