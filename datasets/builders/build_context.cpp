#include "datasets/builders/build_context.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "framework/did_you_mean.h"
#include "framework/error.h"
#include "framework/json_file.h"

namespace cb {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The shape of a `datasets.<name>` section, as LAVIS's dataset yamls write it. The original ignores
// keys outside it, so a misspelt one (`vall:`, `storge:`) silently leaves a split or a path out; here
// it stops the run. Keys of those yamls that nothing here reads (download links, docs) only warn.
struct Level {
  std::vector<std::string> read, not_read;
  const char* why_not_read = "";
};
const Level kSection{{"type", "data_type", "build_info", "vis_processor", "text_processor", "aud_processor"},
                     {"dataset_card", "sample_ratio"},
                     "a dataset card is documentation; datasets are mixed by the task's data options"};
const Level kBuildInfo{{"annotations", "images", "videos", "audios", "features", "storage"}, {}};
const Level kAnnotations{{"train", "val", "test"}, {"ans2label"}, "answers are generated, not classified"};
const Level kFiles{{"storage"}, {"url", "md5"}, "nothing is downloaded: storage must hold the files"};
const Level kProcessors{{"train", "eval"}, {}};

void check_level(const ConfigNode& n, const Level& level, const std::string& path) {
  if (!n.is_map()) return;  // a wrong type is reported by the code that reads it
  for (const auto& [k, v] : n.entries) {
    if (std::find(level.read.begin(), level.read.end(), k) != level.read.end()) continue;
    if (std::find(level.not_read.begin(), level.not_read.end(), k) != level.not_read.end()) {
      spdlog::warn("{}.{} is set in {} but has no effect here: {}", path, k, v.where(), level.why_not_read);
      continue;
    }
    fail("{}.{} in {}: not a key of a dataset section here (expected one of: {}){}", path, k, v.where(),
         fmt::join(level.read, ", "), did_you_mean(k, level.read));
  }
}

void check_section_keys(const ConfigNode& section, const std::string& path) {
  check_level(section, kSection, path);
  for (const char* p : {"vis_processor", "text_processor", "aud_processor"})
    if (const ConfigNode* n = section.find(p)) check_level(*n, kProcessors, path + "." + p);
  const ConfigNode* info = section.find("build_info");
  if (!info) return;
  check_level(*info, kBuildInfo, path + ".build_info");
  if (const ConfigNode* ann = info->find("annotations")) {
    check_level(*ann, kAnnotations, path + ".build_info.annotations");
    if (ann->is_map())
      for (const auto& [split, files] : ann->entries)
        check_level(files, kFiles, path + ".build_info.annotations." + split);
  }
  for (const char* media : {"images", "videos", "audios", "features"})
    if (const ConfigNode* n = info->find(media)) check_level(*n, kFiles, path + ".build_info." + media);
}

}  // namespace

BuildContext::BuildContext(std::string builder, Config section, fs::path cache_root)
    : builder_(std::move(builder)), section_(std::move(section)), cache_root_(std::move(cache_root)) {
  check_section_keys(section_.node(), key(""));
}

std::string BuildContext::key(std::string_view sub) const {
  const std::string base = section_.path().empty() ? "datasets." + builder_ : section_.path();
  return sub.empty() ? base : base + "." + std::string(sub);
}

fs::path BuildContext::resolve(const std::string& path) const {
  const fs::path p(path);
  return p.is_absolute() ? p : cache_root_ / p;
}

std::vector<std::string> BuildContext::splits() const {
  if (!section_.has("build_info.annotations")) fail("{}: missing", key("build_info.annotations"));
  const Config ann = section_.sub("build_info.annotations");
  std::vector<std::string> out;
  for (const char* split : {"train", "val", "test"})
    if (ann.has(split)) out.emplace_back(split);
  return out;
}

