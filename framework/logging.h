// spdlog set-up: one line per event, "[time] [rank r/w] [level] message".
// Rank 0 logs at the requested level; other ranks only warnings and above unless asked (as the original).
#pragma once
#include <spdlog/spdlog.h>
#include <string>

namespace cb {

void init_logging(int rank = 0, int world_size = 1, const std::string& level = "info", bool all_ranks = false);
int log_rank();

}  // namespace cb
