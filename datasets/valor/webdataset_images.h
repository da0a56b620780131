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
// A reader's position (ShardCursor: pass, shard in that pass's order, samples taken from the shard)
// is what the MetaLoader's state saves; restoring reopens the shard and skips the samples taken.
// Samples are not shuffled within a shard (no shuffle buffer), so that position is all there is.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/media/image_decode.h"
#include "datasets/valor/data_options.h"
#include "datasets/valor/valor_dataset.h"
#include "datasets/webdataset/tar_shard.h"

namespace cb {

struct ShardCursor {
  int64_t pass = 0;    // passes over the reader's shards completed
  int64_t shard = 0;   // position in this pass's shard order
  int64_t sample = 0;  // samples (usable or not) taken from that shard
};
void to_json(nlohmann::json& j, const ShardCursor& c);
void from_json(const nlohmann::json& j, ShardCursor& c);

// One batch's worth of a reader: the usable samples, what was skipped (per dataset name) and where
// the reader stands after it.
struct ShardBatch {
  struct Bad {
    std::string dataset, file, reason;
  };
  std::vector<ValorSample> samples;
  std::vector<Bad> bad;
  std::map<std::string, int64_t> tried;
  ShardCursor after;
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
  // skipped and returned in `bad`; cb::Error when 64 samples in a row, or a whole pass's shards, give
  // nothing usable.
  ShardBatch next_batch(int64_t index, int64_t n, ImageDecoder& decoder);
  // Back to saved positions (one per reader) with `batches` of the loader's batches handed out; no
  // batch may be in flight.
  void reset(const std::vector<ShardCursor>& cursors, int64_t batches);

 private:
  struct Shard {
    std::string path;
    size_t dataset;
  };
  struct Reader;

  std::vector<size_t> order(size_t reader, int64_t pass) const;
  ValorSample decode(const WebdatasetSample& raw, const std::string& where, ImageDecoder& decoder) const;

  std::string name_;
  std::vector<std::string> dataset_names_;
  VideoMapperOptions video_;
  int rank_;
  int64_t seed_, loader_index_, shard_count_ = 0;
  std::vector<std::unique_ptr<Reader>> readers_;
};

}  // namespace cb
