// The map-style datasets of the original (caption, VQA, video QA, AV QA, dialogue): annotation records
// are checked once, when the dataset is built (malformed ones dropped and listed), and kept in their
// files: the dataset holds where each item's record lies (24 bytes an item, JsonRecordFile), and get(i)
// parses the record into its item (media paths + processed texts), then decodes and processes the
// item's media. Millions of records thus start in seconds and hold a small fraction of a JSON tree's
// memory (docs/data-pipeline.md). `build_record_sets` is BaseDatasetBuilder.build(): one
// dataset per split of build_info.annotations, train processors for "train", eval ones otherwise.
#pragma once
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/builders/build_context.h"
#include "datasets/builders/dataset.h"
#include "datasets/processors/processor.h"
#include "framework/json_file.h"

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

// What a parse function sees of its split.
struct SplitContext {
  bool train = false;
  std::filesystem::path vis_root = {}, aud_root = {};
  std::function<std::string(std::string_view)> text = {};  // the split's text processor
};

// One annotation record -> its items (usually one); throws BadRecord when the record is unusable.
using ItemParser = std::function<std::vector<Item>(const nlohmann::json& record, const SplitContext& split)>;

// Vouches for a record from its JSON text without building a JSON tree: the number of items `parse`
// gives it, or nullopt when only `parse` can tell (which then runs, so every reason a record is dropped
// still comes from `parse`). It must never accept a record that `parse` rejects. The start-up check
// of millions of records is mostly JSON trees otherwise.
using QuickCheck = std::function<std::optional<uint32_t>(std::string_view record, const SplitContext& split)>;

// Where the records of a dataset come from.
struct RecordFiles {
  std::vector<std::filesystem::path> paths;
  JsonRecordFile::Layout layout = {};  // a list or JSON Lines per file by default
};

class RecordDataset : public Dataset {
 public:
  // Scans `files` and parses every record once to check it (malformed ones listed by malformed(),
  // each counting one instance id as the original's); with `group_references`, items that name the
  // same media become one with every reference (eval caption sets). vis: image sets take a media
  // processor ([H,W,3] uint8 RGB -> [3,S,S]) or a file processor; video files a file processor
  // (alpro_video_eval layout [3,n,S,S], returned as [n,3,S,S]), videos given as frame files a media
  // processor (applied per frame, stacked [n,3,S,S]); aud: a file processor -> [n,T,F]. Unused ones
  // may be empty. `quick`, when given, checks records before `parse` does (not when grouping).
  RecordDataset(DatasetInfo info, const RecordFiles& files, ItemParser parse, SplitContext split, bool group_references,
                Processor vis, Processor aud, QuickCheck quick = {});

  int64_t size() const override { return static_cast<int64_t>(refs_.size()); }
  Sample get(int64_t i) const override;
  std::string describe(int64_t i) const override;
  // Item i, parsed from its record.
  Item item(int64_t i) const;

 private:
  struct ItemRef {
    JsonSpan span;
    uint32_t file = 0;  // index in files_
    uint32_t sub = 0;   // index in the parse function's result
    int64_t instance_id = 0;
  };
  Item parse_ref(const ItemRef& ref) const;

  std::vector<std::unique_ptr<JsonRecordFile>> files_;
  std::vector<ItemRef> refs_;
  std::map<int64_t, std::vector<ItemRef>> merged_;  // grouped eval items: the other items whose references they take
  ItemParser parse_;
  SplitContext split_;
  Processor vis_, aud_;
};

struct RecordSetSpec {
  std::string kind = {};             // "caption" | "qa" | "dialogue"
  std::string data_type = "images";  // default of the section's data_type: images | videos | audios
  bool audio = false;                // reads build_info.audios and aud_processor too
  ItemParser parse = {};
  QuickCheck quick_check = {};
  JsonRecordFile::Layout layout = {};  // how each annotation file holds its records
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
