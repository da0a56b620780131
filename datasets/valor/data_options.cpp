#include "datasets/valor/data_options.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "datasets/processors/image_processors.h"
#include "framework/did_you_mean.h"
#include "framework/error.h"
#include "framework/json_file.h"

namespace cb {
namespace {

using nlohmann::json;

// The original's fallback normalisation when video_encoder_type is not a CLIP variant.
constexpr std::array<double, 3> kImageNetMean{0.485, 0.456, 0.406};
constexpr std::array<double, 3> kImageNetStd{0.229, 0.224, 0.225};

template <typename T>
T required(const json& j, const std::string& key, const std::string& where) {
  if (!j.contains(key) || j.at(key).is_null()) fail("{}: missing key '{}'", where, key);
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    fail("{}: key '{}' has the wrong type ({})", where, key, j.at(key).dump());
  }
}

template <typename T>
T optional_or(const json& j, const std::string& key, T fallback, const std::string& where) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  return required<T>(j, key, where);
}

// The original ignores keys it does not read, so a typo ran with the default; here it is an error.
void check_keys(const json& j, const std::vector<std::string>& known, const std::string& where) {
  for (const auto& item : j.items())
    if (std::find(known.begin(), known.end(), item.key()) == known.end())
      fail("{}: unknown key '{}'{}", where, item.key(), did_you_mean(item.key(), known));
}

ValorDatasetSpec parse_dataset(const json& j, const std::string& data_format, const std::string& where) {
  if (!j.is_object()) fail("{}: expected an object", where);
  ValorDatasetSpec d;
  if (data_format == "webdataset") {
    // Image-text tar shards (img2dataset's layout): the image and its caption are members of the shard.
    check_keys(j, {"name", "shards", "datatype"}, where);
    d.name = required<std::string>(j, "name", where);
    d.shards = required<std::string>(j, "shards", where);
    d.datatype = optional_or<std::string>(j, "datatype", "image", where);
    if (d.datatype != "image")
      fail("{}: data_format webdataset reads image shards: datatype must be image, got '{}'", where, d.datatype);
    return d;
  }
  check_keys(j, {"name", "txt", "video", "audio", "datatype", "video_transforms"}, where);
  d.name = required<std::string>(j, "name", where);
  d.txt = required<std::string>(j, "txt", where);
  if (j.contains("video")) d.video = required<std::string>(j, "video", where);
  if (j.contains("audio")) d.audio = required<std::string>(j, "audio", where);
  d.datatype = required<std::string>(j, "datatype", where);
  if (d.datatype != "image" && d.datatype != "video" && d.datatype != "audio")
    fail("{}: datatype must be image, video or audio, got '{}'", where, d.datatype);
  const auto transforms = optional_or<std::string>(j, "video_transforms", "none", where);
  if (transforms != "none" && transforms != "crop_flip")
    fail("{}: video_transforms must be 'none' or 'crop_flip', got '{}'", where, transforms);
  d.crop_flip = transforms == "crop_flip";
  if (!d.video && !d.audio) fail("{}: a dataset needs 'video' and/or 'audio'", where);
  return d;
}

LoaderGroupSpec parse_group(const json& j, const std::string& where) {
  if (!j.is_object()) fail("{}: expected an object", where);
  check_keys(j,
             {"datasets", "task", "data_format", "video_sample_num", "audio_sample_num", "steps", "epoch", "batch_size",
              "n_workers", "shuffle_buffer"},
             where);
  LoaderGroupSpec g;
  g.task = required<std::string>(j, "task", where);
  // The original reads data_format with getattr(..., 'kvreader'): absent means the internal KV store.
  g.data_format = optional_or<std::string>(j, "data_format", "kvreader", where);
  const json& ds = j.contains("datasets") ? j.at("datasets") : json();
  if (!ds.is_array() || ds.empty()) fail("{}: 'datasets' must be a non-empty list", where);
  for (size_t i = 0; i < ds.size(); ++i)
    g.datasets.push_back(parse_dataset(ds[i], g.data_format, fmt::format("{}.datasets[{}]", where, i)));
  const bool webdataset = g.data_format == "webdataset";
  bool has_video = webdataset, has_audio = false;
  for (const auto& d : g.datasets) has_video |= d.video.has_value(), has_audio |= d.audio.has_value();
  if (has_video && g.data_format != "frame" && g.data_format != "raw" && !webdataset)
    fail(
        "{}: data_format '{}' is not supported: use 'frame' (files on disk), 'raw' (video files) or 'webdataset' "
        "(image tar shards){}",
        where, g.data_format, j.contains("data_format") ? "" : " (absent means 'kvreader' in the original)");
  // A stream has no length for `epoch` to scale.
  if (webdataset && !j.contains("steps"))
    fail("{}: a data_format webdataset group needs 'steps' (its size is unknown, so 'epoch' cannot weigh it)", where);
  bool has_frames = false;
  for (const auto& d : g.datasets) has_frames |= d.video && d.datatype == "video";
  if (has_frames) g.video_sample_num = required<int64_t>(j, "video_sample_num", where);
  if (has_audio) g.audio_sample_num = required<int64_t>(j, "audio_sample_num", where);
  if (g.video_sample_num < 1 || g.audio_sample_num < 1) fail("{}: sample numbers must be >= 1", where);
  if (j.contains("steps")) g.steps = required<int64_t>(j, "steps", where);
  else g.epoch = required<double>(j, "epoch", where + " (neither 'steps' nor 'epoch')");
  if (g.steps && *g.steps < 0) fail("{}: 'steps' must be >= 0", where);
  g.batch_size = required<int64_t>(j, "batch_size", where);
  g.n_workers = required<int64_t>(j, "n_workers", where);
  if (g.batch_size < 1 || g.n_workers < 0) fail("{}: batch_size must be >= 1 and n_workers >= 0", where);
  if (j.contains("shuffle_buffer")) {
    if (!webdataset) fail("{}: 'shuffle_buffer' applies to data_format webdataset groups only", where);
    g.shuffle_buffer = required<int64_t>(j, "shuffle_buffer", where);
    if (g.shuffle_buffer < 0) fail("{}: 'shuffle_buffer' must be >= 0 (0: no shuffle buffer)", where);
  }
  return g;
}

}  // namespace

