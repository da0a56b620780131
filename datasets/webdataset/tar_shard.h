// Webdataset tar shards (the LAVIS laion / cc_sbu image-text format): consecutive tar members that
// share a key (the member path up to the first '.' of its file name) form one sample, each member
// keyed by the rest of its name ("jpg", "json", "txt", ...). Read sequentially through libarchive,
// without extracting to disk.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct archive;

namespace cb {

struct WebdatasetSample {
  std::string key;
  std::map<std::string, std::vector<uint8_t>> members;  // extension -> bytes
};

class WebdatasetShardReader {
 public:
  explicit WebdatasetShardReader(const std::filesystem::path& shard);  // cb::Error if it cannot be opened
  ~WebdatasetShardReader();
  WebdatasetShardReader(const WebdatasetShardReader&) = delete;
  WebdatasetShardReader& operator=(const WebdatasetShardReader&) = delete;

  // The next sample, or nullopt at the end; cb::Error (naming the shard and the member) when the
  // archive is corrupt or truncated. Damage found while looking for more members of a sample ends the
  // sample: it is returned, and the error comes with the next call.
  std::optional<WebdatasetSample> next();

 private:
  bool read_member();  // into pending_; false at the end

  std::filesystem::path path_;
  archive* archive_ = nullptr;
  bool at_end_ = false;
  std::string deferred_error_;
  std::optional<std::pair<std::string, std::pair<std::string, std::vector<uint8_t>>>> pending_;  // key, (ext, bytes)
};

}  // namespace cb
