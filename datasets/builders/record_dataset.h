// The map-style datasets of the original (caption, VQA, video QA, AV QA, dialogue): annotation records
// are parsed once, when the dataset is built, into items (media paths + processed texts); get(i)
// decodes and processes the item's media. `build_record_sets` is BaseDatasetBuilder.build(): one
// dataset per split of build_info.annotations, train processors for "train", eval ones otherwise.
#pragma once
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/builders/build_context.h"
#include "datasets/builders/dataset.h"
#include "datasets/processors/processor.h"

namespace cb {

// One sample before its media are loaded.
struct Item {
  std::filesystem::path image, video, audio;  // empty when the set has no such media
  std::vector<std::filesystem::path> frames;  // a video given as image files (vist_caption)
  std::string text_input, caption, id;
  std::vector<std::string> answers;
  std::vector<float> weights;
  int64_t instance_id = 0;
};

class RecordDataset : public Dataset {
 public:
  // vis: image sets take a media processor ([H,W,3] uint8 RGB -> [3,S,S]) or a file processor; video
  // files a file processor (alpro_video_eval layout [3,n,S,S], returned as [n,3,S,S]), videos given
  // as frame files a media processor (applied per frame, stacked [n,3,S,S]); aud: a file processor
  // -> [n,T,F]. Unused ones may be empty.
  RecordDataset(DatasetInfo info, std::vector<Item> items, Processor vis, Processor aud,
                std::vector<BadSample> malformed);

  int64_t size() const override { return static_cast<int64_t>(items_.size()); }
  Sample get(int64_t i) const override;
  std::string describe(int64_t i) const override;
  const Item& item(int64_t i) const { return items_.at(static_cast<size_t>(i)); }

 private:
  std::vector<Item> items_;
  Processor vis_, aud_;
};

// What a parse function sees of its split.
struct SplitContext {
  bool train = false;
  std::filesystem::path vis_root = {}, aud_root = {};
  std::function<std::string(std::string_view)> text = {};  // the split's text processor
};

struct RecordSetSpec {
  std::string kind = {};             // "caption" | "qa" | "dialogue"
  std::string data_type = "images";  // default of the section's data_type: images | videos | audios
  bool audio = false;                // reads build_info.audios and aud_processor too
  // One annotation record -> its items (usually one); throws BadRecord when the record is unusable.
  std::function<std::vector<Item>(const nlohmann::json& record, const SplitContext& split)> parse = {};
  // Annotation files -> records; default read_records (a JSON list or JSON Lines per file).
  std::function<std::vector<AnnotationRecord>(const std::vector<std::filesystem::path>&, std::vector<BadSample>&)>
      read = {};
  // Eval splits: only the first storage file holds the records (VQA: the others are answer lists
  // and COCO-format question/annotation files for the official evaluator).
  bool eval_records_in_first_file = false;
  // Eval splits: one sample per image/video with all its reference captions (items with the same
  // media merged, answers concatenated in record order).
  bool group_eval_references = false;
  bool train_only = false;  // the original registers no eval dataset (vg_vqa)
  bool eval_only = false;   // the original registers no train dataset (nocaps)
};

BuiltDatasets build_record_sets(const BuildContext& ctx, const RecordSetSpec& spec);
// The registered factory of a record builder: build_record_sets on (section, cache root).
FactoryOf<Kind::dataset_builder>::type record_builder(std::string name, RecordSetSpec spec);

// Answer list -> unique answers in first-seen order, each weighted by its count / list length (the
// original's VQA answer_weight).
void weigh_answers(const std::vector<std::string>& answers, Item& item);

}  // namespace cb
