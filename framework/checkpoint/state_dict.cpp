#include "framework/checkpoint/state_dict.h"

#include <set>

#include "framework/error.h"

namespace cb {

StateDict module_state_dict(const torch::nn::Module& module, const std::string& prefix) {
  StateDict out;
  for (const auto& p : module.named_parameters(true)) out.insert(prefix + p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) out.insert(prefix + b.key(), b.value());
  return out;
}

StateDict strip_prefix(const StateDict& sd, const std::string& prefix) {
  StateDict out;
  for (const auto& kv : sd)
    if (kv.key().rfind(prefix, 0) == 0) out.insert(kv.key().substr(prefix.size()), kv.value());
  return out;
}

static std::string join_some(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < 8; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > 8) s += fmt::format(", ... ({} in all)", v.size());
  return s;
}

LoadReport load_state_dict(torch::nn::Module& module, const StateDict& sd, bool strict, const std::string& source,
                           const std::string& prefix) {
  LoadReport r;
  auto dst = module_state_dict(module);
  std::set<std::string> seen;
  torch::NoGradGuard no_grad;
  for (const auto& kv : sd) {
    if (kv.key().rfind(prefix, 0) != 0) {
      r.unexpected.push_back(kv.key());
      continue;
    }
    auto name = kv.key().substr(prefix.size());
    auto* t = dst.find(name);
    if (!t) {
      r.unexpected.push_back(kv.key());
      continue;
    }
    const auto& src = kv.value();
    if (src.sizes() != t->sizes())
      fail("{}: tensor '{}' has shape {} but the model expects {}", source, kv.key(), fmt::join(src.sizes(), "x"),
           fmt::join(t->sizes(), "x"));
    t->copy_(src);
    seen.insert(name);
    ++r.loaded;
  }
  for (const auto& kv : dst)
    if (!seen.count(kv.key())) r.missing.push_back(prefix + kv.key());
  if (strict && (!r.missing.empty() || !r.unexpected.empty()))
    fail("{}: strict load failed: missing keys [{}], unexpected keys [{}]", source, join_some(r.missing),
         join_some(r.unexpected));
  return r;
}

}  // namespace cb
