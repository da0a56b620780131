// BMP -> RGB as Pillow 9.4's BmpImagePlugin + convert('RGB'), damaged files included (checked file by
// file against Pillow by tests/datasets/media/make_pil_reference.py: edge cases and random mutants). The
// headers are read as BmpImagePlugin._bitmap reads them, which decides most of what PIL does:
//   * refused as PIL refuses: info headers other than 12/40/64/108/124 bytes, depths other than
//     1/4/8/16/24/32, compression over 3, bit-field masks outside PIL's list, palette images of more
//     than 65536 colours or with more than 256 palette entries in the file;
//   * where the pixels start: bfOffBits, but the end of the palette when bfOffBits points at the end of
//     the info header (palette images) or is 0; file size, image size and planes fields are ignored;
//   * how much must be there: every row but the last with its padding, the last without (PIL's raw
//     decoder reads no more); less is "image file is truncated";
//   * 1/4/8-bit rows are unpacked here, as PIL's raw modes take them: indices through the palette
//     (entries past the file's a gray ramp), but a gray palette ((i, i, i) for every entry) makes PIL
//     read a byte a pixel and a black-and-white 2-entry palette a bit a pixel, whatever the depth;
//   * RLE8 / RLE4, chosen by the compression field alone, are decoded here with BmpRleDecoder's rules:
//     runs clipped at the row's end, absolute runs not, RLE4 absolute runs of an odd length losing their
//     last pixel, word alignment by file position, a delta's two bytes read after two skipped ones (as
//     9.4 does), the data ending before the last pixel an error ("not enough image data");
//   * 16/24/32-bit rows go through FFmpeg's bmp decoder (libavcodec, no demuxer), handed a copy with the
//     pixels where PIL takes them and the fields it checks made true, and are widened as PIL's unpackers
//     do (5-bit x -> x * 255 / 31, 6-bit x * 255 / 63, where FFmpeg's converters replicate high bits).
#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <vector>

#include "datasets/media/ffmpeg_io.h"
#include "datasets/media/image_formats.h"
#include "framework/error.h"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace cb::media {

namespace {

uint32_t le16(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; }
uint32_t le32(const uint8_t* p) { return le16(p) | le16(p + 2) << 16; }

}  // namespace

bool is_bmp(const uint8_t* d, size_t n) { return n >= 2 && d[0] == 'B' && d[1] == 'M'; }

namespace {

// BmpRleDecoder.decode: the RLE stream from `offset` -> w * h palette indices, rows bottom-up (top-down
// when `top_down`), as set_as_raw lays them out.
std::vector<uint8_t> decode_rle(const uint8_t* data, size_t size, size_t offset, int64_t w, int64_t h, bool rle4,
                                const std::string& name) {
  const size_t total = size_t(w * h);
  std::vector<uint8_t> out;
  out.reserve(total);
  size_t pos = offset;  // may pass the end, as a file position may
  auto left = [&] { return pos < size ? size - pos : 0; };
  int64_t x = 0;
  while (out.size() < total) {
    if (left() < 2) break;
    const uint8_t count = data[pos], value = data[pos + 1];
    pos += 2;
    if (count > 0) {  // a run, clipped at the end of the row
      const int64_t n = std::min<int64_t>(count, std::max<int64_t>(0, w - x));
      for (int64_t i = 0; i < n; ++i) out.push_back(rle4 ? uint8_t(i % 2 == 0 ? value >> 4 : value & 15) : value);
      x += n;
    } else if (value == 0) {  // end of line: zeros up to a whole row
      while (out.size() % size_t(w) != 0) out.push_back(0);
      x = 0;
    } else if (value == 1) {  // end of bitmap
      break;
    } else if (value == 2) {  // delta: PIL 9.4 reads two bytes, then right and up from the next two
      if (left() < 2) break;
      pos += 2;
      if (left() < 2) fail("image '{}': corrupt BMP: the RLE data ends inside a delta", name);
      out.insert(out.end(), size_t(data[pos]) + size_t(data[pos + 1]) * size_t(w), 0);
      pos += 2;
      x = int64_t(out.size() % size_t(w));
    } else {  // absolute run of `value` pixels (RLE4: value / 2 bytes), not clipped
      const size_t want = rle4 ? value / 2 : value;
      const size_t got = std::min(want, left());
      for (size_t i = 0; i < got; ++i) {
        if (rle4) {
          out.push_back(uint8_t(data[pos + i] >> 4)), out.push_back(uint8_t(data[pos + i] & 15));
        } else {
          out.push_back(data[pos + i]);
        }
      }
      pos += got;
      if (got < want) break;
      x += value;
      if (pos % 2 != 0) ++pos;  // word alignment, by file position
    }
  }
  if (out.size() < total)
    fail("image '{}': truncated BMP data (the RLE data gives {} of {} pixels: not enough image data)", name, out.size(),
         total);
  out.resize(total);
  return out;
}

}  // namespace

