// safetensors: u64 LE header length, JSON header {name: {dtype, shape, data_offsets}, __metadata__},
// raw LE data. Entries are listed in data order. Reading maps the file; tensors alias the mapping (zero-copy) when
// their offset is aligned for their dtype, otherwise they are copied.
//
// Packed (block-quantized) weights, framework/kernels/weight_format.h: a q8_0/q4_0 weight W [rows, cols]
// is stored as a U8 tensor [rows, row_bytes] under the weight's own name, and
// `__metadata__["chatbridge.weight_format"]` (a string, as safetensors metadata must be) holds the JSON
// object {name: {"format": "q4_0", "shape": [rows, cols]}, ...} naming every packed tensor of the file.
// 16-bit weights need no tag: they are plain BF16/F16 tensors. docs/checkpoints.md describes the layout.
//
// For a model loader: SafetensorsFile::stored(name) gives a StoredTensor; when `packed` is set, hand
// `data` (the mmap-backed uint8 tensor) to kernels::packed_weight_from_storage(data, *packed, rows, cols):
// the weight then stays the file's mapping, no copy.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "framework/checkpoint/atomic_file.h"
#include "framework/checkpoint/mapped_file.h"
#include "framework/checkpoint/state_dict.h"
#include "framework/kernels/weight_format.h"

namespace cb {

// The __metadata__ key of the packed-weight tags.
inline constexpr const char* kWeightFormatKey = "chatbridge.weight_format";

struct SafetensorsEntry {
  std::string name;
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  size_t begin = 0, end = 0;  // byte offsets into the data section
};

// A tensor as a file stores it.
struct StoredTensor {
  torch::Tensor data;                           // the dense tensor, or a packed weight's uint8 [rows, row_bytes]
  std::optional<kernels::WeightFormat> packed;  // q8_0 / q4_0 when `data` packs a weight
  int64_t rows = 0, cols = 0;                   // the packed weight's logical shape [out, in]; 0 when dense

  // The packed weight (fails when the tensor is dense).
  kernels::PackedWeight packed_weight() const;
};

// Packed weights' tags (format, rows, cols; no data) by tensor name.
using PackedTags = std::map<std::string, StoredTensor>;

class SafetensorsFile {
 public:
  // Validates the whole header (length, JSON, dtypes, shapes, offsets, packed-weight tags); throws
  // cb::Error naming the file.
  explicit SafetensorsFile(const std::filesystem::path& path);
  // Parses an in-memory buffer (fuzzing, tests). `label` names it in errors.
  static void validate_buffer(const uint8_t* data, size_t size, const std::string& label);

  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const PackedTags& packed_tags() const { return packed_; }
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  torch::Tensor tensor(const std::string& name) const;  // throws if absent
  StoredTensor stored(const std::string& name) const;   // tensor(name) with its packed-weight tag
  StateDict tensors() const;                            // all, in header order (packed ones as uint8)
  const std::filesystem::path& path() const { return file_->path(); }
  size_t header_size() const { return header_len_; }
  const std::shared_ptr<const MappedFile>& mapping() const { return file_; }

 private:
  std::shared_ptr<const MappedFile> file_;
  size_t header_len_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  PackedTags packed_;
};

// What one tensor of a file will be, before its data exists (SafetensorsWriter's plan).
struct TensorSpec {
  std::string name;
  torch::ScalarType dtype = torch::kFloat;  // as stored: kByte for a packed weight
  std::vector<int64_t> shape;               // as stored: [rows, row_bytes] for a packed weight
  std::optional<kernels::WeightFormat> packed;
  int64_t cols = 0;  // a packed weight's input features

  static TensorSpec dense(std::string name, torch::ScalarType dtype, std::vector<int64_t> shape);
  static TensorSpec packed_weight(std::string name, kernels::WeightFormat format, int64_t rows, int64_t cols);
  size_t bytes() const;
};

// Writes a file whose tensors are planned up front, then given one at a time in plan order, so a
// file larger than memory is written holding one tensor (chatbridge-convert --quantize, the
// real-size bench). Atomic: nothing replaces `path` unless commit() runs after the last tensor.
class SafetensorsWriter {
 public:
  SafetensorsWriter(const std::filesystem::path& path, std::vector<TensorSpec> plan,
                    std::map<std::string, std::string> metadata = {});
  // The next tensor of the plan: its name, dtype and shape must be the plan's.
  void write(const std::string& name, const torch::Tensor& t);
  void commit();  // fails unless every planned tensor was written
  uint64_t data_bytes() const { return data_bytes_; }

 private:
  AtomicFile file_;
  std::vector<TensorSpec> plan_;
  size_t next_ = 0;
  uint64_t data_bytes_ = 0;
};

// Writes tensors (made contiguous, CPU) in the given order, atomically. Those `packed` names are
// written as packed weights, tagged (a converted checkpoint keeps them identifiable).
void save_safetensors(const std::filesystem::path& path, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata = {}, const PackedTags& packed = {});

std::string safetensors_dtype_name(torch::ScalarType t);

}  // namespace cb
