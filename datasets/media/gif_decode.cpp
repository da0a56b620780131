// GIF -> RGB as Pillow 9.4's `Image.open(f).convert('RGB')` makes of it, on damaged files too: the blocks
// before the first image are walked as GifImagePlugin._seek(0) walks them, and the frame's LZW data is
// decoded with the rules of Pillow's GIF decoder (src/libImaging/GifDecode.c) fed the way ImageFile.load
// feeds it (65536-byte reads, LOAD_TRUNCATED_IMAGES off). That is why this file decodes LZW itself rather
// than through giflib: giflib refuses files Pillow reads (a stray byte between blocks, an empty data
// sub-block, an LZW minimum code size of 0 or 1, a 3-byte graphic control block) and reads some Pillow
// refuses. What Pillow 9.4 does, checked by tests/datasets/media/make_pil_reference.py:
//   * a byte between blocks that is not '!', ',' or ';' is skipped; nothing after the first image's data
//     is read (no trailer, garbage after it, a cut second frame: all fine);
//   * ';' or the end of the file before an image descriptor: an error (no image);
//   * a graphic control extension whose first sub-block is empty, shorter than 3 bytes, or shorter than
//     4 with the transparency flag set, an application extension whose first sub-block is empty (or a
//     NETSCAPE2.0 one without a second sub-block): an error; other extensions are skipped whatever they hold;
//   * the image's sub-blocks are one byte stream: an empty sub-block is skipped, not the end of the data;
//     decoding stops as soon as the frame's last pixel is written;
//   * the data ending before that (a cut file, an end code too early, a sub-block longer than the rest of
//     the file): "image file is truncated"; a code past the table: "broken data stream"; a minimum code
//     size over 12: "codec configuration error". Sizes 0..12 are all decoded (0 and 1 never widen codes);
//   * the canvas is the logical screen grown to hold the frame, filled with the frame's transparent index
//     or else 0; a frame of width 0 at x 0 is decoded over the whole canvas (Pillow's setimage reads
//     extents (0, y0, 0, y1) as "the whole image"); any other empty frame is an error;
//   * palette: the frame's local table, else the global one, then a gray ramp past its end (or all gray
//     without one); transparency is not applied (PIL's "P" -> "RGB" keeps the palette colour).
#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "datasets/media/image_formats.h"
#include "framework/error.h"

namespace cb::media {

namespace {

uint32_t le16(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; }

// The first image of the file as GifImagePlugin._seek(0) finds it.
struct FirstFrame {
  int64_t x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // extent on the canvas
  int64_t width = 0, height = 0;           // the canvas: the screen grown to hold the extent
  bool interlace = false;
  int min_code_size = 0;
  size_t data = 0;                   // offset of the first data sub-block
  int transparent = -1;              // the last graphic control extension's transparent index
  const uint8_t* palette = nullptr;  // local, else global colour table: palette_entries RGB triples
  int palette_entries = 0;
};

FirstFrame find_first_frame(const uint8_t* d, size_t n, const std::string& name) {
  if (n < 13) fail("image '{}': truncated GIF data (the file ends inside its 13-byte header)", name);
  FirstFrame f;
  f.width = le16(d + 6), f.height = le16(d + 8);
  size_t pos = 13;
  if (d[10] & 0x80) {
    const int entries = 1 << ((d[10] & 7) + 1);
    if (pos + 3 * size_t(entries) > n) fail("image '{}': truncated GIF data (the global colour table is cut)", name);
    f.palette = d + pos, f.palette_entries = entries;
    pos += 3 * size_t(entries);
  }
  // One data sub-block (GifImageFile.data): nullopt for a zero length byte or the end of the file; the
  // bytes the file still holds when the sub-block is cut.
  struct Block {
    const uint8_t* p;
    size_t size;
  };
  auto sub_block = [&]() -> std::optional<Block> {
    if (pos >= n || d[pos] == 0) {
      pos = std::min(pos + 1, n);
      return std::nullopt;
    }
    const size_t len = std::min<size_t>(d[pos], n - pos - 1);
    Block b{d + pos + 1, len};
    pos += 1 + len;
    return b;
  };
  auto skip_sub_blocks = [&] {
    while (auto b = sub_block())
      if (b->size == 0) break;  // a cut sub-block at the end of the file reads as empty: the loop stops
  };
  for (;;) {
    if (pos >= n || d[pos] == ';') fail("image '{}': corrupt GIF: no image in the file", name);
    const uint8_t tag = d[pos++];
    if (tag == '!') {
      if (pos >= n) fail("image '{}': truncated GIF data (the file ends inside an extension)", name);
      const uint8_t label = d[pos++];
      const auto block = sub_block();
      if (label == 0xF9) {  // graphic control: flags, delay (2 bytes), transparent index
        if (!block || block->size < 3 || ((block->p[0] & 1) && block->size < 4))
          fail("image '{}': corrupt GIF: graphic control extension of {} bytes", name, block ? block->size : 0);
        if (block->p[0] & 1) f.transparent = block->p[3];
      } else if (label == 0xFE) {  // comment: every sub-block is read, and only those
        if (block && block->size > 0) skip_sub_blocks();
        continue;
      } else if (label == 0xFF) {  // application: NETSCAPE2.0's second sub-block is read on its own
        if (!block) fail("image '{}': corrupt GIF: empty application extension", name);
        if (block->size >= 11 && std::memcmp(block->p, "NETSCAPE2.0", 11) == 0 && !sub_block())
          fail("image '{}': corrupt GIF: NETSCAPE2.0 extension without its loop block", name);
      }
      skip_sub_blocks();
    } else if (tag == ',') {
      if (n - pos < 9) fail("image '{}': truncated GIF data (the file ends inside an image descriptor)", name);
      const uint8_t* s = d + pos;
      pos += 9;
      f.x0 = le16(s), f.y0 = le16(s + 2);
      f.x1 = f.x0 + le16(s + 4), f.y1 = f.y0 + le16(s + 6);
      f.width = std::max(f.width, f.x1), f.height = std::max(f.height, f.y1);
      f.interlace = s[8] & 0x40;
      if (s[8] & 0x80) {
        const int entries = 1 << ((s[8] & 7) + 1);
        if (n - pos < 3 * size_t(entries)) fail("image '{}': truncated GIF data (the local colour table is cut)", name);
        f.palette = d + pos, f.palette_entries = entries;
        pos += 3 * size_t(entries);
      }
      if (pos >= n) fail("image '{}': truncated GIF data (the file ends before the image data)", name);
      f.min_code_size = d[pos++];
      f.data = pos;
      return f;
    }
    // Any other byte is skipped, as GifImagePlugin does.
  }
}

// Pillow's GIF decoder: LZW codes from the sub-block stream, strings written row by row into the frame's
// rectangle of `canvas` (width `stride`), interlaced rows in the four passes.
class LzwFrameDecoder {
 public:
  enum class Status { done, need_data, end_code };

