#include "framework/registry.h"

#include <cstdlib>
#include <map>

#include "framework/did_you_mean.h"
#include "framework/error.h"

namespace cb {

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::model: return "model";
    case Kind::dataset_builder: return "dataset builder";
    case Kind::processor: return "processor";
    case Kind::task: return "task";
    case Kind::runner: return "runner";
    case Kind::lr_scheduler: return "lr scheduler";
  }
  return "?";
}

namespace registry {
namespace {

struct Tables {
  std::map<Kind, std::map<std::string, std::any, std::less<>>> factories;
  std::map<Kind, std::map<std::string, std::map<std::string, std::string>, std::less<>>> default_configs;
};

// Function-local static: registrations run during static initialisation of other translation units.
Tables& tables() {
  static Tables t;
  return t;
}

std::string listing(const std::vector<std::string>& names) {
  return names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

void add_any(Kind kind, const std::string& name, std::any factory) {
  auto [it, inserted] = tables().factories[kind].emplace(name, std::move(factory));
  if (!inserted) fail("{} '{}' is registered twice", kind_name(kind), name);
}

bool contains(Kind kind, std::string_view name) {
  auto& m = tables().factories[kind];
  return m.find(name) != m.end();
}

std::vector<std::string> names(Kind kind) {
  std::vector<std::string> out;
  for (auto& [name, f] : tables().factories[kind]) out.push_back(name);
  return out;
}

const std::any& find_any(Kind kind, std::string_view name) {
  auto& m = tables().factories[kind];
  auto it = m.find(name);
  if (it == m.end()) {
    auto known = names(kind);
    fail("{} '{}' is not registered{} (registered {}s: {})", kind_name(kind), name, did_you_mean(name, known),
         kind_name(kind), listing(known));
  }
  return it->second;
}

void add_default_config(Kind kind, const std::string& name, const std::string& type, const std::string& path) {
  auto [it, inserted] = tables().default_configs[kind][name].emplace(type, path);
  if (!inserted) fail("{} '{}': default config for type '{}' is registered twice", kind_name(kind), name, type);
}

std::vector<std::string> names_with_default_config(Kind kind) {
  std::vector<std::string> out;
  for (auto& [name, types] : tables().default_configs[kind]) out.push_back(name);
  return out;
}

std::vector<std::string> default_config_types(Kind kind, std::string_view name) {
  std::vector<std::string> out;
  auto& m = tables().default_configs[kind];
  if (auto it = m.find(name); it != m.end())
    for (auto& [type, path] : it->second) out.push_back(type);
  return out;
}

std::filesystem::path default_config(Kind kind, std::string_view name, std::string_view type) {
  auto& m = tables().default_configs[kind];
  auto it = m.find(name);
  if (it == m.end()) {
    auto known = names_with_default_config(kind);
    fail("{} '{}' has no registered default config{} (known {}s: {})", kind_name(kind), name, did_you_mean(name, known),
         kind_name(kind), listing(known));
  }
  auto t = it->second.find(std::string(type));
  if (t == it->second.end()) {
    auto types = default_config_types(kind, name);
    fail("{} '{}' has no config type '{}'{} (known types: {})", kind_name(kind), name, type, did_you_mean(type, types),
         listing(types));
  }
  std::filesystem::path p = t->second;
  return p.is_absolute() ? p : resource_root() / p;
}

std::filesystem::path resource_root() {
  if (const char* env = std::getenv("CHATBRIDGE_ROOT"); env && *env) return env;
  return CHATBRIDGE_SOURCE_DIR;
}

}  // namespace registry
}  // namespace cb
