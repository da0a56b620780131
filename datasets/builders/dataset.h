// The LAVIS-style datasets of the original (chatbridge/datasets/builders): a builder,
// registered under the original name (Kind::dataset_builder), turns its `datasets.<name>` config
// section into one dataset per split present in `build_info.annotations` (train/val/test):
//
//   cb::Config cfg = cb::resolve_config("eval_configs/tiny_caption_eval.yaml", {});
//   auto built = cb::build_datasets(cfg);                 // {"coco_caption": {"val": dataset}, ...}
//   const cb::Dataset& val = *built.at("coco_caption").at("val");
//   std::vector<cb::BadSample> bad;
//   cb::SampleBatch b = cb::collate(cb::load_samples(val, {0, 1, 2}, bad), val.info());
//   // b.batch.image [3,3,S,S], b.batch.ids = image ids, b.answers = all reference captions per image
//
// Section layout (the original's): {data_type, build_info: {annotations: {train|val|test: {url?,
// storage: path or list}}, images|videos|audios: {storage}}, vis_processor: {train|eval: {name, ...}},
// text_processor: {train|eval: {...}}, aud_processor: {train|eval: {...}}}; webdataset builders
// (cc_sbu, laion) and cc_sbu_align take build_info.storage instead. Relative storage paths resolve
// under the cache root (the original's env.cache_root): $CHATBRIDGE_CACHE_ROOT, else the current
// directory. Each builder ships its default yaml (datasets/builders/configs/<name>/...), merged under
// the user's section by resolve_config (framework/config.h).
//
// Samples by kind (what the original's __getitem__ returns, in one struct):
//   caption  train: text_input = processed caption, id = image/video id, one sample per record.
//            eval:  one sample per image/video; answers = ALL its reference captions (raw), for CIDEr.
//   qa       text_input = processed question; train: answers/weights = the unique answers weighted by
//            frequency as the original; eval: answers = every human answer, repeats kept (VQAEval's
//            input), no weights; id = question_id.
//   dialogue text_input = "###Human: q###Assistant: a..." history ending in "###Human: q###Assistant:",
//            answers = {the reference answer}, caption in `caption`; id = image_id (the video).
// Media: image [3,S,S]; video frames [n,3,S,S]; audio fbank slices [n,T,F]; undefined when absent.
//
// Bad data: a malformed annotation record is dropped when the dataset is built and listed by
// malformed() (file + record/line + reason); get(i) throws cb::Error naming the media file when it
// cannot be decoded; load_samples() skips such samples and reports them (BadSample), as the valor
// pipeline does. Datasets are immutable after construction: get() may be called from several threads.
#pragma once
#include <torch/torch.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "datasets/valor/valor_dataset.h"  // cb::BadSample {file, reason}
#include "framework/batch.h"
#include "framework/config.h"
#include "framework/registry.h"

namespace cb {

struct Sample {
  torch::Tensor image;               // [3,S,S] image, or [n,3,S,S] video frames; undefined when the set has neither
  torch::Tensor audio;               // [n,T,F] normalised fbank slices; undefined when the set has no audio
  std::string text_input;            // caption (train) or question / dialogue history (eval)
  std::vector<std::string> answers;  // reference captions (caption eval) or answers (qa, dialogue)
  std::vector<float> weights;        // answer weights (qa; empty otherwise)
  std::string caption;               // avsd_dialogue: the video's caption; empty otherwise
  std::string id;                    // image_id / video id / question_id, as a string
  int64_t instance_id = 0;           // index of the annotation record (the original's instance_id)
};

struct DatasetInfo {
  std::string builder = {};                          // registered name, e.g. "coco_caption"
  std::string split = {};                            // "train" | "val" | "test"
  std::string kind = {};                             // "caption" | "qa" | "dialogue"
  bool image = false, video = false, audio = false;  // modalities of every sample
  bool streaming = false;                            // webdataset shards: stream() only, size() == -1
  // The model's task tag for these modalities: "ti", "tv", "ta" or "tva".
  std::string task() const;
  std::string name() const { return builder + "/" + split; }
};

// Samples one after another (webdataset shards; or one shuffled pass over a map-style dataset).
class SampleStream {
 public:
  virtual ~SampleStream() = default;
  // The next usable sample; nullopt at the end (never for resampled shards). Unusable samples are
  // skipped and appended to `bad`.
  virtual std::optional<Sample> next(std::vector<BadSample>& bad) = 0;
};

class Dataset {
 public:
  explicit Dataset(DatasetInfo info) : info_(std::move(info)) {}
  virtual ~Dataset() = default;
  const DatasetInfo& info() const { return info_; }
  const std::string& kind() const { return info_.kind; }
  std::string name() const { return info_.name(); }

