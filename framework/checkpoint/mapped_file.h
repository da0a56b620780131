// Read-only memory map of a whole file, shared by every tensor that views into it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

namespace cb {

class MappedFile {
 public:
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

  // Gives back the resident pages that lie wholly inside [p, p + n) when that range is within a live
  // mapping of this class (MADV_DONTNEED: the file's pages stay in the page cache and are read again
  // if touched); any other memory is left alone. A loader that copies tensors out of a mapped shard
  // calls it after each slice, so its peak is the model plus one slice, not plus one shard.
  static void release_pages(const void* p, size_t n);

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace cb
