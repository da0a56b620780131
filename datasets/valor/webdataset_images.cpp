#include "datasets/valor/webdataset_images.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <random>

#include "datasets/processors/text_processors.h"
#include "datasets/webdataset/shard_pattern.h"
#include "datasets/webdataset/shuffle_buffer.h"
#include "framework/error.h"
#include "framework/splitmix64.h"

namespace cb {
namespace {

constexpr int kMaxBadInARow = 64;  // as MetaLoader's consecutive replacements for one slot

}  // namespace

void to_json(nlohmann::json& j, const ReaderState& s) {
  j = {{"pass", s.cursor.pass}, {"shard", s.cursor.shard}, {"sample", s.cursor.sample}};
  if (s.shuffle_buffer == 0) return;
  j["shuffle_buffer"] = s.shuffle_buffer;
  j["picks"] = s.picks;
  nlohmann::json& buffer = j["buffer"] = nlohmann::json::array();
  for (const ShardCursor& b : s.buffer) buffer.push_back({b.pass, b.shard, b.sample});
}

void from_json(const nlohmann::json& j, ReaderState& s) {
  s.cursor = {j.at("pass").get<int64_t>(), j.at("shard").get<int64_t>(), j.at("sample").get<int64_t>()};
  s.shuffle_buffer = j.value("shuffle_buffer", int64_t{0});
  s.picks = j.value("picks", int64_t{0});
  s.buffer.clear();
  if (j.contains("buffer"))
    for (const auto& b : j.at("buffer")) {
      if (!b.is_array() || b.size() != 3)
        fail("data loader state: shuffle buffer entry {} is not [pass, shard, sample]", b.dump());
      s.buffer.push_back({b[0].get<int64_t>(), b[1].get<int64_t>(), b[2].get<int64_t>()});
    }
  bool negative = s.cursor.pass < 0 || s.cursor.shard < 0 || s.cursor.sample < 0 || s.shuffle_buffer < 0 || s.picks < 0;
  for (const ShardCursor& b : s.buffer) negative |= b.pass < 0 || b.shard < 0 || b.sample < 0;
  if (negative) fail("data loader state: negative shard position or count in {}", j.dump());
}

// A raw sample in the shuffle buffer: where it came from (stream position, shard) and its members.
struct WebdatasetImages::Buffered {
  ShardCursor at;
  size_t shard = 0;  // index in the reader's `shards`
  WebdatasetSample raw;
};

struct WebdatasetImages::Reader {
  std::vector<Shard> shards;
  ShardCursor cursor;
  std::unique_ptr<WebdatasetShardReader> open;  // the shard at cursor.shard, cursor.sample samples in
  size_t current = 0;                           // its index in `shards`
  ShuffleBuffer<Buffered> buffer;
  int64_t picks = 0;  // numbers drawn for the buffer's picks
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
      loader_index_(loader_index),
      shuffle_buffer_(group.shuffle_buffer) {
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
  for (size_t r = 0; r < n_readers; ++r) {
    readers_.push_back(std::make_unique<Reader>());
    readers_.back()->buffer = ShuffleBuffer<Buffered>(static_cast<size_t>(shuffle_buffer_));
  }
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

WebdatasetImages::Buffered WebdatasetImages::pull(size_t reader, ShardBatch& out, size_t& fruitless) {
  Reader& r = *readers_[reader];
  ShardCursor& c = r.cursor;
  const size_t n_shards = r.shards.size();
  const auto next_shard = [&] {
    r.open.reset();
    ++c.shard;
    c.sample = 0;
  };
  for (;;) {
    if (!r.open) {
      if (c.shard >= static_cast<int64_t>(n_shards)) ++c.pass, c.shard = 0, c.sample = 0;
      r.current = order(reader, c.pass)[static_cast<size_t>(c.shard)];
    }
    const Shard& shard = r.shards[r.current];
    // Two passes over every shard without a sample: the shards are all empty or unreadable. (Outside
    // the try below, which would take this for one more bad shard.)
    if (!r.open && ++fruitless > 2 * n_shards + 1)
      fail("loader {}: no sample in {} shards of rank {} (see the skipped shards above)", name_, n_shards, rank_);
    std::optional<WebdatasetSample> raw;
    try {
      if (!r.open) {
        r.open = std::make_unique<WebdatasetShardReader>(shard.path);
        for (int64_t k = 0; k < c.sample; ++k)  // a restored position: the samples already taken
          if (!r.open->next()) break;
      }
      raw = r.open->next();
    } catch (const std::exception& e) {
      // Corrupt, truncated or missing: the rest of the shard is skipped. Not counted in a row with the
      // bad samples (a buffer's first fill may meet the same bad shard in many passes): the fruitless
      // count above stops a reader whose shards give nothing.
      const std::string& dataset = dataset_names_[shard.dataset];
      ++out.tried[dataset];
      out.bad.push_back({dataset, shard.path, e.what()});
      next_shard();
      continue;
    }
    if (!raw) {
      next_shard();
      continue;
    }
    fruitless = 0;
    Buffered b{c, r.current, std::move(*raw)};
    ++c.sample;
    return b;
  }
}

ReaderState WebdatasetImages::state_of(const Reader& r) const {
  ReaderState s{r.cursor, shuffle_buffer_, r.picks, {}};
  for (const Buffered& b : r.buffer.contents()) s.buffer.push_back(b.at);
  return s;
}

std::vector<ReaderState> WebdatasetImages::initial_states() const {
  return std::vector<ReaderState>(readers_.size(), ReaderState{{}, shuffle_buffer_, 0, {}});
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
  size_t fruitless = 0;  // shards opened since the last sample read
  int bad_in_a_row = 0;
  // The picks' numbers: splitmix64's sequence from the reader's seed, r.picks numbers in.
  const uint64_t base = splitmix64_combine({seed_, rank_, loader_index_, static_cast<int64_t>(reader)});
  const auto draw = [&] { return splitmix64(base + static_cast<uint64_t>(r.picks++) * kSplitmix64Gamma); };
  const auto next_raw = [&] { return pull(reader, out, fruitless); };
  while (static_cast<int64_t>(out.samples.size()) < n) {
    const Buffered b = shuffle_buffer_ > 0 ? r.buffer.next(next_raw, draw) : next_raw();
    const Shard& shard = r.shards[b.shard];
    const std::string& dataset = dataset_names_[shard.dataset];
    ++out.tried[dataset];
    const std::string where = shard.path + ":" + b.raw.key;
    try {
      out.samples.push_back(decode(b.raw, where, decoder));
      bad_in_a_row = 0;
    } catch (const std::exception& e) {
      out.bad.push_back({dataset, where, e.what()});
      if (++bad_in_a_row >= kMaxBadInARow)
        fail("loader {}: {} samples in a row of dataset {} could not be loaded; last: {} ({})", name_, kMaxBadInARow,
             dataset, where, e.what());
    }
  }
  out.after = state_of(r);
  return out;
}

void WebdatasetImages::refill(size_t reader, const ReaderState& saved) {
  Reader& r = *readers_[reader];
  const auto n_shards = static_cast<int64_t>(r.shards.size());
  // The buffered samples of each (pass, shard), and where each goes in the buffer.
  std::map<std::pair<int64_t, int64_t>, std::map<int64_t, size_t>> wanted;
  for (size_t i = 0; i < saved.buffer.size(); ++i) {
    const ShardCursor& at = saved.buffer[i];
    if (!(at < saved.cursor) || at.shard >= n_shards)
      fail(
          "loader {}: data loader state: reader {}'s buffered sample (pass {}, shard {}, sample {}) is not a sample "
          "read before its position (pass {}, shard {}, sample {}) of {} shards",
          name_, reader, at.pass, at.shard, at.sample, saved.cursor.pass, saved.cursor.shard, saved.cursor.sample,
          n_shards);
    if (!wanted[{at.pass, at.shard}].emplace(at.sample, i).second)
      fail("loader {}: data loader state: reader {}'s shuffle buffer holds (pass {}, shard {}, sample {}) twice", name_,
           reader, at.pass, at.shard, at.sample);
  }
  std::vector<std::optional<Buffered>> contents(saved.buffer.size());
  std::map<int64_t, std::vector<size_t>> orders;
  for (const auto& [pass_shard, samples] : wanted) {
    const auto [pass, position] = pass_shard;
    if (!orders.count(pass)) orders[pass] = order(reader, pass);
    const size_t index = orders[pass][static_cast<size_t>(position)];
    const std::string& path = r.shards[index].path;
    // The current shard is read up to the cursor and left open; the others up to their last buffered sample.
    const bool current = pass == saved.cursor.pass && position == saved.cursor.shard;
    const int64_t until = current ? saved.cursor.sample : samples.rbegin()->first + 1;
    auto shard = std::make_unique<WebdatasetShardReader>(path);
    try {
      for (int64_t k = 0; k < until; ++k) {
        std::optional<WebdatasetSample> raw = shard->next();
        if (!raw) fail("the shard ends after {} samples", k);
        if (const auto it = samples.find(k); it != samples.end())
          contents[it->second] = Buffered{{pass, position, k}, index, std::move(*raw)};
      }
    } catch (const std::exception& e) {
      fail(
          "loader {}: resuming: the shuffle buffer's samples of shard {} (pass {}) cannot be read again; the shards "
          "changed since the checkpoint? ({})",
          name_, path, pass, e.what());
    }
    if (current) r.open = std::move(shard), r.current = index;
  }
  std::vector<Buffered> buffer;
  for (auto& b : contents) buffer.push_back(std::move(*b));
  r.buffer.assign(std::move(buffer));
}

void WebdatasetImages::reset(const std::vector<ReaderState>& states, int64_t batches) {
  if (states.size() != readers_.size())
    fail("loader {}: {} shard positions for {} readers", name_, states.size(), readers_.size());
  const auto n = static_cast<int64_t>(readers_.size());
  for (int64_t i = 0; i < n; ++i) {
    const ReaderState& s = states[static_cast<size_t>(i)];
    if (s.shuffle_buffer != shuffle_buffer_)
      fail(
          "loader {}: the data loader state was saved with shuffle_buffer {}{}, this run has {}: set shuffle_buffer to "
          "{} in the group to resume it",
          name_, s.shuffle_buffer, s.shuffle_buffer == 0 ? " (or before the key existed)" : "", shuffle_buffer_,
          s.shuffle_buffer);
    if (s.shuffle_buffer == 0 && (!s.buffer.empty() || s.picks != 0))
      fail("loader {}: data loader state: shuffle buffer contents without a shuffle_buffer size", name_);
    Reader& r = *readers_[static_cast<size_t>(i)];
    std::lock_guard lock(r.mutex);
    r.open.reset();
    r.cursor = s.cursor;
    r.picks = s.picks;
    r.buffer.assign({});
    refill(static_cast<size_t>(i), s);
    r.next_ticket = batches > i ? (batches - i + n - 1) / n : 0;  // batches j < `batches` with j mod n == i
  }
}

}  // namespace cb