std::string LoaderGroupSpec::name() const {
  std::string joined;
  for (const auto& d : datasets) joined += (joined.empty() ? "" : "_") + d.name;
  return task + "--" + joined;
}

DataOptions DataOptions::load(const std::filesystem::path& path) {
  const json j = read_json_file(path, "data options file");
  const std::string where = path.string();
  if (!j.is_object()) fail("{}: expected a JSON object", where);
  // multimodal_encoder_type and audio_type are read by the original's model setup, data_cfg.val by its
  // evaluation: the shipped files carry them, training here does not use them.
  check_keys(j,
             {"video_resolution", "video_encoder_type", "multimodal_encoder_type", "audio_encoder_type",
              "gradient_accumulation_steps", "dataset_mix_type", "audio_melbins", "audio_target_length", "audio_type",
              "zh", "data_cfg"},
             where);
  DataOptions o;
  o.source = path;
  o.video_resolution = optional_or<int64_t>(j, "video_resolution", 224, where);
  o.video_encoder_type = optional_or<std::string>(j, "video_encoder_type", "", where);
  o.audio_encoder_type = optional_or<std::string>(j, "audio_encoder_type", "beat", where);
  if (o.audio_encoder_type != "beat")
    fail("{}: audio_encoder_type '{}' is not supported (only 'beat', what ChatBridge uses)", where,
         o.audio_encoder_type);
  o.gradient_accumulation_steps = optional_or<int64_t>(j, "gradient_accumulation_steps", 1, where);
  o.dataset_mix_type = optional_or<std::string>(j, "dataset_mix_type", "random", where);
  if (o.dataset_mix_type != "random" && o.dataset_mix_type != "accum" && o.dataset_mix_type != "round-robin")
    fail("{}: dataset_mix_type must be random, accum or round-robin, got '{}'", where, o.dataset_mix_type);
  if (o.dataset_mix_type != "random" && o.gradient_accumulation_steps != 1)
    fail("{}: dataset_mix_type '{}' needs gradient_accumulation_steps 1 (as the original asserts)", where,
         o.dataset_mix_type);
  if (o.gradient_accumulation_steps < 1) fail("{}: gradient_accumulation_steps must be >= 1", where);
  o.audio_melbins = optional_or<int64_t>(j, "audio_melbins", 64, where);
  o.audio_target_length = optional_or<int64_t>(j, "audio_target_length", 1024, where);
  // Checked here, not when each sample fails to load, where they read as bad data.
  if (o.video_resolution < 1) fail("{}: video_resolution must be >= 1, got {}", where, o.video_resolution);
  if (o.audio_melbins <= 3) fail("{}: audio_melbins must be > 3 (kaldi fbank), got {}", where, o.audio_melbins);
  if (o.audio_target_length < 1) fail("{}: audio_target_length must be >= 1, got {}", where, o.audio_target_length);
  o.zh = optional_or<bool>(j, "zh", false, where);
  const json* train = nullptr;
  if (j.contains("data_cfg") && j["data_cfg"].is_object()) {
    check_keys(j["data_cfg"], {"train", "val"}, where + ": data_cfg");
    if (j["data_cfg"].contains("train")) train = &j["data_cfg"]["train"];
  }
  if (!train || !train->is_array() || train->empty()) fail("{}: data_cfg.train must be a non-empty list", where);
  for (size_t i = 0; i < train->size(); ++i)
    o.train.push_back(parse_group((*train)[i], fmt::format("{}: data_cfg.train[{}]", where, i)));
  return o;
}

VideoMapperOptions DataOptions::video_options(const LoaderGroupSpec& group, const ValorDatasetSpec& ds) const {
  VideoMapperOptions v;
  v.resolution = video_resolution;
  v.sample_num = ds.datatype == "video" ? group.video_sample_num : 1;
  const bool clip = video_encoder_type.rfind("clip", 0) == 0 || video_encoder_type.rfind("evaclip", 0) == 0;
  v.mean = clip ? kClipMean : kImageNetMean;
  v.std = clip ? kClipStd : kImageNetStd;
  v.training = true;
  v.crop_flip = ds.crop_flip;
  return v;
}

AudioMapperOptions DataOptions::audio_options(const LoaderGroupSpec& group) const {
  AudioMapperOptions a;
  a.melbins = audio_melbins;
  a.target_length = audio_target_length;
  a.sample_num = group.audio_sample_num;
  a.training = true;
  return a;
}

}  // namespace cb
