#include "bench/workload.h"

#include "framework/error.h"
#include "framework/json_file.h"
#include "framework/json_read.h"

namespace cb::bench {
namespace {

const nlohmann::json& section(const nlohmann::json& j, const char* key, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_object()) fail("{}: '{}' must be an object", source, key);
  return *it;
}

template <typename T>
T required(const nlohmann::json& j, const char* key, const std::string& source) {
  if (!j.contains(key) || j.at(key).is_null()) fail("{}: missing key '{}'", source, key);
  T v{};
  read_json_key(j, key, v, source);
  return v;
}

TrainWork train_work(const nlohmann::json& j, const std::string& source) {
  TrainWork t;
  t.batch_size = required<int64_t>(j, "batch_size", source);
  t.max_txt_len = required<int64_t>(j, "max_txt_len", source);
  t.warmup_steps = required<int64_t>(j, "warmup_steps", source);
  t.steps = required<int64_t>(j, "steps", source);
  if (t.batch_size < 1 || t.max_txt_len < 1 || t.steps < 1 || t.warmup_steps < 0)
    fail("{}: batch_size, max_txt_len and steps must be >= 1, warmup_steps >= 0", source);
  return t;
}

}  // namespace

Workload Workload::load(const std::filesystem::path& file) {
  return from_json(read_json_file(file, "workload file"), file);
}

Workload Workload::from_json(const nlohmann::json& j, const std::filesystem::path& file) {
  const std::string src = file.string();
  Workload w;
  w.file = file;
  w.name = j.value("name", file.stem().string());
  w.config = section(j, "config", src);
  w.config_stage2 = section(j, "config_stage2", src);
  w.tokenizer = required<std::string>(j, "tokenizer", src);
  const auto& texts = section(j, "texts", src);
  w.stage1_captions = required<std::vector<std::string>>(texts, "stage1_captions", src + ": texts");
  w.stage2_conversations = required<std::vector<std::string>>(texts, "stage2_conversations", src + ": texts");
  if (w.stage1_captions.empty() || w.stage2_conversations.empty()) fail("{}: texts must not be empty", src);
  const auto& media = section(j, "media", src);
  w.skimage_dir = required<std::string>(media, "skimage_dir", src + ": media");
  w.alsa_dir = required<std::string>(media, "alsa_dir", src + ": media");
  w.skimage_package = required<std::string>(media, "skimage_package", src + ": media");
  w.alsa_package = required<std::string>(media, "alsa_package", src + ": media");

  const auto& wl = section(j, "workload", src);
  const auto wsrc = src + ": workload";
  w.threads = static_cast<int>(required<int64_t>(wl, "threads", wsrc));
  w.seed = static_cast<uint64_t>(required<int64_t>(wl, "seed", wsrc));
  w.train1 = train_work(section(wl, "train1", wsrc), wsrc + ".train1");
  w.train2 = train_work(section(wl, "train2", wsrc), wsrc + ".train2");

  const auto& d = section(wl, "decode", wsrc);
  const auto dsrc = wsrc + ".decode";
  w.decode.batch_size = required<int64_t>(d, "batch_size", dsrc);
  w.decode.prompt_len = required<int64_t>(d, "prompt_len", dsrc);
  w.decode.new_tokens = required<int64_t>(d, "new_tokens", dsrc);
  w.decode.warmup_runs = required<int64_t>(d, "warmup_runs", dsrc);
  w.decode.runs = required<int64_t>(d, "runs", dsrc);
  if (w.decode.batch_size < 1 || w.decode.prompt_len < 1 || w.decode.new_tokens < 1 || w.decode.runs < 1)
    fail("{}: batch_size, prompt_len, new_tokens and runs must be >= 1", dsrc);

  const auto& data = section(wl, "data", wsrc);
  const auto asrc = wsrc + ".data";
  auto& dw = w.data;
  dw.image_size = required<int64_t>(data, "image_size", asrc);
  const auto& images = section(data, "images", asrc);
  dw.shipped_jpegs = required<std::vector<std::string>>(images, "shipped_jpegs", asrc + ".images");
  dw.converted_pngs = required<std::vector<std::string>>(images, "converted_pngs", asrc + ".images");
  const auto& audio = section(data, "audio", asrc);
  dw.wavs = required<std::vector<std::string>>(audio, "wavs", asrc + ".audio");
  dw.audio_melbins = required<int64_t>(audio, "audio_melbins", asrc + ".audio");
  dw.audio_target_length = required<int64_t>(audio, "audio_target_length", asrc + ".audio");
  const auto& video = section(data, "video", asrc);
  dw.video_source_png = required<std::string>(video, "source_png", asrc + ".video");
  dw.video_clip_id = required<std::string>(video, "clip_id", asrc + ".video");
  dw.video_frames = required<int64_t>(video, "frames", asrc + ".video");
  dw.video_w = required<int64_t>(video, "frame_w", asrc + ".video");
  dw.video_h = required<int64_t>(video, "frame_h", asrc + ".video");
  dw.video_resolution = required<int64_t>(video, "video_resolution", asrc + ".video");
  dw.valor_image_resolution =
      required<int64_t>(section(data, "valor_image", asrc), "video_resolution", asrc + ".valor_image");
  dw.warmup_passes = required<int64_t>(data, "warmup_passes", asrc);
  dw.image_passes = required<int64_t>(data, "image_passes", asrc);
  dw.image_repeat = required<int64_t>(data, "image_repeat", asrc);
  dw.audio_passes = required<int64_t>(data, "audio_passes", asrc);
  dw.audio_repeat = required<int64_t>(data, "audio_repeat", asrc);
  dw.video_passes = required<int64_t>(data, "video_passes", asrc);
  dw.video_repeat = required<int64_t>(data, "video_repeat", asrc);
  dw.valor_image_passes = required<int64_t>(data, "valor_image_passes", asrc);
  dw.valor_image_repeat = required<int64_t>(data, "valor_image_repeat", asrc);
  return w;
}

ChatBridgeConfig Workload::model_config(int stage) const {
  auto j = config;
  if (stage == 2) {
    for (const auto& [k, v] : config_stage2.items()) j[k] = v;
    j["max_txt_len"] = train2.max_txt_len;
  } else if (stage != 1) {
    fail("{}: benchmark models are stage 1 or 2, not {}", file.string(), stage);
  }
  return ChatBridgeConfig::from_json(j, file.string() + (stage == 2 ? ": config + config_stage2" : ": config"));
}

std::filesystem::path Workload::tokenizer_path(const std::filesystem::path& override_path) const {
  if (!override_path.empty()) {
    if (!std::filesystem::exists(override_path)) fail("--tokenizer {}: no such file", override_path.string());
    return override_path;
  }
  const std::filesystem::path rel(tokenizer);
  if (rel.is_absolute()) return rel;
  for (auto dir = std::filesystem::absolute(file).parent_path(); !dir.empty(); dir = dir.parent_path()) {
    if (std::filesystem::exists(dir / rel)) return dir / rel;
    if (dir == dir.root_path()) break;
  }
  fail("{}: tokenizer '{}' not found relative to any directory above the workload file; pass --tokenizer",
       file.string(), tokenizer);
}

}  // namespace cb::bench