  virtual int64_t size() const = 0;  // -1 for streaming datasets
  // Sample i (0 <= i < size()); throws cb::Error naming the media file when it cannot be used.
  virtual Sample get(int64_t i) const = 0;
  // The media file(s) sample i reads, for reports.
  virtual std::string describe(int64_t i) const = 0;
  // Map-style: one pass in an order shuffled by `seed`. Streaming: the dataset's own (infinite) stream.
  // The stream refers to this dataset, which must outlive it.
  virtual std::unique_ptr<SampleStream> stream(uint64_t seed) const;
  // Annotation records dropped while building (malformed JSON line, missing field, ...).
  const std::vector<BadSample>& malformed() const { return malformed_; }

  // A sample (or shard) that could not be used: appended to `bad`, counted, logged (the first 20,
  // then every 100th). Used by load_samples and the streams.
  void report_bad(BadSample b, std::vector<BadSample>& bad) const;
  int64_t skipped() const { return skipped_.load(); }  // samples reported so far, all callers

 protected:
  std::vector<BadSample> malformed_;

 private:
  DatasetInfo info_;
  mutable std::atomic<int64_t> skipped_{0};
};

// One builder's datasets by split ("train", "val", "test").
using BuiltDatasets = std::map<std::string, std::shared_ptr<const Dataset>>;

template <>
struct FactoryOf<Kind::dataset_builder> {
  // (datasets.<name> section, cache root for relative storage paths) -> datasets by split.
  using type = std::function<BuiltDatasets(const Config& section, const std::filesystem::path& cache_root)>;
};

// $CHATBRIDGE_CACHE_ROOT if set, else the current directory.
std::filesystem::path default_cache_root();
// Every builder named under cfg's `datasets:` section -> {builder name: {split: dataset}}.
std::map<std::string, BuiltDatasets> build_datasets(const Config& cfg,
                                                    const std::filesystem::path& cache_root = default_cache_root());
// One builder: registry::get<Kind::dataset_builder>(name)(section, cache_root).
BuiltDatasets build_dataset(const std::string& name, const Config& section,
                            const std::filesystem::path& cache_root = default_cache_root());

// Samples `indices` of a map-style dataset; the ones that throw are skipped and appended to `bad`
// (file and reason, logged at a limited rate).
std::vector<Sample> load_samples(const Dataset& ds, const std::vector<int64_t>& indices, std::vector<BadSample>& bad);

// A collated batch: `batch` is what the model consumes (image [B,3,S,S] or [B,n,3,S,S], audio
// [B,n,T,F], text_input, ids, task from info.task()); the rest is what evaluation needs.
struct SampleBatch {
  Batch batch;
  std::vector<std::vector<std::string>> answers;
  std::vector<std::vector<float>> weights;
  std::vector<std::string> captions;
  std::vector<int64_t> instance_ids;
};

// Stacks the media (all samples of a dataset share their shapes) and gathers the texts and ids.
// pin_memory: page-locked tensors when CUDA is available (faster, asynchronous host-to-device copies),
// else ignored; callers pass run.pin_memory (default true: the original's DataLoaders pin).
SampleBatch collate(std::vector<Sample> samples, const DatasetInfo& info, bool pin_memory = false);

}  // namespace cb
