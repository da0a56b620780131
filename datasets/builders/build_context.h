// What every builder reads from its `datasets.<name>` section, as the original's BaseDatasetBuilder:
// the splits of build_info.annotations, their annotation files (relative paths under the cache root),
// the media roots (build_info.<data_type>.storage, build_info.audios.storage) and the train/eval
// processors; plus the annotation-record helpers the builders share. Errors name the config key.
#pragma once
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/builders/dataset.h"
#include "datasets/processors/processor.h"

namespace cb {

// A record of an annotation file that a builder cannot use; caught by the builder's record loop,
// which adds the file and the record's position.
struct BadRecord {
  std::string reason;
};

class BuildContext {
 public:
  // Fails on a key outside a dataset section's shape (build_context.cpp), naming it and its line.
  BuildContext(std::string builder, Config section, std::filesystem::path cache_root);

  const std::string& builder() const { return builder_; }
  const Config& section() const { return section_; }
  std::string key(std::string_view sub) const;  // "datasets.<name>.<sub>" for messages

  // An absolute path as is; a relative one under the cache root (the original's get_cache_path).
  std::filesystem::path resolve(const std::string& path) const;
  // The splits of build_info.annotations among train/val/test, in that order.
  std::vector<std::string> splits() const;
  // build_info.annotations.<split>.storage: one path or a list.
  std::vector<std::filesystem::path> annotation_files(const std::string& split) const;
  // data_type ("images", "videos", "audios"), `fallback` when absent.
  std::string data_type(const std::string& fallback) const;
  // build_info.<key>.storage resolved (warns when it does not exist, as the original).
  std::filesystem::path media_root(const std::string& key) const;
  // build_info.storage resolved (webdataset shard patterns, cc_sbu_align's directory).
  std::string storage() const;

  // <which>.<train|eval> ("vis_processor", "aud_processor") built from the registry; fails naming
  // the key when it is absent.
  Processor processor(const std::string& which, bool train) const;
  // text_processor.<train|eval>, the identity when absent (the original's BaseProcessor).
  std::function<std::string(std::string_view)> text_processor(bool train) const;

 private:
  // The builder's default yaml for the section's `type`, as resolve_config names its values' source.
  std::string default_yaml() const;

  std::string builder_;
  Config section_;
  std::filesystem::path cache_root_;
};

// Field accessors for parse functions; they throw BadRecord naming the field.
const nlohmann::json& field(const nlohmann::json& r, const char* key);
std::string string_field(const nlohmann::json& r, const char* key);
// A string or a number (ids) as the original's str(x).
std::string id_field(const nlohmann::json& r, const char* key);
// A string, or a non-empty list of strings.
std::vector<std::string> strings_field(const nlohmann::json& r, const char* key);

// What string_field / id_field accept, told from a member's raw JSON text (json_members) without parsing
// it: true only when the accessor would return without throwing (for QuickCheck functions).
bool raw_is_string(const std::optional<std::string_view>& raw);
bool raw_is_id(const std::optional<std::string_view>& raw);

// Python's str.replace(old, new): every occurrence.
std::string replace_every(std::string s, std::string_view from, std::string_view to);

}  // namespace cb
