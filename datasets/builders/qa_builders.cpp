// Question-answering builders of the original: image VQA (vqa_builder.py: coco_vqa, ok_vqa, aok_vqa,
// gqa, vg_vqa), video QA (video_qa_builder.py: msrvtt_qa, msvd_qa) and audio-visual QA
// (avqa_builder.py: music_qa, mosei). text_input is the processed question, id the question_id.
// Answers: the original's train sets weigh unique answers by frequency (VQAv2, OK-VQA, A-OKVQA) or
// take the single answer with a fixed weight (GQA 1, Visual Genome 0.2); its eval sets carry none
// (its evaluator read COCO-format files); here eval samples carry the record's answers when present,
// every human answer with its repeats, as VQAEval scores them (a unique list would score an answer all
// annotators gave as 0).
#include "datasets/builders/record_dataset.h"

namespace cb {
namespace {

using nlohmann::json;

Item image_question(const json& r, const SplitContext& s) {
  Item it;
  it.image = s.vis_root / string_field(r, "image");
  it.text_input = s.text(string_field(r, "question"));
  if (!s.train || r.contains("question_id")) it.id = id_field(r, "question_id");
  return it;
}

// coco_vqa, ok_vqa: {image, question, answer [list], question_id}.
std::vector<Item> parse_vqa(const json& r, const SplitContext& s) {
  Item it = image_question(r, s);
  if (s.train) weigh_answers(strings_field(r, "answer"), it);
  else if (r.contains("answer")) it.answers = strings_field(r, "answer");
  return {it};
}

// aok_vqa: {image, question, question_id, direct_answers [list], choices, correct_choice_idx}.
std::vector<Item> parse_aokvqa(const json& r, const SplitContext& s) {
  Item it = image_question(r, s);
  if (s.train) weigh_answers(strings_field(r, "direct_answers"), it);
  else if (r.contains("direct_answers")) it.answers = strings_field(r, "direct_answers");
  return {it};
}

// gqa: {image, question, answer, question_id}; one answer of weight 1.
std::vector<Item> parse_gqa(const json& r, const SplitContext& s) {
  Item it = image_question(r, s);
  if (s.train || r.contains("answer")) {
    it.answers = {string_field(r, "answer")};
    it.weights = {1.0f};
  }
  return {it};
}

// vg_vqa (train only): {image, question, answer}; one answer of weight 0.2.
std::vector<Item> parse_vgvqa(const json& r, const SplitContext& s) {
  Item it = image_question(r, s);
  it.answers = {string_field(r, "answer")};
  it.weights = {0.2f};
  return {it};
}

// msrvtt_qa, msvd_qa: {video, question, answer, question_id}, train and eval alike. The original's
// ans2label file (class labels of its classification heads) is not needed for generated answers.
std::vector<Item> parse_video_qa(const json& r, const SplitContext& s) {
  Item it;
  it.video = s.vis_root / string_field(r, "video");
  it.text_input = s.text(string_field(r, "question"));
  it.answers = strings_field(r, "answer");
  it.id = id_field(r, "question_id");
  return {it};
}

// music_qa (MUSIC-AVQA): {video, audio?, question, answer, question_id?}; the audio file defaults to
// the video name with "mp4" replaced by "wav".
std::vector<Item> parse_music_qa(const json& r, const SplitContext& s) {
  Item it;
  const std::string vname = string_field(r, "video");
  it.video = s.vis_root / vname;
  it.audio = s.aud_root / (r.contains("audio") ? string_field(r, "audio") : replace_every(vname, "mp4", "wav"));
  it.text_input = s.text(string_field(r, "question"));
  it.answers = strings_field(r, "answer");
  if (r.contains("question_id")) it.id = id_field(r, "question_id");
  return {it};
}

// mosei (CMU-MOSEI sentiment): {video_id, subtitle, sent}; <videos>/<video_id>.mp4 and
// <audios>/<video_id>.wav, the subtitle as the question (unprocessed, as the original), the answer
// "positive", "negative" or "neutral" by the sign of `sent`.
std::vector<Item> parse_mosei(const json& r, const SplitContext& s) {
  Item it;
  it.id = id_field(r, "video_id");
  it.video = s.vis_root / (it.id + ".mp4");
  it.audio = s.aud_root / (it.id + ".wav");
  it.text_input = string_field(r, "subtitle");
  const json& sent = field(r, "sent");
  if (!sent.is_number()) throw BadRecord{"'sent' is not a number"};
  const double v = sent.get<double>();
  it.answers = {v > 0 ? "positive" : v < 0 ? "negative" : "neutral"};
  return {it};
}

RecordSetSpec image_vqa(decltype(RecordSetSpec::parse) parse, bool train_only = false) {
  RecordSetSpec spec{.kind = "qa", .data_type = "images", .parse = std::move(parse)};
  spec.eval_records_in_first_file = true;
  spec.train_only = train_only;
  return spec;
}
RecordSetSpec video_qa() { return {.kind = "qa", .data_type = "videos", .parse = parse_video_qa}; }
RecordSetSpec mosei() { return {.kind = "qa", .data_type = "videos", .audio = true, .parse = parse_mosei}; }
RecordSetSpec music_qa() { return {.kind = "qa", .data_type = "videos", .audio = true, .parse = parse_music_qa}; }

}  // namespace

CB_REGISTER(dataset_builder, "coco_vqa", record_builder("coco_vqa", image_vqa(parse_vqa)));
CB_REGISTER(dataset_builder, "ok_vqa", record_builder("ok_vqa", image_vqa(parse_vqa)));
CB_REGISTER(dataset_builder, "aok_vqa", record_builder("aok_vqa", image_vqa(parse_aokvqa)));
CB_REGISTER(dataset_builder, "gqa", record_builder("gqa", image_vqa(parse_gqa)));
CB_REGISTER(dataset_builder, "vg_vqa", record_builder("vg_vqa", image_vqa(parse_vgvqa, true)));
CB_REGISTER(dataset_builder, "msrvtt_qa", record_builder("msrvtt_qa", video_qa()));
CB_REGISTER(dataset_builder, "msvd_qa", record_builder("msvd_qa", video_qa()));
CB_REGISTER(dataset_builder, "music_qa", record_builder("music_qa", music_qa()));
CB_REGISTER(dataset_builder, "mosei", record_builder("mosei", mosei()));

CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "coco_vqa", "default", "datasets/builders/configs/coco/defaults_vqa.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "coco_vqa", "eval", "datasets/builders/configs/coco/eval_vqa.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "ok_vqa", "default", "datasets/builders/configs/okvqa/defaults.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "aok_vqa", "default", "datasets/builders/configs/aokvqa/defaults.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "gqa", "default", "datasets/builders/configs/gqa/defaults.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "gqa", "balanced_val", "datasets/builders/configs/gqa/balanced_val.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "gqa", "balanced_testdev",
                           "datasets/builders/configs/gqa/balanced_testdev.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "vg_vqa", "default", "datasets/builders/configs/vg/defaults_vqa.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "msrvtt_qa", "default",
                           "datasets/builders/configs/msrvtt/defaults_qa.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "msvd_qa", "default", "datasets/builders/configs/msvd/defaults_qa.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "music_qa", "default",
                           "datasets/builders/configs/musicqa/defaults_qa.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "mosei", "default", "datasets/builders/configs/mosei/defaults_qa.yaml");

}  // namespace cb