  LzwFrameDecoder(int min_code_size, bool interlace, int64_t xoff, int64_t yoff, int64_t xsize, int64_t ysize)
      : clear_(1 << min_code_size),
        end_(clear_ + 1),
        min_code_size_(min_code_size),
        xoff_(xoff),
        yoff_(yoff),
        xsize_(xsize),
        ysize_(ysize),
        step_(interlace ? 8 : 1),
        pass_(interlace ? 1 : 0) {
    reset_table();
  }

  // Decodes from data[*pos] while whole sub-blocks lie before `avail`; throws on a broken stream.
  Status run(const uint8_t* data, size_t* pos, size_t avail, uint8_t* canvas, int64_t stride, const std::string& name) {
    for (;;) {
      while (bitcount_ < codesize_) {
        if (block_left_ > 0) {
          bitbuf_ |= uint32_t(data[(*pos)++]) << bitcount_;
          bitcount_ += 8;
          --block_left_;
          continue;
        }
        // A new sub-block is started only when all of it is there; a zero length byte is skipped.
        if (*pos >= avail || avail - *pos < size_t(data[*pos]) + 1) return Status::need_data;
        block_left_ = data[(*pos)++];
      }
      const int code = int(bitbuf_ & uint32_t((1 << codesize_) - 1));
      bitbuf_ >>= codesize_;
      bitcount_ -= codesize_;

      if (code == clear_) {
        if (!fresh_) reset_table();
        continue;
      }
      if (code == end_) return Status::end_code;

      stack_size_ = 0;
      if (fresh_) {  // the first code after a reset is written as it is
        if (code > clear_) broken(name, code);
        first_ = uint8_t(code), prev_ = code, fresh_ = false;
      } else {
        int c = code;
        if (c > next_) broken(name, code);
        if (c == next_) push(first_, name, code), c = prev_;  // the string being defined: prev + its first
        while (c >= clear_) {
          if (c >= kTable) broken(name, code);
          push(suffix_[size_t(c)], name, code);
          c = prefix_[size_t(c)];
        }
        first_ = uint8_t(c);
        if (next_ < kTable) {
          suffix_[size_t(next_)] = uint8_t(c), prefix_[size_t(next_)] = uint16_t(prev_);
          if (next_ == (1 << codesize_) - 1 && codesize_ < 12) ++codesize_;
          ++next_;
        }
        prev_ = code;
      }
      // The string: its first byte, then the stack from the top.
      if (put(first_, canvas, stride)) return Status::done;
      while (stack_size_ > 0)
        if (put(stack_[size_t(--stack_size_)], canvas, stride)) return Status::done;
    }
  }

