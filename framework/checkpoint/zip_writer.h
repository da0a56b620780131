// Writing the zip archives torch.save writes (caffe2's PyTorchStreamWriter): stored (uncompressed)
// records under one top-level folder, each record's data starting on a 64-byte boundary (padding in
// an extra field, as PyTorch pads, so readers may map tensors in place), CRC-32 of every record
// (miniz, PyTorch's reader, checks it). Archives of up to 4 GiB: larger ones need ZIP64 records,
// which this writer refuses rather than writes untested.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cb {

class AtomicFile;

// The CRC-32 of zip (polynomial 0xEDB88320), continued from `crc` (0 to start).
uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc = 0);

class ZipWriter {
 public:
  // Writes to a temporary next to `path`; finish() renames it into place (atomic_file.h).
  explicit ZipWriter(const std::filesystem::path& path);
  ~ZipWriter();  // without finish(): the temporary is discarded
  ZipWriter(const ZipWriter&) = delete;
  ZipWriter& operator=(const ZipWriter&) = delete;

  // One stored record named `name` (e.g. "archive/data/0").
  void add(const std::string& name, const void* data, size_t size);
  void add(const std::string& name, std::string_view text) { add(name, text.data(), text.size()); }
  // Writes the central directory and commits the file.
  void finish();

 private:
  struct Entry {
    std::string name;
    uint32_t crc = 0, size = 0, offset = 0;
  };
  void put(const void* data, size_t size);
  std::unique_ptr<AtomicFile> file_;
  std::string label_;
  uint64_t offset_ = 0;
  std::vector<Entry> entries_;
};

}  // namespace cb
