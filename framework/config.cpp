#include "framework/config.h"

#include <cstdlib>
#include <limits>
#include <mutex>
#include <optional>
#include <set>

#include "framework/config_schema.h"
#include "framework/error.h"
#include "framework/registry.h"
#include "framework/text/python_str.h"

namespace cb {
namespace {

using Type = ConfigNode::Type;

[[noreturn]] void wrong_type(const std::string& key, const ConfigNode& n, std::string_view expected) {
  fail("{} in {}: expected {}, got {}", key, n.where(), expected, n.describe());
}

template <typename V>
V decode(const ConfigNode& n, const std::string& key);

template <>
bool decode<bool>(const ConfigNode& n, const std::string& key) {
  if (n.type != Type::boolean) wrong_type(key, n, "a boolean");
  return n.boolean;
}
template <>
int64_t decode<int64_t>(const ConfigNode& n, const std::string& key) {
  if (n.type != Type::integer) wrong_type(key, n, "an integer");
  return n.integer;
}
template <>
int decode<int>(const ConfigNode& n, const std::string& key) {
  int64_t v = decode<int64_t>(n, key);
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    wrong_type(key, n, "a 32-bit integer");
  return int(v);
}
template <>
double decode<double>(const ConfigNode& n, const std::string& key) {
  if (n.type == Type::integer) return double(n.integer);
  if (n.type != Type::floating) wrong_type(key, n, "a number");
  return n.floating;
}
template <>
std::string decode<std::string>(const ConfigNode& n, const std::string& key) {
  if (n.type != Type::string) wrong_type(key, n, "a string");
  return n.string;
}

template <typename E>
std::vector<E> decode_list(const ConfigNode& n, const std::string& key) {
  if (n.type != Type::list) wrong_type(key, n, "a list");
  std::vector<E> out;
  for (size_t i = 0; i < n.items.size(); ++i) out.push_back(decode<E>(n.items[i], fmt::format("{}[{}]", key, i)));
  return out;
}
template <>
std::vector<int64_t> decode<std::vector<int64_t>>(const ConfigNode& n, const std::string& key) {
  return decode_list<int64_t>(n, key);
}
template <>
std::vector<double> decode<std::vector<double>>(const ConfigNode& n, const std::string& key) {
  return decode_list<double>(n, key);
}
template <>
std::vector<std::string> decode<std::vector<std::string>>(const ConfigNode& n, const std::string& key) {
  return decode_list<std::string>(n, key);
}

nlohmann::ordered_json node_to_json(const ConfigNode& n) {
  switch (n.type) {
    case Type::null: return nullptr;
    case Type::boolean: return n.boolean;
    case Type::integer: return n.integer;
    case Type::floating: return n.floating;
    case Type::string: return n.string;
    case Type::list: {
      auto a = nlohmann::ordered_json::array();
      for (const auto& c : n.items) a.push_back(node_to_json(c));
      return a;
    }
    case Type::map: {
      auto o = nlohmann::ordered_json::object();
      for (const auto& [k, v] : n.entries) o[k] = node_to_json(v);
      return o;
    }
  }
  return nullptr;
}

// Sets `value` at a dotted key, creating mappings on the way (OmegaConf.update).
void set_dotted(ConfigNode& root, const std::string& key, const ConfigNode& value, const std::string& token) {
  ConfigNode* n = &root;
  for (const auto& part : pystr::split(key, ".")) {
    if (part.empty()) fail("--options '{}': empty key component in '{}'", token, key);
    if (!n->is_map()) {
      if (!n->is_null()) fail("--options '{}': '{}' goes through a value that is not a mapping", token, key);
      n->type = Type::map, n->source = "--options";
    }
    n = &n->child(part);
  }
  merge_into(*n, value);
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// OmegaConf's interpolation over the merged tree (what the original's config reads after its merge).
class Interpolator {
 public:
  explicit Interpolator(ConfigNode& root) : root_(root) {}
  void resolve(ConfigNode& n) {
    if (n.type == Type::string) return resolve_string(n);
    for (auto& c : n.items) resolve(c);
    for (auto& [k, v] : n.entries) resolve(v);
  }

 private:
  void resolve_string(ConfigNode& n) {
    if (n.string.find("${") == std::string::npos) return;
    if (std::find(busy_.begin(), busy_.end(), &n) != busy_.end())
      fail("{}: interpolation '{}' refers back to itself", n.where(), n.string);
    busy_.push_back(&n);
    const std::string text = n.string;
    std::string out;
    std::optional<ConfigNode> whole;  // "${a.b}" alone keeps the referenced value's type
    for (size_t i = 0; i < text.size();) {
      if (text.compare(i, 3, "\\${") == 0) {  // \${ is a literal ${
        out += "${", i += 3;
        continue;
      }
      if (text.compare(i, 2, "${") != 0) {
        out += text[i++];
        continue;
      }
      const size_t end = text.find('}', i);
      if (end == std::string::npos) fail("{}: '{}': '${{' without its '}}'", n.where(), text);
      ConfigNode v = value_of(text.substr(i + 2, end - i - 2), n);
      if (i == 0 && end + 1 == text.size()) whole = std::move(v);
      else out += as_text(v, n);
      i = end + 1;
    }
    busy_.pop_back();
    const auto source = n.source;
    const auto line = n.line;
    if (whole) n = std::move(*whole);
    else n.string = std::move(out);
    n.source = source, n.line = line;  // errors about the value point at the interpolation
  }

  ConfigNode value_of(const std::string& expr, const ConfigNode& at) {
    if (expr.find("${") != std::string::npos)
      fail("{}: nested interpolation '${{{}}}' is not supported", at.where(), expr);
    if (const auto colon = expr.find(':'); colon != std::string::npos) {  // a resolver
      const auto name = expr.substr(0, colon);
      if (name != "oc.env" && name != "env")
        fail("{}: resolver '{}' in '${{{}}}' is not supported (oc.env and env are)", at.where(), name, expr);
      auto arg = expr.substr(colon + 1);
      const auto comma = arg.find(',');
      std::optional<std::string> fallback;
      if (comma != std::string::npos) fallback = trim(arg.substr(comma + 1)), arg = arg.substr(0, comma);
      const char* env = std::getenv(trim(arg).c_str());
      if (!env && !fallback) fail("{}: environment variable '{}' is not set (${{{}}})", at.where(), arg, expr);
      ConfigNode v;
      v.type = Type::string, v.string = env ? env : *fallback;
      return v;
    }
    if (expr.empty() || expr[0] == '.')
      fail("{}: '${{{}}}': only absolute key paths are supported, e.g. ${{run.output_dir}}", at.where(), expr);
    ConfigNode* n = &root_;
    for (const auto& part : pystr::split(expr, ".")) {
      n = n->is_map() ? const_cast<ConfigNode*>(n->find(part)) : nullptr;
      if (!n) fail("{}: interpolation '${{{}}}': no key {} in the config", at.where(), expr, expr);
    }
    resolve(*n);  // it may interpolate in turn
    return *n;
  }

  static std::string as_text(const ConfigNode& v, const ConfigNode& at) {  // Python's str() of the value
    switch (v.type) {
      case Type::string: return v.string;
      case Type::boolean: return v.boolean ? "True" : "False";
      case Type::null: return "None";
      case Type::integer:
      case Type::floating: return v.describe();
      default: fail("{}: '{}': {} is inserted into a string", at.where(), at.string, v.describe());
    }
  }

  ConfigNode& root_;
  std::vector<const ConfigNode*> busy_;
};

}  // namespace

void resolve_interpolations(ConfigNode& root) { Interpolator(root).resolve(root); }

Config::Config() : Config(ConfigNode::mapping(), "") {}

Config::Config(ConfigNode root, std::string origin) {
  root_ = std::make_shared<const ConfigNode>(std::move(root));
  node_ = root_.get();
  origin_ = std::move(origin);
}

Config::Config(std::shared_ptr<const ConfigNode> root, const ConfigNode* node, std::string path, std::string origin)
    : root_(std::move(root)), node_(node), path_(std::move(path)), origin_(std::move(origin)) {}

std::string Config::full(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

struct Config::Reads {
  std::mutex mutex;
  std::set<std::string> paths;
};

Config Config::recording() const {
  Config c = *this;
  c.reads_ = std::make_shared<Reads>();
  return c;
}

std::vector<std::string> Config::keys_read(const Config& recorder) const {
  if (!recorder.reads_) fail("Config::keys_read: {} is not a recording() view", recorder.path_);
  const std::string prefix = path_.empty() ? "" : path_ + ".";
  std::lock_guard lock(recorder.reads_->mutex);
  std::vector<std::string> out;
  for (const auto& p : recorder.reads_->paths)
    if (p.size() > prefix.size() && p.starts_with(prefix) && p.find('.', prefix.size()) == std::string::npos)
      out.push_back(p.substr(prefix.size()));
  return out;
}

const ConfigNode* Config::lookup(std::string_view key) const {
  if (reads_) {
    std::lock_guard lock(reads_->mutex);
    reads_->paths.insert(full(key.substr(0, key.find('.'))));
  }
  const ConfigNode* n = node_;
  for (const auto& part : pystr::split(key, ".")) {
    if (!n->is_map()) return nullptr;
    n = n->find(part);
    if (!n) return nullptr;
  }
  return n;
}

bool Config::has(std::string_view key) const {
  const ConfigNode* n = lookup(key);
  return n && !n->is_null();
}

template <typename V>
V Config::get(std::string_view key) const {
  const ConfigNode* n = lookup(key);
  if (n && !n->is_null()) return decode<V>(*n, full(key));
  // The declared default (config_schema.cpp) of the full key path: a section read at the root has none.
  if (const ConfigNode* d = declared_default(full(key))) return decode<V>(*d, full(key));
  fail("{}: required key is {} in {}", full(key), n ? "null" : "missing", origin_.empty() ? "the config" : origin_);
}

template <typename V>
V Config::get(std::string_view key, V fallback) const {
  return get_optional<V>(key).value_or(std::move(fallback));
}

template <typename V>
std::optional<V> Config::get_optional(std::string_view key) const {
  const ConfigNode* n = lookup(key);
  if (!n || n->is_null()) return std::nullopt;
  return decode<V>(*n, full(key));
}

#define CB_CONFIG_INSTANTIATE(V) \
  template V Config::get<V>(std::string_view) const; \
  template V Config::get<V>(std::string_view, V) const; \
  template std::optional<V> Config::get_optional<V>(std::string_view) const;
CB_CONFIG_INSTANTIATE(bool)
CB_CONFIG_INSTANTIATE(int)
CB_CONFIG_INSTANTIATE(int64_t)
CB_CONFIG_INSTANTIATE(double)
CB_CONFIG_INSTANTIATE(std::string)
CB_CONFIG_INSTANTIATE(std::vector<int64_t>)
CB_CONFIG_INSTANTIATE(std::vector<double>)
CB_CONFIG_INSTANTIATE(std::vector<std::string>)
#undef CB_CONFIG_INSTANTIATE

Config Config::sub(std::string_view key) const {
  const ConfigNode* n = lookup(key);
  if (!n) fail("{}: required section is missing in {}", full(key), origin_.empty() ? "the config" : origin_);
  if (!n->is_map()) wrong_type(full(key), *n, "a mapping");
  Config c(root_, n, full(key), origin_);
  c.reads_ = reads_;
  return c;
}

std::vector<std::string> Config::keys() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : node_->entries) out.push_back(k);
  return out;
}

std::string Config::to_yaml() const { return cb::to_yaml(*node_); }

nlohmann::ordered_json Config::to_json() const { return node_to_json(*node_); }

ConfigNode options_to_node(const std::vector<std::string>& options) {
  std::vector<std::string> dotlist;
  if (!options.empty() && options[0].find('=') == std::string::npos) {
    if (options.size() % 2)
      fail("--options '{}': key without a value (alternating 'key value' pairs, since the first has no '=')",
           options.back());
    for (size_t i = 0; i < options.size(); i += 2) dotlist.push_back(options[i] + "=" + options[i + 1]);
  } else {
    dotlist = options;
  }
  ConfigNode root = ConfigNode::mapping("--options");
  for (const auto& token : dotlist) {
    size_t eq = token.find('=');
    std::string key = token.substr(0, eq);
    ConfigNode value;
    value.source = "--options";
    if (eq != std::string::npos) {
      try {
        value = parse_yaml(token.substr(eq + 1), "--options");
      } catch (const Error& e) {
        fail("--options '{}': {}", token, e.what());
      }
    }
    set_dotted(root, key, value, token);
  }
  return root;
}

Config resolve_config(const std::filesystem::path& cfg_path, const std::vector<std::string>& options) {
  return resolve_config(cfg_path, options, {});
}

Config resolve_config(const std::filesystem::path& cfg_path, const std::vector<std::string>& options,
                      const std::filesystem::path& model_cfg) {
  const std::string name = cfg_path.string();
  ConfigNode user = options_to_node(options);
  if (!model_cfg.empty()) {  // under --options, its keys keeping the file and line they came from
    ConfigNode over = ConfigNode::mapping(model_cfg.string());
    over.child("model") = *resolve_config(model_cfg, {}).node().find("model");  // a resolved config has one
    merge_into(over, user);
    user = std::move(over);
  }
  ConfigNode file = load_yaml_file(cfg_path, name);
  if (!file.is_map()) fail("{}: expected a mapping with model/run sections, got {}", name, file.describe());
  for (const auto& [k, v] : file.entries)
    if (k != "model" && k != "run" && k != "datasets") {
      ConfigNode alone = ConfigNode::mapping();
      alone.entries.emplace_back(k, v);
      validate_config_schema(alone);  // "did you mean" for typos
      fail("{} in {}: not a section of an experiment yaml (model, run, datasets)", k, v.where());
    }

  ConfigNode resolved = ConfigNode::mapping(name);
  const ConfigNode* run = file.find("run");
  if (!run || !run->is_map()) fail("run: missing section in {}", name);
  resolved.child("run") = *run;

  // Model: the registered default yaml of model.arch for model_type, with the yaml's model section over it.
  const ConfigNode* model = file.find("model");
  if (!model || !model->is_map()) fail("model: missing section in {}", name);
  // model.arch / model.model_type given in --options pick the class and base yaml (the original reads
  // them from the yaml only: its lookup of "model.model_type" in the options never matched). They and
  // datasets.*.type are read before the base yamls exist, so an interpolation in them is resolved over
  // the experiment yaml and --options alone, as OmegaConf resolves the original's model.arch.
  ConfigNode early = file;
  merge_into(early, user);
  auto pick = [&](const std::string& key) -> std::pair<std::string, std::string> {
    Config(early, name).get<std::string>(key);  // a missing key or a wrong type, before any resolving
    ConfigNode* n = &early;
    for (const auto& part : pystr::split(key, ".")) n = const_cast<ConfigNode*>(n->find(part));
    Interpolator(early).resolve(*n);
    return {Config(early, name).get<std::string>(key), n->where()};
  };
  auto [arch, arch_where] = pick("model.arch");
  auto [type, type_where] = pick("model.model_type");
  std::filesystem::path base_path;
  try {
    base_path = registry::default_config(Kind::model, arch, type);
  } catch (const Error& e) {
    auto known = registry::names_with_default_config(Kind::model);
    bool known_arch = std::find(known.begin(), known.end(), arch) != known.end();
    fail("{} in {}: {}", known_arch ? "model.model_type" : "model.arch", known_arch ? type_where : arch_where,
         e.what());
  }
  ConfigNode base = load_yaml_file(base_path, std::filesystem::relative(base_path, registry::resource_root()).string());
  ConfigNode over = ConfigNode::mapping(name);
  over.child("model") = *model;
  merge_into(base, over);
  merge_into(resolved, base);

  // Datasets (optional): each builder's default yaml for datasets.<name>.type (default "default").
  if (const ConfigNode* datasets = file.find("datasets"); datasets && !datasets->is_null()) {
    if (!datasets->is_map()) wrong_type("datasets", *datasets, "a mapping");
    for (const auto& [ds, section] : datasets->entries) {
      const bool typed = section.is_map() && section.find("type");
      const std::string ds_type = typed ? pick("datasets." + ds + ".type").first : "default";
      std::filesystem::path ds_path;
      try {
        ds_path = registry::default_config(Kind::dataset_builder, ds, ds_type);
      } catch (const Error& e) {
        fail("datasets.{} in {}: {}", ds, section.where(), e.what());
      }
      ConfigNode ds_cfg =
          load_yaml_file(ds_path, std::filesystem::relative(ds_path, registry::resource_root()).string());
      ConfigNode ds_over = ConfigNode::mapping(name);
      ds_over.child("datasets").type = Type::map;
      ds_over.child("datasets").child(ds) = section;
      merge_into(ds_cfg, ds_over);
      merge_into(resolved, ds_cfg);
    }
  }

  merge_into(resolved, user);
  resolve_interpolations(resolved);
  validate_config_schema(resolved);
  return Config(std::move(resolved), name);
}

}  // namespace cb
