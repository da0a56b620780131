// Atomic file replacement: write a temporary in the same directory, fsync, rename over the target,
// fsync the directory. A crash at any point leaves either the old file or the complete new one.
#pragma once
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

namespace cb {

class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path target);
  ~AtomicFile();  // discards the temporary unless commit() ran
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void commit();
  const std::filesystem::path& target() const { return target_; }

 private:
  std::filesystem::path target_, tmp_;
  int fd_ = -1;
};

void atomic_write_file(const std::filesystem::path& target, std::string_view contents);

}  // namespace cb
