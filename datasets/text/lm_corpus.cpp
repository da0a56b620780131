#include "datasets/text/lm_corpus.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "datasets/processors/text_processors.h"
#include "datasets/valor/data_options.h"
#include "datasets/valor/task_conversation.h"
#include "framework/error.h"
#include "framework/json_file.h"

namespace cb {
namespace {

using nlohmann::json;

// An annotation file: a JSON list of records, or JSON Lines (as the valor datasets read them).
struct Item {
  std::string id;
  json record;
  std::shared_ptr<const TaskConversation> conversation;  // null: a stage-1 caption
  std::vector<std::string> slots;                        // fill_query_slots: the text for each <query> slot, in order
};

// The media id of a record without its extension ("astronaut.jpg" and "astronaut" name one photo).
std::string media_stem(const json& r) {
  for (const char* key : {"video_id", "image_id"})
    if (r.contains(key) && r[key].is_string()) return std::filesystem::path(r[key].get<std::string>()).stem().string();
  return "";
}

std::string caption_of(const json& r) {
  return valor_pre_caption(r.contains("desc") ? r["desc"].get<std::string>() : r["caption"].get<std::string>());
}

// Each <query> marker replaced by its slot text (dropped where there is none).
std::string fill_slots(const std::string& conversation, const std::vector<std::string>& slots) {
  std::string out;
  size_t start = 0, k = 0;
  for (size_t at; (at = conversation.find("<query>", start)) != std::string::npos; start = at + 7, ++k)
    out += conversation.substr(start, at - start) + (k < slots.size() ? slots[k] : "");
  return out + conversation.substr(start);
}

class LmCorpusSource : public BatchSource {
 public:
  LmCorpusSource(std::vector<Item> items, const LmCorpusOptions& o) : items_(std::move(items)), o_(o) {
    per_epoch_ = static_cast<int64_t>(items_.size()) / (o_.batch_size * o_.world_size);
    if (per_epoch_ < 1)
      fail("lm corpus: {} texts are fewer than one batch of {} on each of {} ranks", items_.size(), o_.batch_size,
           o_.world_size);
    shuffle();
  }

  Batch next() override {
    if (cursor_ == per_epoch_) ++epoch_, cursor_ = 0, shuffle();
    Batch b;
    b.task = "text";
    const int64_t start = (cursor_ * o_.world_size + o_.rank) * o_.batch_size;
    for (int64_t k = start; k < start + o_.batch_size; ++k) {
      const size_t i = order_[k];
      b.text_input.push_back(text(i));
      b.ids.push_back(items_[i].id);
    }
    ++cursor_;
    return b;
  }

  json state() const override { return {{"epoch", epoch_}, {"cursor", cursor_}}; }
  void restore(const json& s) override {
    epoch_ = s.at("epoch").get<int64_t>();
    cursor_ = s.at("cursor").get<int64_t>();
    shuffle();
  }

 private:
  void shuffle() {
    order_.resize(items_.size());
    for (size_t i = 0; i < order_.size(); ++i) order_[i] = i;
    std::mt19937_64 rng(static_cast<uint64_t>(o_.seed + epoch_));
    std::shuffle(order_.begin(), order_.end(), rng);
  }

  std::string text(size_t i) const {
    const Item& it = items_[i];
    if (!it.conversation) return caption_of(it.record) + o_.caption_end_sym;
    std::mt19937_64 rng(static_cast<uint64_t>(o_.seed) * 1000003u + static_cast<uint64_t>(epoch_) * 7919u + i);
    const auto conversation = it.conversation->build(it.record, rng);
    // Unfilled, the <query> markers stay: the task tokenises by piece and drops the slots.
    return o_.fill_query_slots ? fill_slots(conversation, it.slots) : conversation;
  }

  std::vector<Item> items_;
  LmCorpusOptions o_;
  int64_t per_epoch_ = 0, epoch_ = 0, cursor_ = 0;
  std::vector<size_t> order_;
};

}  // namespace

std::unique_ptr<BatchSource> make_lm_corpus_source(const LmCorpusOptions& o) {
  std::optional<TaskPrompts> prompts;
  std::vector<Item> items;
  // fill_query_slots: the stage-1 caption of every (modality, media id), from the stage-1 groups.
  std::map<std::pair<std::string, std::string>, std::string> captions;
  std::vector<std::vector<std::string>> slot_kinds;  // per item: the modality of each <query> slot
  for (const auto& path : o.data_opts) {
    const DataOptions opts = DataOptions::load(path);
    for (const LoaderGroupSpec& group : opts.train) {
      if (group.data_format == "webdataset") {  // its captions lie inside tar shards: not read for stage 0
        spdlog::info("lm corpus: loader group {} (webdataset shards) is not read", group.name());
        continue;
      }
      std::shared_ptr<const TaskConversation> conversation;
      if (group.task.find('-') != std::string::npos) {  // a stage-2 task tag
        if (!prompts) prompts = load_task_prompts(o.prompt_path.string());
        conversation = std::make_shared<const TaskConversation>(group.task, *prompts, opts.zh);
      }
      for (const ValorDatasetSpec& ds : group.datasets) {
        // The slots of a record: its visual item (image or video), then its audio, as the model encodes.
        std::vector<std::string> kinds;
        if (ds.video) kinds.push_back(ds.datatype == "image" ? "image" : "video");
        if (ds.audio) kinds.push_back("audio");
        const std::vector<std::string> slots_of_record = conversation ? kinds : std::vector<std::string>{};
        // Each malformed record: where and why. JSON Lines that are not JSON are dropped like the
        // valor loaders of stages 1 and 2 drop them, so that one file serves all three stages.
        std::vector<std::string> dropped;
        auto records = read_json_records(ds.txt, "annotation file", dropped);
        int64_t used = 0;
        for (size_t k = 0; k < records.size(); ++k) {
          const json& r = records[k].value;
          const std::string why = !r.is_object() ? "not a JSON object"
                                  : conversation ? conversation->check(r)
                                  : (r.contains("desc") && r["desc"].is_string()) ||
                                          (!r.contains("desc") && r.contains("caption") && r["caption"].is_string())
                                      ? ""
                                      : "no caption/desc string";
          if (!why.empty()) {
            dropped.push_back(records[k].where + ": " + why);
            continue;
          }
          if (!conversation && !kinds.empty()) captions[{kinds.front(), media_stem(r)}] = caption_of(r);
          items.push_back({fmt::format("{}:{}", ds.txt.string(), k), r, conversation, {}});
          slot_kinds.push_back(slots_of_record);
          ++used;
        }
        spdlog::info("lm corpus: {} texts from {} ({}, task {})", used, ds.txt.string(), ds.name, group.task);
        if (!dropped.empty())
          spdlog::warn("lm corpus: {} malformed records of {} skipped: {}{}", dropped.size(), ds.txt.string(),
                       fmt::join(dropped.begin(), dropped.begin() + std::min<size_t>(dropped.size(), 10), "; "),
                       dropped.size() > 10 ? "; ..." : "");
      }
    }
  }
  if (o.fill_query_slots) {
    int64_t filled = 0, slots = 0;
    for (size_t i = 0; i < items.size(); ++i)
      for (const auto& kind : slot_kinds[i]) {
        const auto it = captions.find({kind, media_stem(items[i].record)});
        items[i].slots.push_back(it == captions.end() ? "" : it->second);
        ++slots;
        filled += it != captions.end();
      }
    spdlog::info("lm corpus: {} of {} query slots hold their media's stage-1 caption", filled, slots);
  }
  return std::make_unique<LmCorpusSource>(std::move(items), o);
}

}  // namespace cb
