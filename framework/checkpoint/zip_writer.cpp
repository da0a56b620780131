#include "framework/checkpoint/zip_writer.h"

#include <array>
#include <limits>

#include "framework/checkpoint/atomic_file.h"
#include "framework/error.h"

namespace cb {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEocdSig = 0x06054b50;
constexpr size_t kLocalSize = 30, kAlign = 64;
constexpr uint16_t kPadId = 0x4246;      // "FB": the extra field PyTorch pads with
constexpr uint16_t kVersion = 20;        // 2.0: stored records, no ZIP64
constexpr uint16_t kDosDate = 0x0021;    // 1980-01-01: no time stamp, so equal inputs give equal files
constexpr uint64_t kLimit = 0xFFFFFFFF;  // beyond: ZIP64

void le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>(v >> (8 * i) & 0xFF));
}

const std::array<uint32_t, 256>& crc_table() {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  return table;
}

}  // namespace

uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc) {
  const auto& t = crc_table();
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = t[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

ZipWriter::ZipWriter(const std::filesystem::path& path)
    : file_(std::make_unique<AtomicFile>(path)), label_(path.string()) {}

ZipWriter::~ZipWriter() = default;

void ZipWriter::put(const void* data, size_t size) {
  file_->write(data, size);
  offset_ += size;
}

void ZipWriter::add(const std::string& name, const void* data, size_t size) {
  if (name.size() > std::numeric_limits<uint16_t>::max()) fail("{}: record name too long: {}", label_, name);
  if (size > kLimit || offset_ + kLocalSize + name.size() + 4 + kAlign + size > kLimit)
    fail("{}: record {} ({} bytes) would take the archive past 4 GiB, which needs ZIP64 records (not written)", label_,
         name, size);
  const auto* bytes = static_cast<const uint8_t*>(data);
  const Entry e{name, crc32(bytes, size), static_cast<uint32_t>(size), static_cast<uint32_t>(offset_)};

  // Extra field: id, length, zero bytes, so that the data starts on a 64-byte boundary.
  const uint64_t unpadded = offset_ + kLocalSize + name.size();
  const size_t pad = (kAlign - (unpadded + 4) % kAlign) % kAlign;
  const size_t extra = unpadded % kAlign == 0 ? 0 : 4 + pad;
  std::string h;
  le(h, kLocalSig, 4);
  le(h, kVersion, 2);
  le(h, 0, 2);  // flags
  le(h, 0, 2);  // method: stored
  le(h, 0, 2);  // time
  le(h, kDosDate, 2);
  le(h, e.crc, 4);
  le(h, size, 4);  // compressed
  le(h, size, 4);  // uncompressed
  le(h, name.size(), 2);
  le(h, extra, 2);
  h += name;
  if (extra) {
    le(h, kPadId, 2);
    le(h, pad, 2);
    h.append(pad, '\0');
  }
  put(h.data(), h.size());
  put(bytes, size);
  entries_.push_back(e);
}

void ZipWriter::finish() {
  const uint64_t cd_offset = offset_;
  std::string cd;
  for (const Entry& e : entries_) {
    le(cd, kCentralSig, 4);
    le(cd, kVersion, 2);  // made by
    le(cd, kVersion, 2);  // needed
    le(cd, 0, 2);         // flags
    le(cd, 0, 2);         // method
    le(cd, 0, 2);         // time
    le(cd, kDosDate, 2);
    le(cd, e.crc, 4);
    le(cd, e.size, 4);
    le(cd, e.size, 4);
    le(cd, e.name.size(), 2);
    le(cd, 0, 2);  // extra
    le(cd, 0, 2);  // comment
    le(cd, 0, 2);  // disk
    le(cd, 0, 2);  // internal attributes
    le(cd, 0, 4);  // external attributes
    le(cd, e.offset, 4);
    cd += e.name;
  }
  if (entries_.size() > 0xFFFF || cd_offset + cd.size() > kLimit)
    fail("{}: {} records / {} bytes need ZIP64 records (not written)", label_, entries_.size(), cd_offset + cd.size());
  const uint64_t cd_size = cd.size();
  le(cd, kEocdSig, 4);
  le(cd, 0, 2);  // this disk
  le(cd, 0, 2);  // disk of the directory
  le(cd, entries_.size(), 2);
  le(cd, entries_.size(), 2);
  le(cd, cd_size, 4);
  le(cd, cd_offset, 4);
  le(cd, 0, 2);  // comment
  put(cd.data(), cd.size());
  file_->commit();
}

}  // namespace cb
