#include "datasets/processors/processor.h"

namespace cb {

Processor make_processor(const Config& cfg) {
  return registry::get<Kind::processor>(cfg.get<std::string>("name"))(cfg);
}

}  // namespace cb
