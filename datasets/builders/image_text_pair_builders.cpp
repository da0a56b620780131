// Image-text pair builders of the original (image_text_pair_builder.py, cc_sbu_dataset.py,
// laion_dataset.py):
//   cc_sbu, laion: webdataset tar shards, build_info.storage a brace pattern ("…/{00000..01255}.tar"),
//     read as wds.DataPipeline(ResampledShards -> tarfile_to_samples -> shuffle(1000) -> decode
//     pilrgb -> to_tuple("jpg", "json") -> vis_processor, text_processor(json.caption)): an endless
//     stream of {image, text_input}, train split only; unusable samples are skipped (the original's
//     warn_and_continue) and reported.
//   cc_sbu_align: MiniGPT-4's aligned set, build_info.storage a directory with filter_cap.json
//     ({"annotations": [{image_id, caption}]}, or a bare list) and image/<image_id>.jpg; the caption is
//     used as is (no text processor, as the original).
#include <random>

#include "datasets/builders/record_dataset.h"
#include "datasets/media/image_decode.h"
#include "datasets/webdataset/shard_pattern.h"
#include "datasets/webdataset/shuffle_buffer.h"
#include "datasets/webdataset/tar_shard.h"
#include "framework/error.h"
#include "framework/json_file.h"

namespace cb {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr size_t kShuffleBufferSize = 1000;  // wds.shuffle(1000)

class WebdatasetPairs;

// ResampledShards + shuffle: shards drawn with replacement; raw samples pass through a shuffle buffer
// and are decoded when they leave it.
class WebdatasetStream : public SampleStream {
 public:
  WebdatasetStream(const WebdatasetPairs& ds, uint64_t seed) : ds_(ds), rng_(seed), buffer_(kShuffleBufferSize) {}
  std::optional<Sample> next(std::vector<BadSample>& bad) override;

 private:
  WebdatasetSample pull(std::vector<BadSample>& bad);  // the next raw sample of some shard

  const WebdatasetPairs& ds_;
  std::mt19937_64 rng_;
  std::unique_ptr<WebdatasetShardReader> reader_;
  std::string shard_;
  ShuffleBuffer<std::pair<std::string, WebdatasetSample>> buffer_;  // (shard, sample)
  ImageDecoder decoder_;
};

class WebdatasetPairs : public Dataset {
 public:
  WebdatasetPairs(DatasetInfo info, std::string pattern, Processor vis,
                  std::function<std::string(std::string_view)> text)
      : Dataset(std::move(info)),
        pattern_(std::move(pattern)),
        shards_(expand_braces(pattern_)),
        vis_(std::move(vis)),
        text_(std::move(text)) {
    if (!vis_.media) fail("{}: the vis_processor is not an image processor", name());
  }
  int64_t size() const override { return -1; }
  Sample get(int64_t) const override { fail("{} streams tar shards ({}): read it with stream()", name(), pattern_); }
  std::string describe(int64_t) const override { return pattern_; }
  std::unique_ptr<SampleStream> stream(uint64_t seed) const override {
    return std::make_unique<WebdatasetStream>(*this, seed);
  }

  const std::vector<std::string>& shards() const { return shards_; }
  // decode pilrgb + to_tuple("jpg", "json") + processors; throws naming the problem.
  Sample decode(const WebdatasetSample& raw, ImageDecoder& decoder) const {
    const auto jpg = raw.members.find("jpg");
    const auto js = raw.members.find("json");
    if (jpg == raw.members.end()) fail("no .jpg member");
    if (js == raw.members.end()) fail("no .json member");
    json meta;
    try {
      meta = json::parse(js->second.begin(), js->second.end());
    } catch (const json::parse_error& e) {
      fail("{}.json is not valid JSON: {}", raw.key, e.what());
    }
    if (!meta.is_object() || !meta.contains("caption") || !meta["caption"].is_string())
      fail("{}.json has no \"caption\" string", raw.key);
    Sample s;
    s.image = vis_.media(decoder.decode_bytes(jpg->second.data(), jpg->second.size(), raw.key + ".jpg"));
    s.text_input = text_(meta["caption"].get<std::string>());
    s.id = raw.key;
    return s;
  }

