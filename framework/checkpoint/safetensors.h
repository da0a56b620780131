// safetensors: u64 LE header length, JSON header {name: {dtype, shape, data_offsets}, __metadata__},
// raw LE data. Entries are listed in data order. Reading maps the file; tensors alias the mapping (zero-copy) when
// their offset is aligned for their dtype, otherwise they are copied.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "framework/checkpoint/mapped_file.h"
#include "framework/checkpoint/state_dict.h"

namespace cb {

struct SafetensorsEntry {
  std::string name;
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  size_t begin = 0, end = 0;  // byte offsets into the data section
};

class SafetensorsFile {
 public:
  // Validates the whole header (length, JSON, dtypes, shapes, offsets); throws cb::Error naming the file.
  explicit SafetensorsFile(const std::filesystem::path& path);
  // Parses an in-memory buffer (fuzzing, tests). `label` names it in errors.
  static void validate_buffer(const uint8_t* data, size_t size, const std::string& label);

  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  torch::Tensor tensor(const std::string& name) const;  // throws if absent
  StateDict tensors() const;                            // all, in header order
  const std::filesystem::path& path() const { return file_->path(); }
  size_t header_size() const { return header_len_; }

 private:
  std::shared_ptr<const MappedFile> file_;
  size_t header_len_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (made contiguous, CPU) in the given order, atomically.
void save_safetensors(const std::filesystem::path& path, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata = {});

std::string safetensors_dtype_name(torch::ScalarType t);

}  // namespace cb
