// avsd_dialogue of the original (dialogue_builder.py, avsd_dialogue_datasets.py): annotation files
// {"dialogs": [{image_id, caption, dialog: [{question, answer}, ...]}]}; video <videos>/<image_id>.mp4,
// audio <audios>/<image_id>.wav. Eval: one sample per dialog, the last turn asked after the earlier
// ones: text_input = "###Human: q1###Assistant: a1...###Human: qN###Assistant:", answers = {aN}.
// Train: one sample per turn with the turns before it as history (the original's train set feeds a
// GPT dialogue model with token ids; this yields the same history strings as its eval set).
#include "datasets/builders/record_dataset.h"

namespace cb {
namespace {

using nlohmann::json;
std::vector<Item> parse_dialog(const json& r, const SplitContext& s) {
  const std::string id = id_field(r, "image_id");
  const std::string caption = s.text(string_field(r, "caption"));
  const json& turns = field(r, "dialog");
  if (!turns.is_array() || turns.empty()) throw BadRecord{"'dialog' is not a non-empty list of turns"};
  std::vector<std::pair<std::string, std::string>> qa;
  for (const json& t : turns) qa.emplace_back(string_field(t, "question"), string_field(t, "answer"));

  const auto sample = [&](size_t asked) {
    Item it;
    it.video = s.vis_root / (id + ".mp4");
    it.audio = s.aud_root / (id + ".wav");
    it.id = id;
    it.caption = caption;
    for (size_t k = 0; k < asked; ++k) it.text_input += "###Human: " + qa[k].first + "###Assistant: " + qa[k].second;
    it.text_input += "###Human: " + qa[asked].first + "###Assistant:";
    it.answers = {qa[asked].second};
    return it;
  };
  std::vector<Item> out;
  if (s.train)
    for (size_t k = 0; k < qa.size(); ++k) out.push_back(sample(k));
  else out.push_back(sample(qa.size() - 1));
  return out;
}

RecordSetSpec avsd() {
  return {.kind = "dialogue",
          .data_type = "videos",
          .audio = true,
          .parse = parse_dialog,
          .layout = {.list_key = "dialogs", .label = "dialog"}};
}

}  // namespace

CB_REGISTER(dataset_builder, "avsd_dialogue", record_builder("avsd_dialogue", avsd()));
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "avsd_dialogue", "default",
                           "datasets/builders/configs/avsd/defaults_dial.yaml");

}  // namespace cb
