#include "framework/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include "framework/error.h"

namespace cb {
namespace {
int g_rank = 0;
}

int log_rank() { return g_rank; }

void init_logging(int rank, int world_size, const std::string& level, bool all_ranks) {
  g_rank = rank;
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    fail("--log-level: unknown level '{}' (expected trace, debug, info, warn, error, critical, off)", level);
  spdlog::drop("chatbridge");  // re-initialisable (tests, apps that re-read the rank)
  auto logger = spdlog::stderr_color_mt("chatbridge");
  logger->set_pattern(world_size > 1 ? fmt::format("[%Y-%m-%d %H:%M:%S.%e] [rank {}/{}] [%^%l%$] %v", rank, world_size)
                                     : "[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v");
  logger->set_level(rank == 0 || all_ranks ? lvl : std::max(lvl, spdlog::level::warn));
  spdlog::set_default_logger(logger);
}

}  // namespace cb
