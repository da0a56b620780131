// Where this process sits in a distributed job, read from the environment the launchers set.
//
// Sources, first match wins:
//   1. torchrun / chatbridge-launch: RANK, WORLD_SIZE (required together), LOCAL_RANK, LOCAL_WORLD_SIZE,
//      MASTER_ADDR, MASTER_PORT, TORCHELASTIC_RESTART_COUNT, TORCHELASTIC_USE_AGENT_STORE;
//   2. srun: SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE (or SLURM_STEP_TASKS_PER_NODE);
//      MASTER_ADDR defaults to the first host of SLURM_STEP_NODELIST / SLURM_JOB_NODELIST, MASTER_PORT to
//      20000 + SLURM_JOB_ID % 10000 (every task of the step derives the same port);
//   3. nothing set: a single process (world 1).
#pragma once
#include <cstdint>
#include <string>

namespace cb::dist {

struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  uint16_t master_port = 29500;
  int restart_count = 0;         // TORCHELASTIC_RESTART_COUNT: > 0 means "resume from the latest checkpoint"
  bool use_agent_store = false;  // the launcher hosts the TCPStore; rank 0 connects as a client
  std::string source = "none";   // "torchrun", "slurm" or "none" (for logs)

  bool distributed() const { return world_size > 1; }
};

DistEnv dist_env_from_environment();

// First host of a SLURM node list: "gpu[03-05,9],cpu1" -> "gpu03"; "a,b" -> "a".
std::string first_slurm_host(const std::string& nodelist);

}  // namespace cb::dist
