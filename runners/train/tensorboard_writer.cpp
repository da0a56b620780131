#include "runners/train/tensorboard_writer.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>

#include "framework/error.h"

namespace cb {
namespace {

constexpr std::array<uint32_t, 256> kCrc32cTable = [] {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected Castagnoli polynomial
    t[i] = c;
  }
  return t;
}();

// Protobuf wire format: key = field << 3 | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
void put_varint(std::string& out, uint64_t v) {
  for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>(v | 0x80));
  out.push_back(static_cast<char>(v));
}
void put_key(std::string& out, int field, int wire_type) {
  put_varint(out, static_cast<uint64_t>(field << 3 | wire_type));
}
template <typename T>
void put_fixed(std::string& out, T v) {  // little-endian on the x86-64 and ARM64 targets
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}
void put_bytes(std::string& out, int field, std::string_view s) {
  put_key(out, field, 2);
  put_varint(out, s.size());
  out.append(s);
}

// Event{wall_time, step} with the rest of the message already encoded.
std::string event(int64_t step, std::string_view rest) {
  std::string e;
  put_key(e, 1, 1);
  put_fixed(e, std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  put_key(e, 2, 0);
  put_varint(e, static_cast<uint64_t>(step));
  e.append(rest);
  return e;
}

std::string hostname() {
  char h[256] = {};
  if (::gethostname(h, sizeof(h) - 1) != 0 || !*h) return "localhost";
  return h;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = kCrc32cTable[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("run.tensorboard: cannot create '{}': {}", dir.string(), ec.message());
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  path_ = dir / fmt::format("events.out.tfevents.{}.{}.{}",
                            std::chrono::duration_cast<std::chrono::seconds>(now).count(), hostname(), ::getpid());
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) fail("run.tensorboard: cannot open '{}' for writing", path_.string());
  std::string version;
  put_bytes(version, 3, "brain.Event:2");
  write_record(event(0, version));
}

void TensorBoardWriter::scalar(std::string_view tag, int64_t step, double value) {
  std::string v;  // Summary.Value
  put_bytes(v, 1, tag);
  put_key(v, 2, 5);
  put_fixed(v, static_cast<float>(value));
  std::string summary;
  put_bytes(summary, 1, v);
  std::string rest;
  put_bytes(rest, 5, summary);
  write_record(event(step, rest));
}

void TensorBoardWriter::write_record(const std::string& data) {
  std::string r;
  put_fixed(r, static_cast<uint64_t>(data.size()));
  put_fixed(r, masked_crc32c(r.data(), 8));
  r.append(data);
  put_fixed(r, masked_crc32c(data.data(), data.size()));
  out_.write(r.data(), static_cast<std::streamsize>(r.size()));
  out_.flush();
  if (!out_) fail("run.tensorboard: writing '{}' failed", path_.string());
}

}  // namespace cb