std::vector<fs::path> BuildContext::annotation_files(const std::string& split) const {
  const std::string k = "build_info.annotations." + split + ".storage";
  const ConfigNode* n = section_.sub("build_info.annotations." + split).node().find("storage");
  std::vector<std::string> paths;
  if (n && n->type == ConfigNode::Type::list) paths = section_.get<std::vector<std::string>>(k);
  else paths.push_back(section_.get<std::string>(k));
  if (paths.empty()) fail("{}: an empty list", key(k));
  std::vector<fs::path> out;
  for (const auto& p : paths) out.push_back(resolve(p));
  return out;
}

std::string BuildContext::data_type(const std::string& fallback) const {
  return section_.get<std::string>("data_type", fallback);
}

fs::path BuildContext::media_root(const std::string& media) const {
  const fs::path root = resolve(section_.get<std::string>("build_info." + media + ".storage"));
  std::error_code ec;
  if (!fs::exists(root, ec))
    spdlog::warn("{}: storage path {} does not exist", key("build_info." + media), root.string());
  return root;
}

std::string BuildContext::storage() const { return resolve(section_.get<std::string>("build_info.storage")).string(); }

std::string BuildContext::default_yaml() const {
  const auto type = section_.get<std::string>("type", "default");
  const auto types = registry::default_config_types(Kind::dataset_builder, builder_);
  if (std::find(types.begin(), types.end(), type) == types.end()) return {};
  const auto path = registry::default_config(Kind::dataset_builder, builder_, type);
  return fs::relative(path, registry::resource_root()).string();  // as resolve_config names it
}

Processor BuildContext::processor(const std::string& which, bool train) const {
  const std::string k = which + (train ? ".train" : ".eval");
  if (!section_.has(k)) fail("{}: missing (the {} split needs it)", key(k), train ? "train" : "val/test");
  try {
    return make_processor(section_.sub(k), default_yaml());
  } catch (const Error& e) {
    fail("{}: {}", key(k), e.what());
  }
}

std::function<std::string(std::string_view)> BuildContext::text_processor(bool train) const {
  const std::string k = std::string("text_processor") + (train ? ".train" : ".eval");
  if (!section_.has(k)) return [](std::string_view s) { return std::string(s); };
  Processor p = make_processor(section_.sub(k), default_yaml());
  if (!p.text) fail("{}: {} is not a text processor", key(k), section_.get<std::string>(k + ".name"));
  return p.text;
}

const json& field(const json& r, const char* key) {
  if (!r.is_object()) throw BadRecord{"not a JSON object"};
  auto it = r.find(key);
  if (it == r.end() || it->is_null()) throw BadRecord{fmt::format("no '{}'", key)};
  return *it;
}

std::string string_field(const json& r, const char* key) {
  const json& v = field(r, key);
  if (!v.is_string()) throw BadRecord{fmt::format("'{}' is not a string", key)};
  return v.get<std::string>();
}

std::string id_field(const json& r, const char* key) {
  const json& v = field(r, key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  throw BadRecord{fmt::format("'{}' is neither a string nor an integer", key)};
}

bool raw_is_string(const std::optional<std::string_view>& raw) { return raw && raw->front() == '"'; }

bool raw_is_id(const std::optional<std::string_view>& raw) {
  if (raw_is_string(raw)) return true;
  if (!raw) return false;
  // An integer token that fits int64 for sure (the parser reads longer ones as unsigned or float).
  const std::string_view digits = raw->substr(raw->front() == '-' ? 1 : 0);
  return !digits.empty() && digits.size() <= 18 &&
         std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::vector<std::string> strings_field(const json& r, const char* key) {
  const json& v = field(r, key);
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array() || v.empty()) throw BadRecord{fmt::format("'{}' is neither a string nor a non-empty list", key)};
  std::vector<std::string> out;
  for (const json& s : v) {
    if (!s.is_string()) throw BadRecord{fmt::format("'{}' holds a non-string", key)};
    out.push_back(s.get<std::string>());
  }
  return out;
}

std::string replace_every(std::string s, std::string_view from, std::string_view to) {
  if (from.empty()) return s;
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
  return s;
}

}  // namespace cb
