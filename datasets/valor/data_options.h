// The valor data-options JSON (`run.valor_data_opts_path`, e.g. the original's train_configs/*.json): which datasets
// make up the training mixture, their task tags, mixing weights, global batch sizes and media settings.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "datasets/audio/audio_mapper.h"
#include "datasets/media/valor_video.h"

namespace cb {

// One entry of a loader group's `datasets` list.
struct ValorDatasetSpec {
  std::string name;
  std::filesystem::path txt;                   // annotation ("txt mapper") JSON; empty for webdataset
  std::string shards;                          // data_format webdataset: tar shard brace pattern
  std::optional<std::filesystem::path> video;  // image / frame-directory root
  std::optional<std::filesystem::path> audio;  // audio root
  std::string datatype;                        // image | video | audio
  bool crop_flip = false;                      // video_transforms: 'crop_flip' (else 'none')
};

// One entry of `data_cfg.train`: its datasets are concatenated into one loader.
struct LoaderGroupSpec {
  std::vector<ValorDatasetSpec> datasets;
  std::string task;  // "ti", "ta", "ti-cap", "tva-conv", ...
  // frame | raw | webdataset (tar shards, stage 1 images; kvreader, the original's default, is ByteDance-internal)
  std::string data_format;
  int64_t video_sample_num = 1;
  int64_t audio_sample_num = 1;
  std::optional<int64_t> steps;  // sampling weight
  std::optional<double> epoch;   // alternative weight: int(len(dataset) // batch_size * epoch)
  int64_t batch_size = 0;        // GLOBAL batch size
  int64_t n_workers = 0;
  // data_format webdataset: the readers' shuffle buffer size, in samples (0: none, shard order). Not a
  // key of the original, whose laion / cc_sbu pipelines hard-code wds.shuffle(1000).
  int64_t shuffle_buffer = 1000;
  // `<task>--<names joined by '_'>`, the original's loader name.
  std::string name() const;
};

struct DataOptions {
  std::filesystem::path source;  // the JSON file (for error messages)
  int64_t video_resolution = 224;
  std::string video_encoder_type;
  std::string audio_encoder_type = "beat";
  int64_t gradient_accumulation_steps = 1;
  std::string dataset_mix_type = "random";  // random | accum | round-robin
  int64_t audio_melbins = 64;
  int64_t audio_target_length = 1024;
  bool zh = false;
  std::vector<LoaderGroupSpec> train;

  // Parses and validates; cb::Error names the file and the key.
  static DataOptions load(const std::filesystem::path& path);

  // The media options a dataset of `group` uses (mean/std from video_encoder_type as the original).
  VideoMapperOptions video_options(const LoaderGroupSpec& group, const ValorDatasetSpec& ds) const;
  AudioMapperOptions audio_options(const LoaderGroupSpec& group) const;
};

}  // namespace cb
