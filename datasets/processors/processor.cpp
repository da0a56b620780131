#include "datasets/processors/processor.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "framework/did_you_mean.h"
#include "framework/error.h"

namespace cb {

SharedRng::SharedRng(const Config& cfg) : rng_(uint64_t(cfg.get<int64_t>("seed", 0))) {}

Processor make_processor(const Config& cfg, std::string_view inherited_from) {
  const Config seen = cfg.recording();
  const auto name = seen.get<std::string>("name");
  Processor p = registry::get<Kind::processor>(name)(seen);
  const auto known = cfg.keys_read(seen);
  for (const auto& k : cfg.keys()) {
    if (std::find(known.begin(), known.end(), k) != known.end()) continue;
    const ConfigNode& v = *cfg.node().find(k);
    const std::string what = fmt::format("{} in {}: not a key of processor '{}' (its keys: {}){}", k, v.where(), name,
                                         fmt::join(known, ", "), did_you_mean(k, known));
    if (inherited_from.empty() || v.source != inherited_from) fail("{}", what);
    spdlog::warn("{}: {}; kept from the default yaml, it has no effect", cfg.path(), what);
  }
  return p;
}

}  // namespace cb
