#include "framework/checkpoint/zip_reader.h"

#include <algorithm>
#include <cstring>

#include "framework/error.h"

namespace cb {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEocdSig = 0x06054b50,
                   kZip64LocatorSig = 0x07064b50, kZip64EocdSig = 0x06064b50;
constexpr size_t kEocdSize = 22, kZip64LocatorSize = 20, kZip64EocdSize = 56, kCentralSize = 46, kLocalSize = 30;

// Little-endian field reads; callers have checked that [p, p + sizeof) is inside the buffer.
uint16_t u16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
uint32_t u32(const uint8_t* p) { return uint32_t(u16(p)) | uint32_t(u16(p + 2)) << 16; }
uint64_t u64(const uint8_t* p) { return uint64_t(u32(p)) | uint64_t(u32(p + 4)) << 32; }

// [off, off + len) lies inside [0, limit) without overflow.
bool inside(uint64_t off, uint64_t len, uint64_t limit) { return off <= limit && len <= limit - off; }

}  // namespace

bool looks_like_zip(const uint8_t* data, size_t size) { return size >= 4 && u32(data) == kLocalSig; }

ZipReader::ZipReader(const std::filesystem::path& path) : ZipReader(MappedFile::open(path)) {}

ZipReader::ZipReader(std::shared_ptr<const MappedFile> file)
    : file_(std::move(file)), data_(file_->data()), size_(file_->size()), label_(file_->path().string()) {
  parse();
}

ZipReader::ZipReader(const uint8_t* data, size_t size, std::string label)
    : data_(data), size_(size), label_(std::move(label)) {
  parse();
}

void ZipReader::parse() {
  // The end-of-central-directory record sits in the last 22 + 65535 (max comment) bytes.
  if (size_ < kEocdSize) fail("{}: not a zip archive or truncated: end of central directory not found", label_);
  size_t eocd = size_;  // not found
  const size_t lowest = size_ - kEocdSize > 0xFFFF ? size_ - kEocdSize - 0xFFFF : 0;
  for (size_t pos = size_ - kEocdSize + 1; pos-- > lowest;) {
    if (u32(data_ + pos) == kEocdSig && pos + kEocdSize + u16(data_ + pos + 20) <= size_) {
      eocd = pos;
      break;
    }
  }
  if (eocd == size_) fail("{}: not a zip archive or truncated: end of central directory not found", label_);
  const uint8_t* e = data_ + eocd;
  if (u16(e + 4) != 0 || u16(e + 6) != 0) fail("{}: multi-disk zip archives are not supported", label_);
  uint64_t count = u16(e + 10), cd_size = u32(e + 12), cd_offset = u32(e + 16);
  uint64_t cd_limit = eocd;  // the directory ends before the record that describes it

  // torch.save always writes ZIP64 records; they carry the real sizes for archives over 4 GiB.
  if (eocd >= kZip64LocatorSize && u32(e - kZip64LocatorSize) == kZip64LocatorSig) {
    const uint64_t z = u64(e - kZip64LocatorSize + 8);
    if (!inside(z, kZip64EocdSize, eocd - kZip64LocatorSize) || u32(data_ + z) != kZip64EocdSig)
      fail("{}: corrupt zip archive: ZIP64 end of central directory record not found at offset {}", label_, z);
    const uint8_t* z64 = data_ + z;
    count = u64(z64 + 32);
    cd_size = u64(z64 + 40);
    cd_offset = u64(z64 + 48);
    cd_limit = z;
  }
  if (!inside(cd_offset, cd_size, cd_limit))
    fail(
        "{}: corrupt zip central directory: it claims bytes [{}, +{}) but the archive has {} before its end record "
        "(truncated?)",
        label_, cd_offset, cd_size, cd_limit);
  if (count > cd_size / kCentralSize)
    fail("{}: corrupt zip central directory: {} entries cannot fit in {} bytes", label_, count, cd_size);

  records_.reserve(size_t(count));
  const uint8_t* cd = data_ + cd_offset;
  uint64_t pos = 0;
  for (uint64_t i = 0; i < count; ++i) {
    if (!inside(pos, kCentralSize, cd_size) || u32(cd + pos) != kCentralSig)
      fail("{}: corrupt zip central directory: entry {} at offset {} has no valid header", label_, i, cd_offset + pos);
    const uint8_t* h = cd + pos;
    const uint64_t name_len = u16(h + 28), extra_len = u16(h + 30), comment_len = u16(h + 32);
    if (!inside(pos + kCentralSize, name_len + extra_len + comment_len, cd_size))
      fail("{}: corrupt zip central directory: entry {} runs past the end of the directory", label_, i);
    ZipRecord r;
    r.name.assign(reinterpret_cast<const char*>(h + kCentralSize), size_t(name_len));
    r.method = u16(h + 10);
    r.compressed_size = u32(h + 20);
    r.size = u32(h + 24);
    uint64_t local = u32(h + 42);
    // ZIP64 extended information: only the fields saturated in the fixed header are present, in order.
    const uint8_t* x = h + kCentralSize + name_len;
    const uint8_t* x_end = x + extra_len;
    while (x_end - x >= 4) {
      const uint16_t id = u16(x), len = u16(x + 2);
      if (len > x_end - x - 4) fail("{}: corrupt zip central directory: bad extra field in '{}'", label_, r.name);
      if (id == 0x0001) {
        const uint8_t* f = x + 4;
        auto take = [&](uint64_t& v) {
          if (f + 8 > x + 4 + len) fail("{}: corrupt zip central directory: short ZIP64 field in '{}'", label_, r.name);
          v = u64(f);
          f += 8;
        };
        if (r.size == 0xFFFFFFFF) take(r.size);
        if (r.compressed_size == 0xFFFFFFFF) take(r.compressed_size);
        if (local == 0xFFFFFFFF) take(local);
      }
      x += 4 + len;
    }
    if (r.method == 0 && r.compressed_size != r.size)
      fail("{}: corrupt zip central directory: stored record '{}' has sizes {} and {}", label_, r.name,
           r.compressed_size, r.size);
    if (!inside(local, kLocalSize, cd_offset) || u32(data_ + local) != kLocalSig)
      fail("{}: corrupt zip central directory: record '{}' points to offset {}, which holds no local header", label_,
           r.name, local);
    const uint8_t* l = data_ + local;
    r.data_offset = local + kLocalSize + u16(l + 26) + u16(l + 28);
    if (!inside(r.data_offset, r.compressed_size, cd_offset))
      fail("{}: corrupt zip archive: data of record '{}' ([{}, +{})) runs into the central directory (truncated?)",
           label_, r.name, r.data_offset, r.compressed_size);
    records_.push_back(std::move(r));
    pos += kCentralSize + name_len + extra_len + comment_len;
  }
}

const ZipRecord* ZipReader::find(std::string_view name) const {
  auto it = std::find_if(records_.begin(), records_.end(), [&](const ZipRecord& r) { return r.name == name; });
  return it == records_.end() ? nullptr : &*it;
}

ByteView ZipReader::data(const ZipRecord& r) const {
  if (r.method != 0)
    fail("{}: zip record '{}' is compressed (method {}); torch.save archives store records uncompressed", label_,
         r.name, r.method);
  return {data_ + r.data_offset, size_t(r.size)};
}

}  // namespace cb
