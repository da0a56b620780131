#include "datasets/valor/webdataset_images.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <random>

#include "datasets/processors/text_processors.h"
#include "datasets/webdataset/shard_pattern.h"
#include "framework/error.h"
#include "framework/splitmix64.h"

namespace cb {
namespace {

constexpr int kMaxBadInARow = 64;  // as MetaLoader's consecutive replacements for one slot

}  // namespace

void to_json(nlohmann::json& j, const ShardCursor& c) {
  j = {{"pass", c.pass}, {"shard", c.shard}, {"sample", c.sample}};
}

void from_json(const nlohmann::json& j, ShardCursor& c) {
  c.pass = j.at("pass").get<int64_t>();
  c.shard = j.at("shard").get<int64_t>();
  c.sample = j.at("sample").get<int64_t>();
  if (c.pass < 0 || c.shard < 0 || c.sample < 0) fail("data loader state: negative shard position {}", j.dump());
}

struct WebdatasetImages::Reader {
  std::vector<Shard> shards;
  ShardCursor cursor;
  std::unique_ptr<WebdatasetShardReader> open;  // the shard at cursor.shard, cursor.sample samples in
  size_t current = 0;                           // its index in `shards`
  std::mutex mutex;
  std::condition_variable turn;
  int64_t next_ticket = 0;
};

WebdatasetImages::WebdatasetImages(const LoaderGroupSpec& group, const DataOptions& opts, int rank, int world_size,
                                   int64_t seed, int64_t loader_index)
    : name_(group.name()),
      video_(opts.video_options(group, group.datasets.at(0))),
      rank_(rank),
      seed_(seed),
      loader_index_(loader_index) {
  std::vector<Shard> all;
  for (size_t d = 0; d < group.datasets.size(); ++d) {
    const ValorDatasetSpec& ds = group.datasets[d];
    dataset_names_.push_back(ds.name);
    const std::vector<std::string> paths = expand_braces(ds.shards);
    std::vector<std::string> missing;
    std::error_code ec;
    for (const auto& p : paths)
      if (!std::filesystem::is_regular_file(p, ec)) missing.push_back(p);
    if (missing.size() == paths.size())
      fail("loader {}: dataset '{}': the shard pattern '{}' matches no file{}", name_, ds.name, ds.shards,
           paths.size() > 1 ? fmt::format(" (none of its {} names exists)", paths.size()) : "");
    // Kept in the list so that the split does not depend on which files exist; opening one is skipped and reported.
    if (!missing.empty())
      spdlog::warn("loader {}: {} of the {} shards of '{}' do not exist (first: {}); they will be skipped", name_,
                   missing.size(), paths.size(), ds.shards, missing.front());
    for (const auto& p : paths) all.push_back({p, d});
  }
  if (static_cast<int64_t>(all.size()) < world_size)
    fail("loader {}: {} shards for {} ranks: every rank reads shards of its own, so it needs at least {} shards", name_,
         all.size(), world_size, world_size);
  std::vector<Shard> mine;
  for (size_t i = static_cast<size_t>(rank); i < all.size(); i += static_cast<size_t>(world_size))
    mine.push_back(all[i]);
  shard_count_ = static_cast<int64_t>(mine.size());
  const size_t n_readers = std::min<size_t>(std::max<int64_t>(group.n_workers, 1), mine.size());
  for (size_t r = 0; r < n_readers; ++r) readers_.push_back(std::make_unique<Reader>());
  for (size_t i = 0; i < mine.size(); ++i) readers_[i % n_readers]->shards.push_back(mine[i]);
}

WebdatasetImages::~WebdatasetImages() = default;

std::vector<size_t> WebdatasetImages::order(size_t reader, int64_t pass) const {
  // Fisher-Yates with a modulo draw: the same order on every platform (std::shuffle's is the library's).
  std::vector<size_t> o(readers_[reader]->shards.size());
  for (size_t i = 0; i < o.size(); ++i) o[i] = i;
  std::mt19937_64 rng(splitmix64_combine({seed_, rank_, loader_index_, static_cast<int64_t>(reader), pass}));
  for (size_t i = o.size(); i > 1; --i) std::swap(o[i - 1], o[rng() % i]);
  return o;
}

ValorSample WebdatasetImages::decode(const WebdatasetSample& raw, const std::string& where,
                                     ImageDecoder& decoder) const {
  auto image = raw.members.end();
  for (const char* ext : {"jpg", "jpeg", "png", "webp"})
    if (image == raw.members.end()) image = raw.members.find(ext);
  if (image == raw.members.end()) fail("no image member (jpg, jpeg, png or webp)");
  std::string caption;
  if (const auto txt = raw.members.find("txt"); txt != raw.members.end()) {
    caption.assign(txt->second.begin(), txt->second.end());
  } else if (const auto js = raw.members.find("json"); js != raw.members.end()) {
    nlohmann::json meta;
    try {
      meta = nlohmann::json::parse(js->second.begin(), js->second.end());
    } catch (const nlohmann::json::parse_error& e) {
      fail("{}.json is not valid JSON: {}", raw.key, e.what());
    }
    if (!meta.is_object() || !meta.contains("caption") || !meta["caption"].is_string())
      fail("{}.json has no \"caption\" string", raw.key);
    caption = meta["caption"].get<std::string>();
  } else {
    fail("no caption (a txt member, or a json member with \"caption\")");
  }
  ValorSample s;
  s.id = raw.key;
  const std::string member = where + "." + image->first;
  s.image = frames_to_pixels({decoder.decode_bytes(image->second.data(), image->second.size(), member)}, video_);
  s.text = valor_pre_caption(caption);
  return s;
}

ShardBatch WebdatasetImages::next_batch(int64_t index, int64_t n, ImageDecoder& decoder) {
  const size_t reader = static_cast<size_t>(index) % readers_.size();
  Reader& r = *readers_[reader];
  std::unique_lock lock(r.mutex);
  const int64_t ticket = index / static_cast<int64_t>(readers_.size());
  r.turn.wait(lock, [&] { return r.next_ticket == ticket; });
  // Whatever this batch ends with, the reader's next one may go on (under the lock: declared after it).
  struct NextTurn {
    Reader& r;
    ~NextTurn() {
      ++r.next_ticket;
      r.turn.notify_all();
    }
  } next_turn{r};

  ShardBatch out;
  ShardCursor& c = r.cursor;
  const size_t n_shards = r.shards.size();
  size_t fruitless = 0;  // shards opened since the last usable sample
  int bad_in_a_row = 0;
  const auto next_shard = [&] {
    r.open.reset();
    ++c.shard;
    c.sample = 0;
  };
  while (static_cast<int64_t>(out.samples.size()) < n) {
    if (!r.open) {
      if (c.shard >= static_cast<int64_t>(n_shards)) ++c.pass, c.shard = 0, c.sample = 0;
      r.current = order(reader, c.pass)[static_cast<size_t>(c.shard)];
    }
    const Shard& shard = r.shards[r.current];
    const std::string& dataset = dataset_names_[shard.dataset];
    const auto skip = [&](const std::string& file, const std::string& why) {
      out.bad.push_back({dataset, file, why});
      if (++bad_in_a_row >= kMaxBadInARow)
        fail("loader {}: {} samples in a row of dataset {} could not be loaded; last: {} ({})", name_, kMaxBadInARow,
             dataset, file, why);
    };
    std::optional<WebdatasetSample> raw;
    try {
      if (!r.open) {
        // Two passes over every shard without a usable sample: the shards are all empty or unreadable.
        if (++fruitless > 2 * n_shards + 1)
          fail("loader {}: no usable sample in {} shards of rank {} (see the skipped shards above)", name_, n_shards,
               rank_);
        r.open = std::make_unique<WebdatasetShardReader>(shard.path);
        for (int64_t k = 0; k < c.sample; ++k)  // a restored position: the samples already taken
          if (!r.open->next()) break;
      }
      raw = r.open->next();
    } catch (const std::exception& e) {
      // Corrupt, truncated or missing: the rest of the shard is skipped.
      ++out.tried[dataset];
      skip(shard.path, e.what());
      next_shard();
      continue;
    }
    if (!raw) {
      next_shard();
      continue;
    }
    ++c.sample;
    ++out.tried[dataset];
    const std::string where = shard.path + ":" + raw->key;
    try {
      out.samples.push_back(decode(*raw, where, decoder));
      fruitless = 0, bad_in_a_row = 0;
    } catch (const std::exception& e) {
      skip(where, e.what());
    }
  }
  out.after = c;
  return out;
}

void WebdatasetImages::reset(const std::vector<ShardCursor>& cursors, int64_t batches) {
  if (cursors.size() != readers_.size())
    fail("loader {}: {} shard positions for {} readers", name_, cursors.size(), readers_.size());
  const auto n = static_cast<int64_t>(readers_.size());
  for (int64_t i = 0; i < n; ++i) {
    Reader& r = *readers_[static_cast<size_t>(i)];
    std::lock_guard lock(r.mutex);
    r.open.reset();
    r.cursor = cursors[static_cast<size_t>(i)];
    r.next_ticket = batches > i ? (batches - i + n - 1) / n : 0;  // batches j < `batches` with j mod n == i
  }
}

}  // namespace cb
