// TensorBoard event files without TensorFlow or protobuf (the original logs to wandb; LAVIS users asked
// for TensorBoard). One file per process under <output_dir>/tb/, in the format TensorBoard reads:
//
//   record = uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes
//            | data | uint32 masked CRC-32C of the data           (TFRecord framing)
//   data   = an Event proto: wall_time (1, double), step (2, int64), then either
//            file_version (3, "brain.Event:2", the first record) or summary (5, Summary)
//   Summary.value (1, repeated) = {tag (1, string), simple_value (2, float)}
//
// The protos are encoded by hand (four fields); masked CRC = ((crc >> 15) | (crc << 17)) + 0xa282ead8.
// A resumed run starts a new file next to the old ones; TensorBoard reads them as one run.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace cb {

// CRC-32C (Castagnoli), and its TFRecord mask.
uint32_t crc32c(const void* data, size_t n);
uint32_t masked_crc32c(const void* data, size_t n);

class TensorBoardWriter {
 public:
  // Creates `dir` and a new events.out.tfevents.<unix time>.<host>.<pid> file in it.
  explicit TensorBoardWriter(const std::filesystem::path& dir);
  // One scalar summary at `step` (written and flushed at once: a killed run keeps what it logged).
  void scalar(std::string_view tag, int64_t step, double value);
  const std::filesystem::path& path() const { return path_; }

 private:
  void write_record(const std::string& data);

  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace cb