torch::Tensor decode_bmp(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  // BITMAPFILEHEADER (14 bytes), then an info header: 12 bytes (OS/2 core) or 40, 64, 108, 124.
  if (size < 18 || size < 14 + le32(data + 14)) fail("image '{}': truncated BMP data (incomplete header)", name);
  const uint32_t header = le32(data + 14);
  int64_t offset = le32(data + 10);
  int64_t w = 0, h = 0, bits = 0, compression = 0, colors = 0;
  bool top_down = false;
  if (header == 12) {
    w = le16(data + 18), h = le16(data + 20), bits = le16(data + 24);
  } else if (header == 40 || header == 64 || header == 108 || header == 124) {
    w = int32_t(le32(data + 18)), h = int32_t(le32(data + 22)), bits = le16(data + 28);
    compression = le32(data + 30), colors = le32(data + 46);
    top_down = data[25] == 0xFF;  // PIL: the height's top byte 0xFF means rows stored top-down
  } else {
    fail("image '{}': corrupt BMP: info header of {} bytes (PIL reads 12, 40, 64, 108 and 124)", name, header);
  }
  h = h < 0 ? -h : h;
  check_image_pixels(w, h, max_pixels, name);
  if (bits != 1 && bits != 4 && bits != 8 && bits != 16 && bits != 24 && bits != 32)
    fail("image '{}': unsupported BMP pixel depth ({} bits)", name, bits);
  if (compression > 3) fail("image '{}': unsupported BMP compression ({})", name, compression);
  if (compression == 3) {  // PIL's bit-field layouts; the 40-byte header has no alpha mask
    const size_t at = 14 + 40;
    if (size < at + 12) fail("image '{}': truncated BMP data (bit-field masks)", name);
    const uint32_t r = le32(data + at), g = le32(data + at + 4), b = le32(data + at + 8);
    const uint32_t a = header >= 56 && size >= at + 16 ? le32(data + at + 12) : 0;
    using M = std::array<uint32_t, 4>;
    const M m{r, g, b, a};
    const bool ok =
        bits == 32   ? (m == M{0xFF0000, 0xFF00, 0xFF, 0} || m == M{0xFF000000, 0xFF0000, 0xFF00, 0} ||
                      m == M{0xFF000000, 0xFF0000, 0xFF00, 0xFF} || m == M{0xFF, 0xFF00, 0xFF0000, 0xFF000000} ||
                      m == M{0xFF0000, 0xFF00, 0xFF, 0xFF000000} || m == M{0, 0, 0, 0})
        : bits == 24 ? (r == 0xFF0000 && g == 0xFF00 && b == 0xFF)
        : bits == 16 ? ((r == 0xF800 && g == 0x7E0 && b == 0x1F) || (r == 0x7C00 && g == 0x3E0 && b == 0x1F))
                     : false;
    if (!ok)
      fail("image '{}': unsupported BMP bit-field layout ({} bits, masks {:#x} {:#x} {:#x} {:#x})", name, bits, r, g, b,
           a);
  }
  if (colors == 0) colors = int64_t(1) << std::min<int64_t>(bits, 40);
  const int64_t pad = header == 12 ? 3 : 4;  // bytes per palette entry
  size_t palette_at = 14 + header;
  if (compression == 3 && header == 40) palette_at += 12;  // the three masks follow a 40-byte header
  if (offset == 14 + int64_t(header) && bits <= 8) offset += 4 * colors;

  // Palette images: PIL's palette checks; `palette` gets the RGB of the entries the file holds.
  std::array<uint8_t, 256 * 3> palette;
  for (int i = 0; i < 256; ++i) palette[3 * i] = palette[3 * i + 1] = palette[3 * i + 2] = uint8_t(i);
  bool mode_1 = false;           // PIL's mode "1": two entries, black then white
  bool palette_is_gray = false;  // PIL's mode "L": entry i is (i, i, i) for every entry
  if (bits <= 8) {
    if (colors <= 0 || colors > 65536) fail("image '{}': corrupt BMP: palette of {} colours", name, colors);
    const size_t present = std::min<size_t>(size_t(pad * colors), size - std::min(size, palette_at));
    bool gray = true;
    for (int64_t i = 0; i < colors; ++i) {
      const uint8_t v = colors == 2 ? uint8_t(i == 0 ? 0 : 255) : uint8_t(i);
      const size_t at = size_t(i * pad);
      gray = gray && at + 3 <= present && data[palette_at + at] == v && data[palette_at + at + 1] == v &&
             data[palette_at + at + 2] == v;
    }
    mode_1 = gray && colors == 2;
    palette_is_gray = gray;
    if (!gray && present / size_t(pad) > 256)
      fail("image '{}': corrupt BMP: {} palette entries (at most 256)", name, present / size_t(pad));
    if (!gray)
      for (size_t i = 0; i < present / size_t(pad); ++i)  // whole entries only, as putpalette takes them
        for (int c = 0; c < 3; ++c) palette[3 * i + size_t(c)] = data[palette_at + i * size_t(pad) + size_t(2 - c)];
  }
  if (offset == 0)  // PIL: where the palette read left the file
    offset = int64_t(bits <= 8 ? std::min(size, palette_at + size_t(pad * colors)) : palette_at);

  if (compression == 1 || compression == 2) {
    if (bits > 8 || mode_1)
      fail("image '{}': unsupported BMP layout ({} bits, RLE{})", name, bits, compression == 1 ? 8 : 4);
    const auto index = decode_rle(data, size, size_t(offset), w, h, compression == 2, name);
    auto rgb = torch::empty({h, w, 3}, torch::kUInt8);
    uint8_t* out = rgb.data_ptr<uint8_t>();
    for (int64_t y = 0; y < h; ++y) {
      const uint8_t* row = index.data() + (top_down ? y : h - 1 - y) * w;
      for (int64_t x = 0; x < w; ++x, out += 3) std::memcpy(out, palette.data() + 3 * row[x], 3);
    }
    return rgb;
  }

  // Uncompressed and bit fields: every row padded to 4 bytes but the last, which PIL reads unpadded.
  const int64_t stride = (w * bits + 31) / 32 * 4;
  if (bits <= 8) {
    // PIL's raw modes: "P;1/P;4/P" by the depth, but "L" (a byte a pixel) for a gray palette and "1" (a
    // bit a pixel) for a black-and-white one whatever the depth, each row `stride` bytes apart.
    const bool gray = palette_is_gray;
    const int64_t raw_bits = mode_1 ? 1 : gray ? 8 : bits, row_bytes = (w * raw_bits + 7) / 8;
    if (row_bytes > stride)  // PIL's raw decoder: "codec configuration error"
      fail("image '{}': unsupported BMP layout ({} bits with a gray palette: PIL reads {} bytes from rows of {})", name,
           bits, row_bytes, stride);
    if (offset + stride * (h - 1) + row_bytes > int64_t(size))
      fail("image '{}': truncated BMP data ({} bytes of pixels expected, {} present)", name,
           stride * (h - 1) + row_bytes, int64_t(size) - std::min<int64_t>(offset, int64_t(size)));
    auto rgb = torch::empty({h, w, 3}, torch::kUInt8);
    uint8_t* out = rgb.data_ptr<uint8_t>();
    for (int64_t y = 0; y < h; ++y) {
      const uint8_t* row = data + offset + (top_down ? y : h - 1 - y) * stride;
      for (int64_t x = 0; x < w; ++x, out += 3) {
        if (mode_1) {
          std::memset(out, (row[x / 8] >> (7 - x % 8) & 1) ? 255 : 0, 3);
        } else {
          const int64_t bit = x * raw_bits;
          const uint8_t v = uint8_t((row[bit / 8] >> (8 - raw_bits - bit % 8)) & ((1 << raw_bits) - 1));
          std::memcpy(out, palette.data() + 3 * v, 3);
        }
      }
    }
    return rgb;
  }
  const int64_t last_row = (w * bits + 7) / 8;
  if ((compression == 0 || compression == 3) && offset + stride * (h - 1) + last_row > int64_t(size))
    fail("image '{}': truncated BMP data ({} bytes of pixels expected, {} present)", name, stride * (h - 1) + last_row,
         int64_t(size) - std::min<int64_t>(offset, int64_t(size)));
  // FFmpeg reads a copy: the headers (and masks), then the pixels from PIL's offset (which may point
  // anywhere, the headers included), rows padded; the file size and plane count, which PIL ignores, true.
  const size_t headers = palette_at;
  std::vector<uint8_t> file(data, data + headers);
  file.resize(headers + size_t(stride * h), 0);
  std::memcpy(file.data() + headers, data + offset, size_t(std::min<int64_t>(stride * h, int64_t(size) - offset)));
  for (int i = 0; i < 4; ++i) {
    file[size_t(10 + i)] = uint8_t(headers >> (8 * i));
    file[size_t(2 + i)] = uint8_t(uint64_t(file.size()) >> (8 * i));
  }
  file[header == 12 ? 22 : 26] = 1, file[header == 12 ? 23 : 27] = 0;
  if (file.size() > size_t(std::numeric_limits<int>::max())) fail("image '{}': BMP file too large", name);

  ffmpeg::quiet_logging();
  const AVCodec* codec = avcodec_find_decoder(AV_CODEC_ID_BMP);
  if (!codec) fail("image '{}': this FFmpeg has no BMP decoder", name);
  ffmpeg::CodecPtr dec(avcodec_alloc_context3(codec));
  if (!dec || avcodec_open2(dec.get(), codec, nullptr) < 0) fail("image '{}': cannot open FFmpeg's BMP decoder", name);
  ffmpeg::PacketPtr packet(av_packet_alloc());
  ffmpeg::FramePtr frame(av_frame_alloc());
  if (!packet || !frame) fail("image '{}': out of memory", name);
  packet->data = file.data();  // not reference-counted: libavcodec copies it
  packet->size = int(file.size());
  int rc = avcodec_send_packet(dec.get(), packet.get());
  if (rc >= 0) rc = avcodec_receive_frame(dec.get(), frame.get());
  if (rc < 0) fail("image '{}': corrupt BMP: {}", name, ffmpeg::error_string(rc));
  if (frame->width != w || frame->height != h)
    fail("image '{}': corrupt BMP: decoded {}x{}, header says {}x{}", name, frame->width, frame->height, w, h);

  auto rgb = torch::empty({h, w, 3}, torch::kUInt8);
  uint8_t* out = rgb.data_ptr<uint8_t>();
  const auto fmt = AVPixelFormat(frame->format);
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(fmt);
  const bool packed8 = desc && (desc->flags & AV_PIX_FMT_FLAG_RGB) && !(desc->flags & AV_PIX_FMT_FLAG_BE) &&
                       desc->nb_components >= 3 && desc->comp[0].depth == 8 && desc->comp[0].step >= 3 &&
                       desc->comp[0].shift == 0;
  for (int64_t y = 0; y < h; ++y) {
    const uint8_t* in = frame->data[0] + y * frame->linesize[0];
    for (int64_t x = 0; x < w; ++x, out += 3) {
      if (fmt == AV_PIX_FMT_RGB555LE) {  // PIL's "BGR;15"
        const uint32_t p = le16(in + 2 * x);
        out[0] = uint8_t((p >> 10 & 31) * 255 / 31), out[1] = uint8_t((p >> 5 & 31) * 255 / 31);
        out[2] = uint8_t((p & 31) * 255 / 31);
      } else if (fmt == AV_PIX_FMT_RGB565LE) {  // PIL's "BGR;16"
        const uint32_t p = le16(in + 2 * x);
        out[0] = uint8_t((p >> 11 & 31) * 255 / 31), out[1] = uint8_t((p >> 5 & 63) * 255 / 63);
        out[2] = uint8_t((p & 31) * 255 / 31);
      } else if (packed8) {  // BGR24, BGRA, BGR0, ARGB, ...: R, G, B bytes at their offsets
        const uint8_t* px = in + x * desc->comp[0].step;
        for (int c = 0; c < 3; ++c) out[c] = px[desc->comp[c].offset];
      } else {
        fail("image '{}': unsupported BMP layout ({} bits, compression {}; FFmpeg gives {})", name, bits, compression,
             desc ? desc->name : "?");
      }
    }
  }
  return rgb;
}

}  // namespace cb::media
