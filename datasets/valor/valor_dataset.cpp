#include "datasets/valor/valor_dataset.h"

#include "datasets/processors/text_processors.h"
#include "framework/error.h"
#include "framework/json_file.h"

namespace cb {
namespace {

using nlohmann::json;

// The id as the original's str(id_): numbers are allowed (image_id in COCO-derived MULTIS files).
std::optional<std::string> id_field(const json& r, const char* key) {
  if (!r.contains(key)) return std::nullopt;
  const json& v = r[key];
  if (v.is_string() && !v.get<std::string>().empty()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  return std::nullopt;
}

// What id_field accepts, judged on a member's raw JSON text: a non-empty string or an integer.
bool usable_id(std::optional<std::string_view> v) {
  if (!v || v->empty()) return false;
  if ((*v)[0] == '"') return v->size() > 2;
  return v->find_first_of(".eE") == std::string_view::npos && ((*v)[0] == '-' || ((*v)[0] >= '0' && (*v)[0] <= '9'));
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
  // A misspelt media root would only show as every sample failing, after 64 tries, in the first batch.
  for (const auto& [root, key] : {std::pair{&spec.video, "video"}, std::pair{&spec.audio, "audio"}}) {
    std::error_code ec;
    if (*root && !std::filesystem::is_directory(**root, ec))
      fail("dataset '{}': the {} root {} {}", name_, key, (*root)->string(),
           std::filesystem::exists(**root, ec) ? "is not a directory" : "does not exist");
  }
  if (spec.video) video_.emplace(*spec.video, opts.video_options(group, spec));
  if (spec.audio) audio_.emplace(*spec.audio, opts.audio_options(group));

  std::vector<std::string> bad_lines;
  file_ = std::make_unique<JsonRecordFile>(
      txt_, fmt::format("annotation file of dataset '{}'", name_),
      [&](const ScannedRecord& r) {
        if (std::string why = check(r.text); !why.empty())
          malformed_.push_back({txt_.string(), r.where() + ": " + why});
        else records_.push_back(r.span);
      },
      bad_lines);
  records_.shrink_to_fit();
  // Lines that are not JSON are listed first, as before the records were scanned in one pass.
  std::vector<BadSample> lines;
  for (auto& why : bad_lines) lines.push_back({txt_.string(), std::move(why)});
  malformed_.insert(malformed_.begin(), lines.begin(), lines.end());
}

std::string ValorDataset::check(std::string_view text) const {
  if (text.front() != '{') return "not a JSON object";
  if (conversation_) {
    // Stage 2 (MULTIS files, up to a few hundred thousand records): the task's checks on the tree.
    const json r = json::parse(text);
    if (!id_field(r, "video_id") && !id_field(r, "image_id")) return "no video_id/image_id";
    return conversation_->check(r);
  }
  // Stage 1 (CC/LAION/WebVid mappers, millions of records) reads two members of the text, no tree.
  // The original crashes on list captions (self.all_text is undefined).
  if (!usable_id(json_member(text, "video_id"))) return "no video_id";
  const auto desc = json_member(text, "desc");
  const auto caption = desc ? desc : json_member(text, "caption");
  if (!caption || caption->front() != '"') return "no caption/desc string";
  return "";
}

std::string ValorDataset::id_of(const json& r) const {
  auto found = id_field(r, "video_id");
  if (!found && conversation_) found = id_field(r, "image_id");
  if (!found) fail("{}: a checked record has no id (was the file changed during the run?)", txt_.string());
  return *found;
}

std::string ValorDataset::describe(int64_t i) const {
  const std::string id = id_of(file_->read(records_.at(i)));
  if (video_root_) return (*video_root_ / id).string();
  return (*audio_root_ / id).string();
}

ValorSample ValorDataset::load(int64_t i, std::mt19937_64& rng, ImageDecoder& decoder) const {
  const json fields = file_->read(records_.at(i));
  ValorSample s;
  s.id = id_of(fields);
  if (video_) {
    if (datatype_ == "image") s.image = video_->image(s.id, decoder, rng);
    else if (data_format_ == "raw") {
      // The original's raw lookup: <root>/<id>, else <root>/<basename of id>.
      auto path = *video_root_ / s.id;
      if (!std::filesystem::exists(path)) path = *video_root_ / std::filesystem::path(s.id).filename();
      s.image = video_->video_file(path, rng);
    } else s.image = video_->video(s.id, decoder, rng);
  }
  if (audio_) {
    if (!find_audio_file(*audio_root_, s.id)) fail("no audio file for '{}' under {}", s.id, audio_root_->string());
    s.audio = (*audio_)(s.id, rng);
  }
  if (conversation_) s.text = conversation_->build(fields, rng);
  else
    s.text = valor_pre_caption(fields.contains("desc") ? fields["desc"].get<std::string>()
                                                       : fields["caption"].get<std::string>());
  return s;
}

}  // namespace cb