 private:
  std::string pattern_;
  std::vector<std::string> shards_;
  Processor vis_;
  std::function<std::string(std::string_view)> text_;
};

WebdatasetSample WebdatasetStream::pull(std::vector<BadSample>& bad) {
  // Every shard failing or empty would loop forever: give up after this many fruitless openings.
  const size_t max_fruitless = 10 * ds_.shards().size() + 10;
  for (size_t fruitless = 0; fruitless < max_fruitless;) {
    if (!reader_) {
      shard_ = ds_.shards()[std::uniform_int_distribution<size_t>(0, ds_.shards().size() - 1)(rng_)];
      try {
        reader_ = std::make_unique<WebdatasetShardReader>(shard_);
      } catch (const std::exception& e) {
        ds_.report_bad({shard_, e.what()}, bad);
        ++fruitless;
        continue;
      }
    }
    try {
      if (auto s = reader_->next()) return std::move(*s);
      ++fruitless;  // an empty shard, or one read to its end: counts only until a sample comes
    } catch (const std::exception& e) {
      ds_.report_bad({shard_, e.what()}, bad);
      ++fruitless;
    }
    reader_.reset();
  }
  fail("{}: no sample could be read from the shards of {} (see the skipped shards)", ds_.name(), ds_.describe(0));
}

std::optional<Sample> WebdatasetStream::next(std::vector<BadSample>& bad) {
  for (;;) {
    const auto pull_one = [&] {
      auto raw = pull(bad);  // sets shard_
      return std::pair{shard_, std::move(raw)};
    };
    auto [shard, raw] = buffer_.next(pull_one, [&] { return rng_(); });
    try {
      return ds_.decode(raw, decoder_);
    } catch (const std::exception& e) {
      ds_.report_bad({shard + ":" + raw.key, e.what()}, bad);
    }
  }
}

BuiltDatasets build_pairs(const std::string& builder, const Config& section, const fs::path& cache_root) {
  BuildContext ctx(builder, section, cache_root);
  DatasetInfo info{.builder = builder, .split = "train", .kind = "caption", .image = true, .streaming = true};
  return {{"train", std::make_shared<WebdatasetPairs>(std::move(info), ctx.storage(),
                                                      ctx.processor("vis_processor", true), ctx.text_processor(true))}};
}

// filter_cap.json: {"annotations": [...]} (MiniGPT-4's file) or a bare list of {image_id, caption};
// captions as they are (no text processor), images <storage>/image/<image_id>.jpg.
std::vector<Item> parse_align(const json& r, const SplitContext& s) {
  Item it;
  it.id = id_field(r, "image_id");
  it.image = s.vis_root / (it.id + ".jpg");
  it.text_input = string_field(r, "caption");
  return {it};
}

BuiltDatasets build_align(const Config& section, const fs::path& cache_root) {
  BuildContext ctx("cc_sbu_align", section, cache_root);
  const fs::path root = ctx.storage();
  DatasetInfo info{.builder = "cc_sbu_align", .split = "train", .kind = "caption", .image = true};
  RecordFiles files{.paths = {root / "filter_cap.json"}, .layout = {.list_key = "annotations", .bare_list = true}};
  SplitContext split{.train = true, .vis_root = root / "image"};
  return {{"train", std::make_shared<RecordDataset>(std::move(info), files, parse_align, std::move(split), false,
                                                    ctx.processor("vis_processor", true), Processor{})}};
}

}  // namespace

CB_REGISTER(dataset_builder, "cc_sbu", [](const Config& section, const fs::path& cache_root) {
  return build_pairs("cc_sbu", section, cache_root);
});
CB_REGISTER(dataset_builder, "laion", [](const Config& section, const fs::path& cache_root) {
  return build_pairs("laion", section, cache_root);
});
CB_REGISTER(dataset_builder, "cc_sbu_align", build_align);

CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "cc_sbu", "default", "datasets/builders/configs/cc_sbu/defaults.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "laion", "default", "datasets/builders/configs/laion/defaults.yaml");
CB_REGISTER_DEFAULT_CONFIG(dataset_builder, "cc_sbu_align", "default", "datasets/builders/configs/cc_sbu/align.yaml");

}  // namespace cb
