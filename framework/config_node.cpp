#include "framework/config_node.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>

#include "framework/error.h"

namespace cb {
namespace {

// PyYAML 1.1 implicit resolvers as OmegaConf configures them (timestamps removed, floats widened to
// accept 1e-4 without a dot or exponent sign).
const std::regex kNull(R"(~|null|Null|NULL|)");
const std::regex kBool(R"(yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)");
const std::regex kTrue(R"(yes|Yes|YES|true|True|TRUE|on|On|ON)");
const std::regex kInt(R"([-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)");
const std::regex kFloat(R"([-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+))"
                        R"(|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))");

std::string without_underscores(std::string s) {
  std::erase(s, '_');
  return s;
}

int64_t parse_int(const std::string& text, const std::string& where) {
  std::string s = without_underscores(text);
  bool neg = !s.empty() && s[0] == '-';
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.erase(0, 1);
  int base = 10;
  if (s.size() > 1 && s[0] == '0') {
    if (s[1] == 'b') base = 2, s.erase(0, 2);
    else if (s[1] == 'x') base = 16, s.erase(0, 2);
    else base = 8;
  }
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, base);
  if (errno == ERANGE || *end || v > uint64_t(std::numeric_limits<int64_t>::max()) + (neg ? 1 : 0))
    fail("{}: integer {} is out of the 64-bit range", where, text);
  return neg ? int64_t(0 - v) : int64_t(v);
}

double parse_float(const std::string& text) {
  std::string s = without_underscores(text);
  bool neg = !s.empty() && s[0] == '-';
  std::string body = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? s.substr(1) : s;
  if (body == ".inf" || body == ".Inf" || body == ".INF")
    return neg ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  if (body == ".nan" || body == ".NaN" || body == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  return std::strtod(s.c_str(), nullptr);
}

ConfigNode typed_plain_scalar(const std::string& text, const ConfigNode& at) {
  ConfigNode n;
  n.source = at.source, n.line = at.line;
  if (std::regex_match(text, kNull)) return n;
  if (std::regex_match(text, kBool)) {
    n.type = ConfigNode::Type::boolean, n.boolean = std::regex_match(text, kTrue);
  } else if (std::regex_match(text, kInt)) {
    n.type = ConfigNode::Type::integer, n.integer = parse_int(text, at.where());
  } else if (std::regex_match(text, kFloat)) {
    n.type = ConfigNode::Type::floating, n.floating = parse_float(text);
  } else {
    n.type = ConfigNode::Type::string, n.string = text;
  }
  return n;
}

// YAML 1.1's merge key, which PyYAML (so OmegaConf and the original) resolves: `<<: *anchor` or
// `<<: [*a, *b]` brings in the keys of the mappings given, an earlier one winning over a later one.
// yaml-cpp 0.7 would keep `<<` as an ordinary key, silently (under an `any` section) or as an unknown key.
void add_merge_key(ConfigNode& merged, const ConfigNode& value) {
  auto add = [&](const ConfigNode& m) {
    if (!m.is_map())
      fail("{}: the merge key '<<' takes a mapping or a list of mappings, got {}", m.where(), m.describe());
    for (const auto& [k, v] : m.entries)
      if (!merged.find(k)) merged.entries.emplace_back(k, v);
  };
  if (value.type != ConfigNode::Type::list) return add(value);
  for (const auto& m : value.items) add(m);
}

ConfigNode convert(const YAML::Node& y, const std::string& source) {
  ConfigNode n;
  n.source = source;
  n.line = y.Mark().line >= 0 ? y.Mark().line + 1 : 0;
  const std::string& tag = y.Tag();
  if (y.Type() != YAML::NodeType::Scalar && !tag.empty() && tag != "?" && tag != "!" &&
      tag != "tag:yaml.org,2002:seq" && tag != "tag:yaml.org,2002:map")
    fail("{}: unsupported YAML tag '{}'", n.where(), tag);
  switch (y.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null: return n;
    case YAML::NodeType::Scalar: {
      if (tag == "!" || tag == "tag:yaml.org,2002:str") {  // quoted, or explicitly a string
        n.type = ConfigNode::Type::string, n.string = y.Scalar();
        return n;
      }
      if (tag != "?" && tag != "tag:yaml.org,2002:int" && tag != "tag:yaml.org,2002:float" &&
          tag != "tag:yaml.org,2002:bool" && tag != "tag:yaml.org,2002:null")
        fail("{}: unsupported YAML tag '{}'", n.where(), tag);
      return typed_plain_scalar(y.Scalar(), n);
    }
    case YAML::NodeType::Sequence:
      n.type = ConfigNode::Type::list;
      for (const auto& item : y) n.items.push_back(convert(item, source));
      return n;
    case YAML::NodeType::Map: {
      n.type = ConfigNode::Type::map;
      ConfigNode merged = ConfigNode::mapping(source);  // what `<<:` brings in
      for (const auto& kv : y) {
        std::string key = kv.first.Scalar();
        if (key == "<<" && kv.first.Tag() == "?") {
          add_merge_key(merged, convert(kv.second, source));
          continue;
        }
        if (n.find(key)) fail("{} (line {}): duplicate key '{}'", source, kv.first.Mark().line + 1, key);
        n.entries.emplace_back(key, convert(kv.second, source));
      }
      // The mapping's own keys win over merged ones, wherever they stand (PyYAML's flatten_mapping).
      for (auto& [k, v] : n.entries) merged.child(k) = std::move(v);
      n.entries = std::move(merged.entries);
      return n;
    }
  }
  return n;
}

std::string format_float(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  std::string s = fmt::format("{}", v);  // shortest text that reads back to the same double
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string scalar_text(const ConfigNode& n) {
  switch (n.type) {
    case ConfigNode::Type::null: return "null";
    case ConfigNode::Type::boolean: return n.boolean ? "true" : "false";
    case ConfigNode::Type::integer: return std::to_string(n.integer);
    case ConfigNode::Type::floating: return format_float(n.floating);
    default: return n.string;
  }
}

bool retypes_as_plain(const std::string& s) {
  return std::regex_match(s, kNull) || std::regex_match(s, kBool) || std::regex_match(s, kInt) ||
         std::regex_match(s, kFloat);
}

void emit(YAML::Emitter& out, const ConfigNode& n) {
  switch (n.type) {
    case ConfigNode::Type::map:
      out << YAML::BeginMap;
      for (const auto& [k, v] : n.entries) {
        out << YAML::Key << k << YAML::Value;
        emit(out, v);
      }
      out << YAML::EndMap;
      return;
    case ConfigNode::Type::list: {
      bool flat = std::none_of(n.items.begin(), n.items.end(),
                               [](const ConfigNode& c) { return c.is_map() || c.type == ConfigNode::Type::list; });
      out << (flat ? YAML::Flow : YAML::Block) << YAML::BeginSeq;
      for (const auto& c : n.items) emit(out, c);
      out << YAML::EndSeq;
      return;
    }
    case ConfigNode::Type::string:
      if (retypes_as_plain(n.string)) out << YAML::DoubleQuoted;
      out << n.string;
      return;
    case ConfigNode::Type::null: out << YAML::Null; return;
    default: out << scalar_text(n); return;
  }
}

}  // namespace

const ConfigNode* ConfigNode::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

ConfigNode& ConfigNode::child(const std::string& key) {
  for (auto& [k, v] : entries)
    if (k == key) return v;
  return entries.emplace_back(key, ConfigNode{}).second;
}

std::string ConfigNode::where() const {
  if (source.empty()) return "the resolved config";
  return line > 0 && source != "--options" ? fmt::format("{} (line {})", source, line) : source;
}

std::string ConfigNode::describe() const {
  switch (type) {
    case Type::string: return fmt::format("'{}'", string);
    case Type::list: return "a list";
    case Type::map: return "a mapping";
    default: return scalar_text(*this);
  }
}

namespace {

// yaml-cpp (0.7) folds a quoted scalar that spans lines differently from PyYAML, which OmegaConf and the
// original use: `end_sym: '<newline><newline>    '` (how PyYAML writes "\n") reads as "" instead of
// "\n". Such values are refused with the line to rewrite rather than silently changed.
void refuse_multiline_quoted(const std::string& text, const std::string& source) {
  std::istringstream lines(text);
  std::string line;
  for (int n = 1; std::getline(lines, line); ++n) {
    size_t i = line.find_first_not_of(" \t");
    if (i == std::string::npos || line[i] == '#') continue;
    if (line.compare(i, 2, "- ") == 0) i = line.find_first_not_of(" \t", i + 2);
    const size_t colon = line.find(": ", i);
    if (i == std::string::npos || colon == std::string::npos || line.find_first_of("'\"#", i) < colon) continue;
    const size_t v = line.find_first_not_of(" \t", colon + 1);
    if (v == std::string::npos || (line[v] != '\'' && line[v] != '"')) continue;
    const char q = line[v];
    bool closed = false;
    for (size_t k = v + 1; k < line.size() && !closed; ++k) {
      if (q == '"' && line[k] == '\\') ++k;                                                      // "\x" escape
      else if (q == '\'' && line[k] == '\'' && k + 1 < line.size() && line[k + 1] == '\'') ++k;  // '' escape
      else closed = line[k] == q;
    }
    if (!closed)
      fail(
          "{} (line {}): a quoted string continues on the next line, which yaml-cpp reads differently from PyYAML "
          "(a '\\n' written over two lines becomes ''): write it on one line with escapes, e.g. \"\\n\"",
          source, n);
  }
}

}  // namespace

ConfigNode parse_yaml(const std::string& text, const std::string& source) {
  refuse_multiline_quoted(text, source);
  YAML::Node y;
  try {
    y = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail("{} (line {}): invalid YAML: {}", source, e.mark.line + 1, e.msg);
  }
  return convert(y, source);
}

ConfigNode load_yaml_file(const std::filesystem::path& path, const std::string& display_name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open config file", display_name);
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_yaml(ss.str(), display_name);
}

void merge_into(ConfigNode& dst, const ConfigNode& src) {
  if (dst.is_map() && src.is_map()) {
    for (const auto& [k, v] : src.entries) merge_into(dst.child(k), v);
    return;
  }
  dst = src;
}

std::string to_yaml(const ConfigNode& node) {
  YAML::Emitter out;
  out.SetIndent(2);
  emit(out, node);
  return std::string(out.c_str()) + "\n";
}

}  // namespace cb
