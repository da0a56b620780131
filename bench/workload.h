// A benchmark workload file (tests/bench/small.json, or your own): the stage-1 model config, the
// stage-2 overrides, the training texts, where the media come from, and what to time
// (docs/benchmarks.md defines every quantity).
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "models/chatbridge_config.h"

namespace cb::bench {

struct TrainWork {
  int64_t batch_size = 0, max_txt_len = 0, warmup_steps = 0, steps = 0;
};

struct DecodeWork {
  int64_t batch_size = 0, prompt_len = 0, new_tokens = 0, warmup_runs = 0, runs = 0;
};

struct DataWork {
  int64_t image_size = 224;
  std::vector<std::string> shipped_jpegs, converted_pngs;  // skimage file names, in pass order
  std::vector<std::string> wavs;                           // ALSA file names, in pass order
  int64_t audio_melbins = 64, audio_target_length = 1024;
  std::string video_source_png, video_clip_id;
  int64_t video_frames = 0, video_w = 0, video_h = 0, video_resolution = 224;
  int64_t valor_image_resolution = 224;
  int64_t warmup_passes = 1;
  int64_t image_passes = 0, image_repeat = 0, audio_passes = 0, audio_repeat = 0;
  int64_t video_passes = 0, video_repeat = 0, valor_image_passes = 0, valor_image_repeat = 0;
};

struct Workload {
  std::filesystem::path file;  // where it was read from
  std::string name;
  nlohmann::json config;         // stage-1 model config (golden fixture layout)
  nlohmann::json config_stage2;  // keys that differ for stage 2
  std::string tokenizer;         // relative to some directory above the workload file (tokenizer_path)
  std::vector<std::string> stage1_captions, stage2_conversations;
  std::filesystem::path skimage_dir, alsa_dir;
  std::string skimage_package, alsa_package;
  int threads = 1;
  uint64_t seed = 0;
  TrainWork train1, train2;
  DecodeWork decode;
  DataWork data;
  // Where train1/train2/decode run: chatbridge-bench --device, not read from the file.
  torch::Device device = torch::kCPU;

  static Workload load(const std::filesystem::path& file);
  static Workload from_json(const nlohmann::json& j, const std::filesystem::path& file);

  // The model config of `stage` 1 or 2 (stage 2 = config with config_stage2 applied and
  // max_txt_len = workload.train2.max_txt_len).
  ChatBridgeConfig model_config(int stage) const;
  // The tokenizer: `override_path` if given, else `tokenizer` resolved against the nearest ancestor of
  // the workload file that contains it.
  std::filesystem::path tokenizer_path(const std::filesystem::path& override_path = {}) const;
};

}  // namespace cb::bench
