#include "datasets/webdataset/tar_shard.h"

#include <archive.h>
#include <archive_entry.h>

#include "framework/error.h"

namespace cb {

WebdatasetShardReader::WebdatasetShardReader(const std::filesystem::path& shard) : path_(shard) {
  archive_ = archive_read_new();
  archive_read_support_format_tar(archive_);
  if (archive_read_open_filename(archive_, path_.c_str(), 1 << 16) != ARCHIVE_OK) {
    std::string why = archive_error_string(archive_) ? archive_error_string(archive_) : "unknown error";
    archive_read_free(archive_);
    archive_ = nullptr;
    fail("webdataset shard {}: {}", path_.string(), why);
  }
}

WebdatasetShardReader::~WebdatasetShardReader() {
  if (archive_) archive_read_free(archive_);
}

bool WebdatasetShardReader::read_member() {
  while (!at_end_) {
    archive_entry* entry = nullptr;
    const int rc = archive_read_next_header(archive_, &entry);
    if (rc == ARCHIVE_EOF) break;
    if (rc < ARCHIVE_WARN) fail("webdataset shard {}: {}", path_.string(), archive_error_string(archive_));
    if (archive_entry_filetype(entry) != AE_IFREG) continue;
    const std::string name = archive_entry_pathname(entry);
    const size_t slash = name.rfind('/');
    const size_t dot = name.find('.', slash == std::string::npos ? 0 : slash + 1);
    if (dot == std::string::npos) continue;  // webdataset ignores members without an extension
    std::vector<uint8_t> bytes;
    const int64_t size = archive_entry_size(entry);
    if (size > 0) bytes.reserve(static_cast<size_t>(size));
    uint8_t buffer[1 << 16];
    for (la_ssize_t n; (n = archive_read_data(archive_, buffer, sizeof buffer)) != 0;) {
      if (n < 0) fail("webdataset shard {}: member {}: {}", path_.string(), name, archive_error_string(archive_));
      bytes.insert(bytes.end(), buffer, buffer + n);
    }
    pending_.emplace(name.substr(0, dot), std::make_pair(name.substr(dot + 1), std::move(bytes)));
    return true;
  }
  at_end_ = true;  // libarchive must not be asked for another header after EOF
  return false;
}

std::optional<WebdatasetSample> WebdatasetShardReader::next() {
  if (!deferred_error_.empty()) fail("{}", deferred_error_);
  if (!pending_ && !read_member()) return std::nullopt;
  WebdatasetSample sample;
  sample.key = pending_->first;
  try {
    do {
      sample.members[pending_->second.first] = std::move(pending_->second.second);
      pending_.reset();
    } while (read_member() && pending_->first == sample.key);
  } catch (const Error& e) {
    // Damage while looking for more members: the sample ends with those read, the error comes next call.
    deferred_error_ = e.what();
    at_end_ = true;
  }
  return sample;
}

}  // namespace cb
