// The registry kind `processor` (the original's @registry.register_processor classes, built from a
// `{name: ..., <args>}` sub-config with `from_config`). A processor is one callable: text processors
// map a string to a string, media processors map a tensor (what the original's __call__ receives,
// e.g. an HWC uint8 RGB image) to a tensor, file processors read a media file by path (the video
// processors, whose originals take a path) into a tensor. Exactly one of the three is set.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <string_view>

#include "framework/config.h"
#include "framework/registry.h"

namespace cb {

struct Processor {
  std::function<std::string(std::string_view)> text = {};
  std::function<torch::Tensor(const torch::Tensor&)> media = {};
  std::function<torch::Tensor(const std::string& path)> file = {};
};

template <>
struct FactoryOf<Kind::processor> {
  using type = std::function<Processor(const Config&)>;
};

// The random generator of a training processor, shared by the processor's copies (one per loader worker):
// seeded by the config's optional `seed` key (default 0). Each draw runs whole under its lock; the work
// on the drawn values (decoding, resizing) runs outside it.
class SharedRng {
 public:
  explicit SharedRng(const Config& cfg);
  template <class Draw>
  auto draw(Draw&& d) {
    std::lock_guard<std::mutex> lock(mutex_);
    return d(rng_);
  }

 private:
  std::mutex mutex_;
  std::mt19937_64 rng_;
};

// registry::get<Kind::processor>(cfg.get<std::string>("name"))(cfg), failing on an unknown name and on
// a key the processor does not read (the original ignores it: a misspelt `imagesize` keeps the default).
// A key whose value comes from the file `inherited_from` (a builder's default yaml, merged under the
// user's section) only warns: who switches a processor's name keeps what the default one read, as the
// original's merge keeps it.
Processor make_processor(const Config& cfg, std::string_view inherited_from = {});

}  // namespace cb
