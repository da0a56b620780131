// Caption builders of the original (chatbridge/datasets/builders/caption_builder.py; datasets in
// coco_caption_datasets.py, video_caption_datasets.py, audio_caption_datasets.py). Train splits give
// one sample per annotation record with its processed caption; val/test give one sample per
// image/video/clip with every reference caption of it (the original's eval sets carry no captions:
// its evaluator read them from separate ground-truth files, which this harness does not need).
#include "datasets/builders/record_dataset.h"

#include <fmt/format.h>

namespace cb {
namespace {

using nlohmann::json;

// Reference captions of an eval record: "caption" (string or list), optional.
std::vector<std::string> references(const json& r, const char* key = "caption") {
  return r.is_object() && r.contains(key) ? strings_field(r, key) : std::vector<std::string>{};
}

// COCOCapEvalDataset's image id: the file name stripped of the characters '.', 'j', 'p', 'g' at both
// ends (Python's str.strip(".jpg"), a quirk), then the part after the last '_':
// "val2014/COCO_val2014_000000391895.jpg" -> "000000391895".
std::string coco_eval_image_id(const std::string& image) {
  std::string name = image.substr(image.rfind('/') + 1);
  const auto strip = [](char c) { return c == '.' || c == 'j' || c == 'p' || c == 'g'; };
  size_t b = 0, e = name.size();
  while (b < e && strip(name[b])) ++b;
  while (e > b && strip(name[e - 1])) --e;
  name = name.substr(b, e - b);
  return name.substr(name.rfind('_') + 1);
}

// Image-caption records: {image, caption, image_id} (train) / {image, caption [refs]} (eval, the id
// derived from the image path by `eval_id`).
std::vector<Item> parse_image_caption(const json& r, const SplitContext& s,
                                      std::string (*eval_id)(const std::string& image)) {
  Item it;
  const std::string image = string_field(r, "image");
  it.image = s.vis_root / image;
  if (s.train) {
    it.text_input = s.text(string_field(r, "caption"));
    it.id = id_field(r, "image_id");
  } else {
    it.id = eval_id(image);
    it.answers = references(r);
  }
  return {it};
}

// coco_caption.
std::vector<Item> parse_coco(const json& r, const SplitContext& s) {
  return parse_image_caption(r, s, coco_eval_image_id);
}

// nocaps (eval only): {image, img_id, caption?}.
std::vector<Item> parse_nocaps(const json& r, const SplitContext& s) {
  Item it;
  it.image = s.vis_root / string_field(r, "image");
  it.id = id_field(r, "img_id");
  it.answers = references(r);
  return {it};
}

// flickr30k (LAVIS's annotation files, the Karpathy splits), records as coco's (the eval id is the
// file name without its extension,
// "flickr30k-images/1007129816.jpg" -> "1007129816"). The original ships this default yaml but
// registers no builder (LAVIS registers flickr30k for retrieval); here it is a caption set, for the
// paper's zero-shot Flickr30K captioning.
std::vector<Item> parse_flickr(const json& r, const SplitContext& s) {
  return parse_image_caption(r, s,
                             [](const std::string& image) { return std::filesystem::path(image).stem().string(); });
}

// msrvtt/msvd/vatex_caption: {video, caption, image_id} (train) / {video or video_id, image_id?,
// caption?} (eval; the file is <video_id>.mp4 when no "video" is given).
std::string eval_video_name(const json& r) {
  return r.is_object() && r.contains("video") ? string_field(r, "video") : string_field(r, "video_id") + ".mp4";
}
std::string eval_video_id(const json& r) {
  return r.contains("image_id") ? id_field(r, "image_id") : id_field(r, "video_id");
}

std::vector<Item> parse_video_caption(const json& r, const SplitContext& s) {
  Item it;
  if (s.train) {
    it.video = s.vis_root / string_field(r, "video");
    it.text_input = s.text(string_field(r, "caption"));
    it.id = id_field(r, "image_id");
  } else {
    it.video = s.vis_root / eval_video_name(r);
    it.id = eval_video_id(r);
    it.answers = references(r);
  }
  return {it};
}

// audio_caption (Clotho-style): {audio, caption}; the id is the audio file name. The original uses
// its eval dataset (no caption) for train too; here train samples carry their processed caption.
std::vector<Item> parse_audio_caption(const json& r, const SplitContext& s) {
  Item it;
  it.id = string_field(r, "audio");
  it.audio = s.aud_root / it.id;
  if (s.train) it.text_input = s.text(string_field(r, "caption"));
  else it.answers = references(r);
  return {it};
}

// av_caption (VALOR-32K): {video or video_id, audio?, image_id?, desc or caption}; the audio file
// defaults to the video name with every "mp4" replaced by "wav" (Python str.replace).
std::vector<Item> parse_av_caption(const json& r, const SplitContext& s) {
  Item it;
  const std::string vname = eval_video_name(r);
  it.video = s.vis_root / vname;
  it.audio = s.aud_root / (r.contains("audio") ? string_field(r, "audio") : replace_every(vname, "mp4", "wav"));
  it.id = eval_video_id(r);
  const char* key = r.contains("desc") ? "desc" : "caption";
  if (s.train) it.text_input = s.text(string_field(r, key));
  else it.answers = references(r, key);
  return {it};
}

// vist_caption (VIST stories): {video_id, caption}; the "video" is the five images
// <videos>/<video_id>/frame_0000.jpg .. frame_0004.jpg, each through the image vis_processor.
std::vector<Item> parse_vist(const json& r, const SplitContext& s) {
  Item it;
  it.id = string_field(r, "video_id");
  for (int i = 0; i < 5; ++i) it.frames.push_back(s.vis_root / it.id / fmt::format("frame_000{}.jpg", i));
  if (s.train) it.text_input = s.text(string_field(r, "caption"));
  else it.answers = references(r);
  return {it};
}

// The quick check of caption train records (QuickCheck): `media` and "caption" strings and, with
// `image_id`, an id, as the parse functions' accessors accept them. The stage-1 sets (CC, LAION, WebVid,
// WavCaps mapped to these builders) hold millions of records.
QuickCheck quick_caption(std::string_view media, bool image_id) {
  return [media, image_id](std::string_view r, const SplitContext& s) -> std::optional<uint32_t> {
    std::optional<std::string_view> v[3];
    if (!s.train || !json_members(r, {media, "caption", "image_id"}, v)) return std::nullopt;
    if (raw_is_string(v[0]) && raw_is_string(v[1]) && (!image_id || raw_is_id(v[2]))) return 1;
    return std::nullopt;
  };
}

RecordSetSpec caption_spec(std::string data_type, decltype(RecordSetSpec::parse) parse, QuickCheck quick = {}) {
  RecordSetSpec spec{.kind = "caption", .data_type = std::move(data_type), .parse = std::move(parse)};
  spec.quick_check = std::move(quick);
  spec.group_eval_references = true;
  return spec;
}

RecordSetSpec nocaps_spec() {
  auto spec = caption_spec("images", parse_nocaps);
  spec.eval_only = true;
  return spec;
}
RecordSetSpec av_spec() {
  auto spec = caption_spec("videos", parse_av_caption);
  spec.audio = true;
  return spec;
}

}  // namespace

CB_REGISTER(dataset_builder, "coco_caption",
            record_builder("coco_caption", caption_spec("images", parse_coco, quick_caption("image", true))));
CB_REGISTER(dataset_builder, "nocaps", record_builder("nocaps", nocaps_spec()));
CB_REGISTER(dataset_builder, "flickr30k",
            record_builder("flickr30k", caption_spec("images", parse_flickr, quick_caption("image", true))));
CB_REGISTER(dataset_builder, "msrvtt_caption",
            record_builder("msrvtt_caption",
                           caption_spec("videos", parse_video_caption, quick_caption("video", true))));
CB_REGISTER(dataset_builder, "msvd_caption",
            record_builder("msvd_caption", caption_spec("videos", parse_video_caption, quick_caption("video", true))));
CB_REGISTER(dataset_builder, "vatex_caption",
            record_builder("vatex_caption", caption_spec("videos", parse_video_caption, quick_caption("video", true))));
CB_REGISTER(dataset_builder, "vist_caption", record_builder("vist_caption", caption_spec("videos", parse_vist)));
CB_REGISTER(dataset_builder, "audio_caption",
            record_builder("audio_caption",
                           caption_spec("audios", parse_audio_caption, quick_caption("audio", false))));
CB_REGISTER(dataset_builder, "av_caption", record_builder("av_caption", av_spec()));

CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "coco_caption", "default",
                           "datasets/builders/configs/coco/defaults_cap.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "nocaps", "default", "datasets/builders/configs/nocaps/defaults.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "flickr30k", "default",
                           "datasets/builders/configs/flickr30k/defaults.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "msrvtt_caption", "default",
                           "datasets/builders/configs/msrvtt/defaults_cap.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "msvd_caption", "default",
                           "datasets/builders/configs/msvd/defaults_cap.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "vatex_caption", "default",
                           "datasets/builders/configs/vatex/defaults_cap.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "vist_caption", "default",
                           "datasets/builders/configs/vist/defaults_cap.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "audio_caption", "default",
                           "datasets/builders/configs/clotho/defaults_cap.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "av_caption", "default",
                           "datasets/builders/configs/valor/defaults_cap.yaml");

}  // namespace cb
