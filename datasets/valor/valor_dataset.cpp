#include "datasets/valor/valor_dataset.h"

#include "datasets/processors/text_processors.h"
#include "framework/error.h"
#include "framework/json_file.h"

namespace cb {
namespace {

using nlohmann::json;

// The id as the original's str(id_): numbers are allowed (image_id in COCO-derived MULTIS files).
std::optional<std::string> id_of(const json& r, const char* key) {
  if (!r.contains(key)) return std::nullopt;
  const json& v = r[key];
  if (v.is_string() && !v.get<std::string>().empty()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  return std::nullopt;
}

}  // namespace

ValorDataset::ValorDataset(const ValorDatasetSpec& spec, const LoaderGroupSpec& group, const DataOptions& opts,
                           std::shared_ptr<const TaskConversation> conversation)
    : name_(spec.name),
      datatype_(spec.datatype),
      data_format_(group.data_format),
      txt_(spec.txt),
      video_root_(spec.video),
      audio_root_(spec.audio),
      conversation_(std::move(conversation)) {
  if (spec.video) video_.emplace(*spec.video, opts.video_options(group, spec));
  if (spec.audio) audio_.emplace(*spec.audio, opts.audio_options(group));

  std::vector<std::string> bad_lines;
  auto raw = read_json_records(txt_, fmt::format("annotation file of dataset '{}'", name_), bad_lines);
  for (auto& why : bad_lines) malformed_.push_back({txt_.string(), std::move(why)});
  for (auto& [r, where] : raw) {
    std::string id;
    if (std::string why = check(r, id); !why.empty()) {
      malformed_.push_back({txt_.string(), where + ": " + why});
      continue;
    }
    records_.push_back({std::move(id), std::move(r)});
  }
}

std::string ValorDataset::check(const json& r, std::string& id) const {
  if (!r.is_object()) return "not a JSON object";
  auto found = id_of(r, "video_id");
  if (!found && conversation_) found = id_of(r, "image_id");
  if (!found) return conversation_ ? "no video_id/image_id" : "no video_id";
  id = *found;
  if (conversation_) return conversation_->check(r);
  // Stage 1 trains on the caption; the original crashes on list captions (self.all_text is undefined).
  const char* key = r.contains("desc") ? "desc" : "caption";
  if (!r.contains(key) || !r[key].is_string()) return "no caption/desc string";
  return "";
}

std::string ValorDataset::describe(int64_t i) const {
  const std::string& id = records_.at(i).id;
  if (video_root_) return (*video_root_ / id).string();
  return (*audio_root_ / id).string();
}

ValorSample ValorDataset::load(int64_t i, std::mt19937_64& rng, ImageDecoder& decoder) const {
  const Record& r = records_.at(i);
  ValorSample s;
  s.id = r.id;
  if (video_) {
    if (datatype_ == "image") s.image = video_->image(r.id, decoder);
    else if (data_format_ == "raw") {
      // The original's raw lookup: <root>/<id>, else <root>/<basename of id>.
      auto path = *video_root_ / r.id;
      if (!std::filesystem::exists(path)) path = *video_root_ / std::filesystem::path(r.id).filename();
      s.image = video_->video_file(path, rng);
    } else s.image = video_->video(r.id, decoder, rng);
  }
  if (audio_) {
    if (!find_audio_file(*audio_root_, r.id)) fail("no audio file for '{}' under {}", r.id, audio_root_->string());
    s.audio = (*audio_)(r.id, rng);
  }
  if (conversation_) s.text = conversation_->build(r.fields, rng);
  else
    s.text = valor_pre_caption(r.fields.contains("desc") ? r.fields["desc"].get<std::string>()
                                                         : r.fields["caption"].get<std::string>());
  return s;
}

}  // namespace cb
