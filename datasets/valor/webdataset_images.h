// A stage-1 loader group of webdataset tar shards (`data_format: webdataset`; LAION / CC as img2dataset
// writes them, read by the original through LAVIS's laion / cc_sbu builders): each dataset names a
// brace pattern of shards (datasets/webdataset/shard_pattern.h), and a sample is one shard's image
// member (jpg, jpeg, png or webp, the first present) with its caption (the txt member, else the json
// member's "caption"). Images go through the same VideoMapper pixels and valor_pre_caption as a
// `datatype: image` group of files, so the batches cannot be told apart.
//
// Split as webdataset's split_by_node / split_by_worker: rank r of W keeps the shards whose index in
// the patterns' concatenated expansion is r mod W, and splits them over its readers (one per data
// worker, n_workers 0 -> one) by their index mod the reader count. A reader goes through its shards in
// an order reshuffled every pass (seeded by seed, rank, loader, reader, pass) and starts over at the
// end: the stream is endless like the rest of the mixture. The loader's j-th batch comes from reader
// j mod readers, so batches depend on the reader count but not on thread timing: a reader's batches
// are built in order (tickets), whichever thread builds them.
//
// Within a reader, samples pass through webdataset's shuffle buffer (datasets/webdataset/shuffle_buffer.h)
// as in LAVIS's laion / cc_sbu pipelines (wds.shuffle(1000) right after tarfile_to_samples): raw,
// undecoded samples, across shard and pass boundaries, picked with a splitmix64 stream seeded by
// (seed, rank, loader, reader). The group key shuffle_buffer sets its size (default 1000, the
// original's fixed value; 0 = none, samples in shard order); decoding follows the pick, as in the
// original, so a sample without an image is found (and counted) when it is picked.
//
// A reader's state (ReaderState: its stream position, the rng's draw count and the buffered samples
// as stream positions, not bytes) is what the MetaLoader's state saves. Restoring reads every shard
// that holds a buffered sample again, up to the last one it needs (with shards much larger than the
// buffer that is the current shard and the one before), and takes the buffered samples from them;
// the current shard is reopened and its samples already taken are read again and dropped (their bytes
// read through libarchive, not decoded: up to one shard's worth of reading per reader at each resume).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "datasets/media/image_decode.h"
#include "datasets/valor/data_options.h"
#include "datasets/valor/valor_dataset.h"
#include "datasets/webdataset/tar_shard.h"

namespace cb {

// A position in a reader's stream: the sample-th sample (usable or not) of the shard-th shard of the
// pass-th pass's shard order. As a reader's cursor: the next sample to read.
struct ShardCursor {
  int64_t pass = 0;    // passes over the reader's shards completed
  int64_t shard = 0;   // position in this pass's shard order
  int64_t sample = 0;  // samples (usable or not) taken from that shard
  bool operator<(const ShardCursor& o) const {
    return std::tie(pass, shard, sample) < std::tie(o.pass, o.shard, o.sample);
  }
};

// What a reader's next batches depend on. Saved as {"pass", "shard", "sample"} (the cursor) plus,
// with a buffer, "shuffle_buffer", "picks" and "buffer" ([[pass, shard, sample], ...] in buffer
// order); a state without "shuffle_buffer" (saved before the key existed, or with 0) has no buffer.
struct ReaderState {
  ShardCursor cursor;
  int64_t shuffle_buffer = 0;       // the group's buffer size when saved
  int64_t picks = 0;                // numbers drawn by the buffer's rng
  std::vector<ShardCursor> buffer;  // the buffered samples' positions, in buffer order
};
void to_json(nlohmann::json& j, const ReaderState& s);
void from_json(const nlohmann::json& j, ReaderState& s);

// One batch's worth of a reader: the usable samples, what was skipped (per dataset name) and where
// the reader stands after it.
struct ShardBatch {
  struct Bad {
    std::string dataset, file, reason;
  };
  std::vector<ValorSample> samples;
  std::vector<Bad> bad;
  std::map<std::string, int64_t> tried;
  ReaderState after;
};

class WebdatasetImages {
 public:
  // cb::Error at startup, naming the group: a pattern that matches no file, fewer shards than ranks.
  WebdatasetImages(const LoaderGroupSpec& group, const DataOptions& opts, int rank, int world_size, int64_t seed,
                   int64_t loader_index);
  ~WebdatasetImages();

  int64_t readers() const { return static_cast<int64_t>(readers_.size()); }
  int64_t shards() const { return shard_count_; }  // this rank's
  const std::vector<std::string>& dataset_names() const { return dataset_names_; }

  // The loader's batch `index` (reader index mod readers()): the reader's next `n` usable samples.
  // Waits until the reader's earlier batches are built. Unusable samples and unreadable shards are
  // skipped and returned in `bad`; cb::Error when 64 samples picked in a row are unusable, or two
  // passes over the shards give no sample at all.
  ShardBatch next_batch(int64_t index, int64_t n, ImageDecoder& decoder);
  // The readers' states before any batch.
  std::vector<ReaderState> initial_states() const;
  // Back to saved states (one per reader) with `batches` of the loader's batches handed out; no batch
  // may be in flight. Reads the buffered samples again; cb::Error naming the loader when a state
  // does not fit this group (another shuffle_buffer, a position past the shards) or a buffered
  // sample cannot be read again (the shards changed).
  void reset(const std::vector<ReaderState>& states, int64_t batches);

 private:
  struct Shard {
    std::string path;
    size_t dataset;
  };
  struct Reader;
  struct Buffered;
  std::vector<size_t> order(size_t reader, int64_t pass) const;
  // The reader's next raw sample in shard order, skipping (and reporting in `out`) unreadable shards;
  // `fruitless` counts the shards opened since the last sample read.
  Buffered pull(size_t reader, ShardBatch& out, size_t& fruitless);
  ReaderState state_of(const Reader& r) const;
  // The buffered samples of `saved` read again from their shards; the current shard left open when
  // it is one of them.
  void refill(size_t reader, const ReaderState& saved);
  ValorSample decode(const WebdatasetSample& raw, const std::string& where, ImageDecoder& decoder) const;

  std::string name_;
  std::vector<std::string> dataset_names_;
  VideoMapperOptions video_;
  int rank_;
  int64_t seed_, loader_index_, shard_count_ = 0;
  int64_t shuffle_buffer_;  // the group's shuffle_buffer (0: none)
  std::vector<std::unique_ptr<Reader>> readers_;
};

}  // namespace cb