 private:
  static constexpr int kTable = 4096;

  void reset_table() {
    next_ = clear_ + 2;
    codesize_ = min_code_size_ + 1;
    fresh_ = true;
  }
  void push(uint8_t v, const std::string& name, int code) {
    if (stack_size_ >= kTable) broken(name, code);
    stack_[size_t(stack_size_++)] = v;
  }
  [[noreturn]] static void broken(const std::string& name, int code) {
    fail("image '{}': corrupt GIF: broken LZW data stream (code {} is not in the table)", name, code);
  }
  // Writes one pixel; true once the frame's last pixel is written.
  bool put(uint8_t v, uint8_t* canvas, int64_t stride) {
    canvas[(yoff_ + y_) * stride + xoff_ + x_] = v;
    if (++x_ < xsize_) return false;
    x_ = 0;
    y_ += step_;
    while (y_ >= ysize_) {
      switch (pass_) {  // interlace: rows 0, 8, 16, ...; then 4, 12, ...; 2, 6, ...; 1, 3, ...
        case 1: y_ = 4, pass_ = 2; break;
        case 2: step_ = 4, y_ = 2, pass_ = 3; break;
        case 3: step_ = 2, y_ = 1, pass_ = 0; break;
        default: return true;
      }
    }
    return false;
  }

  const int clear_, end_, min_code_size_;
  const int64_t xoff_, yoff_, xsize_, ysize_;
  int64_t x_ = 0, y_ = 0, step_;
  int pass_;
  uint32_t bitbuf_ = 0;
  int bitcount_ = 0, block_left_ = 0;
  int codesize_ = 0, next_ = 0, prev_ = 0;
  bool fresh_ = true;
  uint8_t first_ = 0;
  std::array<uint16_t, kTable> prefix_{};
  std::array<uint8_t, kTable> suffix_{};
  std::array<uint8_t, kTable> stack_{};
  int stack_size_ = 0;
};

}  // namespace

bool is_gif(const uint8_t* d, size_t n) {
  return n >= 6 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0);
}

torch::Tensor decode_gif(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  const FirstFrame f = find_first_frame(data, size, name);
  const int64_t w = f.width, h = f.height;
  check_image_pixels(w, h, max_pixels, name);

  // Pillow's decoder.setimage: extents with x0 == x1 == 0 mean the whole image.
  int64_t xoff = f.x0, yoff = f.y0, xsize = f.x1 - f.x0, ysize = f.y1 - f.y0;
  if (f.x0 == 0 && f.x1 == 0) xoff = 0, yoff = 0, xsize = w, ysize = h;
  if (xsize <= 0 || ysize <= 0)
    fail("image '{}': corrupt GIF: empty frame ({}x{} at {},{})", name, f.x1 - f.x0, f.y1 - f.y0, f.x0, f.y0);
  if (f.min_code_size > 12)
    fail("image '{}': corrupt GIF: LZW minimum code size {} (at most 12)", name, f.min_code_size);

  std::vector<uint8_t> index(size_t(w * h), uint8_t(f.transparent >= 0 ? f.transparent : 0));
  auto lzw = std::make_unique<LzwFrameDecoder>(f.min_code_size, f.interlace, xoff, yoff, xsize, ysize);
  // ImageFile.load: 65536-byte reads from the data's offset; the decoder stops at an end code or a
  // sub-block not yet read and goes on with the next read; with nothing left to read, the file is
  // truncated (so an end code before the last pixel is one too, unless more than a read's worth follows).
  constexpr size_t kRead = 65536;
  size_t pos = f.data, avail = f.data;
  for (;;) {
    if (avail >= size)
      fail(
          "image '{}': truncated GIF data (image file is truncated: the frame's LZW data ends after {} of "
          "{} bytes, before its last pixel)",
          name, pos - f.data, size - f.data);
    avail = std::min(size, avail + kRead);
    if (lzw->run(data, &pos, avail, index.data(), w, name) == LzwFrameDecoder::Status::done) break;
  }

  // Palette: 256 entries, those past the file's colour table a gray ramp (PIL's palette initialisation).
  std::array<uint8_t, 256 * 3> palette;
  for (int i = 0; i < 256; ++i) palette[3 * i] = palette[3 * i + 1] = palette[3 * i + 2] = uint8_t(i);
  if (f.palette) std::memcpy(palette.data(), f.palette, 3 * size_t(std::min(f.palette_entries, 256)));

  auto rgb = torch::empty({h, w, 3}, torch::kUInt8);
  uint8_t* out = rgb.data_ptr<uint8_t>();
  for (uint8_t i : index) {
    std::memcpy(out, palette.data() + 3 * i, 3);
    out += 3;
  }
  return rgb;
}

}  // namespace cb::media
