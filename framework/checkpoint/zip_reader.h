// Bounds-checked reader of the zip archives torch.save writes: stored (uncompressed) records,
// ZIP64 end-of-central-directory records, one top-level folder. Record data is viewed in place
// (zero-copy) in the caller's buffer or memory-mapped file. Every offset and length read from the
// archive is checked against the buffer before use, so garbage yields a cb::Error, never a wild read
// or an allocation sized by the garbage.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "framework/checkpoint/mapped_file.h"

namespace cb {

// A read-only byte range inside the archive.
struct ByteView {
  const uint8_t* ptr = nullptr;
  size_t len = 0;
  const uint8_t* data() const { return ptr; }
  size_t size() const { return len; }
  const uint8_t* begin() const { return ptr; }
  const uint8_t* end() const { return ptr + len; }
};

struct ZipRecord {
  std::string name;
  uint16_t method = 0;  // 0 = stored; anything else is refused when the record is read
  uint64_t compressed_size = 0, size = 0;
  uint64_t data_offset = 0;  // first byte of the record's data in the archive
};

class ZipReader {
 public:
  // Maps `path`; records stay valid while any view from data() keeps `file()` alive.
  explicit ZipReader(const std::filesystem::path& path);
  explicit ZipReader(std::shared_ptr<const MappedFile> file);
  // An archive held by the caller (fuzzing, tests); `label` names it in errors.
  ZipReader(const uint8_t* data, size_t size, std::string label);

  const std::vector<ZipRecord>& records() const { return records_; }
  const ZipRecord* find(std::string_view name) const;  // nullptr if absent
  // The record's bytes inside the archive; throws (naming the record) if it is compressed.
  ByteView data(const ZipRecord& r) const;
  const std::string& label() const { return label_; }
  const std::shared_ptr<const MappedFile>& file() const { return file_; }  // null for caller buffers

 private:
  void parse();
  std::shared_ptr<const MappedFile> file_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string label_;
  std::vector<ZipRecord> records_;
};

bool looks_like_zip(const uint8_t* data, size_t size);  // local-file-header magic "PK\3\4"

}  // namespace cb
