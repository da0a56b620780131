// The configuration tree with OmegaConf's typing, and the YAML it is read from / written to.
//
// Scalars are typed as OmegaConf's YAML loader types them (PyYAML 1.1 SafeLoader resolvers plus
// OmegaConf's float rule), not as yaml-cpp would: unquoted 1e-4 / 1.5 / .inf are floats, 10 / 0x1f /
// 0b11 / 017 (octal) / 1_000 are ints, true/True/yes/on/... are booleans, ~/null/empty are null,
// everything else and anything quoted is a string. (Sexagesimal numbers like 1:30 stay strings.)
// Every node remembers where it came from (file or "--options", and the line) for error messages.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cb {

struct ConfigNode {
  enum class Type { null, boolean, integer, floating, string, list, map };

  Type type = Type::null;
  bool boolean = false;
  int64_t integer = 0;
  double floating = 0;
  std::string string;
  std::vector<ConfigNode> items;                            // list
  std::vector<std::pair<std::string, ConfigNode>> entries;  // map, in file order

  std::string source;  // file the value came from, or "--options"
  int line = 0;        // 1-based line in source, 0 if unknown

  static ConfigNode mapping(std::string source = {}) {
    ConfigNode n;
    n.type = Type::map, n.source = std::move(source);
    return n;
  }

  bool is_null() const { return type == Type::null; }
  bool is_map() const { return type == Type::map; }
  const ConfigNode* find(std::string_view key) const;  // map entry or nullptr
  ConfigNode& child(const std::string& key);           // map entry, appended (null) if absent

  // "train_configs/x.yaml (line 12)" / "--options"
  std::string where() const;
  // A value as shown in messages: 'abc', 20, 1e-05, true, null, a list, a mapping.
  std::string describe() const;
};

// Parses YAML text (a whole file, or one --options value); `source` names it in messages.
ConfigNode parse_yaml(const std::string& text, const std::string& source);
ConfigNode load_yaml_file(const std::filesystem::path& path, const std::string& display_name);

// OmegaConf.merge: mappings merge key by key (src wins), anything else is replaced by src.
void merge_into(ConfigNode& dst, const ConfigNode& src);

// Block YAML that parse_yaml reads back to the same typed tree (strings that would re-type are quoted).
std::string to_yaml(const ConfigNode& node);

}  // namespace cb
