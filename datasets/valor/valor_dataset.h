// One dataset of the valor pipeline: the original's VALORDataset (stage 1: a cleaned caption per
// sample) and TASKDataset (stage 2: a MULTIS conversation per sample) share annotation loading and
// media mapping; only the text differs (custom_datasets/valor_data/data.py, data_task.py).
//
// Annotation file: a JSON list of records (as the original), or JSON Lines (one record per line).
// Malformed records (not an object, no id, no usable text) are dropped at load time and reported by
// malformed(); a list file that is not valid JSON is a cb::Error naming the file.
//
// The records stay in the file: the dataset holds 8 bytes a record (where it lies, JsonRecordFile)
// and parses a record when it is loaded, so CC/LAION-sized mappers of millions of records start in
// seconds and take a small fraction of a JSON tree's memory. Every rank holds the same index, whatever
// the number of ranks (docs/data-pipeline.md).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "datasets/audio/audio_mapper.h"
#include "datasets/media/valor_video.h"
#include "datasets/valor/data_options.h"
#include "datasets/valor/task_conversation.h"
#include "framework/json_file.h"

namespace cb {

struct ValorSample {
  std::string id;
  std::string text;     // stage 1: pre_caption(caption); stage 2: the conversation
  torch::Tensor image;  // [n, 3, S, S] (n = 1 for images) or undefined
  torch::Tensor audio;  // [n, target_length, melbins] or undefined
};

// A record the loader could not use: which file and why.
struct BadSample {
  std::string file;
  std::string reason;
};

class ValorDataset {
 public:
  // Stage 1 when `conversation` is null, else stage 2 with that task's conversation builder.
  ValorDataset(const ValorDatasetSpec& spec, const LoaderGroupSpec& group, const DataOptions& opts,
               std::shared_ptr<const TaskConversation> conversation);

  int64_t size() const { return static_cast<int64_t>(records_.size()); }
  const std::string& name() const { return name_; }
  const std::filesystem::path& annotation_file() const { return txt_; }
  const std::vector<BadSample>& malformed() const { return malformed_; }
  bool has_video() const { return video_.has_value(); }
  bool has_audio() const { return audio_.has_value(); }
  int64_t frames() const { return video_ ? video_->options().sample_num : 0; }

  // Loads record i; throws (cb::Error or a decoder's exception) when its media cannot be used. A missing
  // audio file is an error here, where the original silently substituted silence.
  ValorSample load(int64_t i, std::mt19937_64& rng, ImageDecoder& decoder) const;
  // The media path a record refers to, for bad-sample reports.
  std::string describe(int64_t i) const;

 private:
  // Empty if the record's text is usable, else why not.
  std::string check(std::string_view text) const;
  // The record's id: video_id, or image_id in stage 2 (numbers as the original's str()).
  std::string id_of(const nlohmann::json& r) const;

  std::string name_;
  std::string datatype_;
  std::string data_format_;
  std::filesystem::path txt_;
  std::unique_ptr<JsonRecordFile> file_;
  std::vector<JsonSpan> records_;
  std::vector<BadSample> malformed_;
  std::optional<VideoMapper> video_;
  std::optional<AudioMapper> audio_;
  std::optional<std::filesystem::path> video_root_, audio_root_;
  std::shared_ptr<const TaskConversation> conversation_;
};

}  // namespace cb
