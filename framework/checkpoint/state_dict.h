// State dicts: ordered name -> tensor maps, and loading them into torch::nn modules under the
// original key names (strict or non-strict, with a report of what did not match).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

namespace cb {

using StateDict = torch::OrderedDict<std::string, torch::Tensor>;

struct LoadReport {
  std::vector<std::string> missing;     // in the module, not in the state dict
  std::vector<std::string> unexpected;  // in the state dict, not in the module
  size_t loaded = 0;
};

// Copies every matching tensor into `module` (cast to the destination dtype; shapes must match).
// `prefix` is stripped from state-dict keys first (keys without it count as unexpected).
// strict: throws when anything is missing or unexpected, naming the keys and `source`.
LoadReport load_state_dict(torch::nn::Module& module, const StateDict& sd, bool strict,
                           const std::string& source = "state dict", const std::string& prefix = "");

// Parameters and buffers of `module` under their state-dict names.
StateDict module_state_dict(const torch::nn::Module& module, const std::string& prefix = "");

// Keys of `sd` that start with `prefix`, with the prefix removed.
StateDict strip_prefix(const StateDict& sd, const std::string& prefix);

}  // namespace cb
