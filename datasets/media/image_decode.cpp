#include "datasets/media/image_decode.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "datasets/media/image_formats.h"
#include "framework/error.h"

extern "C" {
#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
}

namespace cb {

namespace {

// libjpeg and libpng report errors by longjmp. Every setjmp below lives in a function whose locals are
// trivially destructible, so the jump never skips a destructor; C++ errors are raised after it returns.
constexpr size_t kMessageSize = 256;

bool is_jpeg(const uint8_t* d, size_t n) { return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }
bool is_png(const uint8_t* d, size_t n) { return n >= 8 && png_sig_cmp(d, 0, 8) == 0; }

// PIL's CMYK -> RGB (Convert.c cmyk2rgb): each of R, G, B = (255 - k) scaled down by the ink amount.
uint8_t cmyk_channel(int ink, int k) {
  const int nk = 255 - k;
  const int t = ink * nk + 128;  // PIL's MULDIV255
  return uint8_t(std::clamp(nk - (((t >> 8) + t) >> 8), 0, 255));
}

}  // namespace

// ---- JPEG ------------------------------------------------------------------------------------------

struct ImageDecoder::Jpeg {
  jpeg_decompress_struct cinfo{};
  struct Err {
    jpeg_error_mgr mgr;
    std::jmp_buf jump;
    char message[kMessageSize];
  } err{};

  Jpeg() {
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = &Jpeg::on_error;
    err.mgr.emit_message = &Jpeg::on_message;
    jpeg_create_decompress(&cinfo);
  }
  ~Jpeg() { jpeg_destroy_decompress(&cinfo); }

  static void on_error(j_common_ptr c) {
    auto* e = reinterpret_cast<Err*>(c->err);
    e->mgr.format_message(c, e->message);
    std::longjmp(e->jump, 1);
  }
  // PIL refuses a JPEG whose data ends early ("image file is truncated"), while libjpeg only warns and
  // pads with gray: make that warning fatal. Other warnings (e.g. extraneous bytes) are ignored as PIL does.
  static void on_message(j_common_ptr c, int level) {
    auto* e = reinterpret_cast<Err*>(c->err);
    if (level == -1 && e->mgr.msg_code == JWRN_JPEG_EOF) {
      std::snprintf(e->message, kMessageSize, "truncated JPEG data (premature end of file)");
      std::longjmp(e->jump, 1);
    }
  }

  // Reads the header and picks PIL's output colour space. False on error (message set).
  bool read_header(const uint8_t* data, size_t size) {
    if (setjmp(err.jump)) {
      jpeg_abort_decompress(&cinfo);
      return false;
    }
    jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
    jpeg_read_header(&cinfo, TRUE);
    switch (cinfo.jpeg_color_space) {
      case JCS_GRAYSCALE: cinfo.out_color_space = JCS_GRAYSCALE; break;
      case JCS_CMYK:
      case JCS_YCCK: cinfo.out_color_space = JCS_CMYK; break;
      default: cinfo.out_color_space = JCS_RGB; break;
    }
    // libjpeg's defaults, which PIL keeps: JDCT_ISLOW, fancy upsampling, no scaling.
    jpeg_calc_output_dimensions(&cinfo);
    return true;
  }

  // Decodes every scanline into `out` (height * row bytes). False on error (message set).
  bool read_pixels(uint8_t* out, size_t row_bytes) {
    if (setjmp(err.jump)) {
      jpeg_abort_decompress(&cinfo);
      return false;
    }
    jpeg_start_decompress(&cinfo);
    while (cinfo.output_scanline < cinfo.output_height) {
      JSAMPROW row = out + size_t(cinfo.output_scanline) * row_bytes;
      jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_abort_decompress(&cinfo);  // resets for the next image without reading trailing markers
    return true;
  }
};

ImageDecoder::ImageDecoder(int64_t max_pixels) : jpeg_(std::make_unique<Jpeg>()), max_pixels_(max_pixels) {}
ImageDecoder::~ImageDecoder() = default;

namespace {

using media::check_image_pixels;

torch::Tensor decode_jpeg(ImageDecoder::Jpeg& j, const uint8_t* data, size_t size, const std::string& name,
                          int64_t max_pixels) {
  if (!j.read_header(data, size)) fail("image '{}': corrupt JPEG: {}", name, j.err.message);
  const int64_t w = j.cinfo.output_width, h = j.cinfo.output_height, c = j.cinfo.output_components;
  if (w <= 0 || h <= 0 || w * h > max_pixels) {
    jpeg_abort_decompress(&j.cinfo);
    check_image_pixels(w, h, max_pixels, name);
  }
  auto raw = torch::empty({h, w, c}, torch::kUInt8);
  if (!j.read_pixels(raw.data_ptr<uint8_t>(), size_t(w * c))) fail("image '{}': corrupt JPEG: {}", name, j.err.message);
  if (c == 3) return raw;
  if (c == 1) return raw.expand({h, w, 3}).contiguous();
  // CMYK/YCCK: PIL always assumes Adobe's inverted ink ("CMYK;I"), marker or not.
  auto rgb = torch::empty({h, w, 3}, torch::kUInt8);
  const uint8_t* in = raw.data_ptr<uint8_t>();
  uint8_t* out = rgb.data_ptr<uint8_t>();
  for (int64_t p = 0; p < w * h; ++p, in += 4, out += 3) {
    auto ink = [&](int i) { return 255 - int(in[i]); };
    for (int ch = 0; ch < 3; ++ch) out[ch] = cmyk_channel(ink(ch), ink(3));
  }
  return rgb;
}

// ---- PNG -------------------------------------------------------------------------------------------

struct PngReader {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
  std::jmp_buf jump{};
  char message[kMessageSize] = {0};
  png_structp png = nullptr;
  png_infop info = nullptr;
  // After read_header: the layout of the rows libpng will deliver.
  png_uint_32 width = 0, height = 0;
  int channels = 0, bit_depth = 0;
  size_t row_bytes = 0;

  ~PngReader() { png_destroy_read_struct(&png, &info, nullptr); }

  static void on_error(png_structp p, png_const_charp msg) {
    auto* r = static_cast<PngReader*>(png_get_error_ptr(p));
    std::snprintf(r->message, kMessageSize, "%s", msg);
    std::longjmp(r->jump, 1);
  }
  static void on_warning(png_structp, png_const_charp) {}
  static void on_read(png_structp p, png_bytep out, png_size_t n) {
    auto* r = static_cast<PngReader*>(png_get_io_ptr(p));
    if (n > r->size - r->pos) png_error(p, "truncated PNG data (unexpected end of file)");
    std::memcpy(out, r->data + r->pos, n);
    r->pos += n;
  }

  // Sets up the transforms that give PIL's samples. False on error (message set).
  bool read_header() {
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, this, &PngReader::on_error, &PngReader::on_warning);
    if (!png) return false;
    info = png_create_info_struct(png);
    if (!info) return false;
    if (setjmp(jump)) return false;
    png_set_read_fn(png, this, &PngReader::on_read);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);  // the pixel cap is ours
    png_read_info(png, info);
    const int color = png_get_color_type(png, info);
    const int depth = png_get_bit_depth(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    // PIL keeps the high byte of 16-bit samples ("RGB;16B", "LA;16B"), except plain 16-bit gray,
    // which it opens as mode I and clips to 255 on conversion: keep those 16 bits (big-endian).
    if (depth == 16 && color != PNG_COLOR_TYPE_GRAY) png_set_strip_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    width = png_get_image_width(png, info);
    height = png_get_image_height(png, info);
    channels = png_get_channels(png, info);
    bit_depth = png_get_bit_depth(png, info);
    row_bytes = png_get_rowbytes(png, info);
    return true;
  }

  bool read_rows(png_bytepp rows) {
    if (setjmp(jump)) return false;
    png_read_image(png, rows);
    return true;
  }
};

torch::Tensor decode_png(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  PngReader r{data, size};
  if (!r.read_header()) fail("image '{}': corrupt PNG: {}", name, r.message[0] ? r.message : "out of memory");
  const int64_t w = r.width, h = r.height;
  check_image_pixels(w, h, max_pixels, name);
  if (r.channels < 1 || r.channels > 4 || (r.bit_depth != 8 && !(r.bit_depth == 16 && r.channels == 1)))
    fail("image '{}': unsupported PNG layout ({} channels of {} bits)", name, r.channels, r.bit_depth);
  std::vector<uint8_t> pixels(static_cast<size_t>(h) * r.row_bytes);
  std::vector<png_bytep> rows(static_cast<size_t>(h));
  for (int64_t y = 0; y < h; ++y) rows[size_t(y)] = pixels.data() + size_t(y) * r.row_bytes;
  if (!r.read_rows(rows.data())) fail("image '{}': corrupt PNG: {}", name, r.message);

  auto rgb = torch::empty({h, w, 3}, torch::kUInt8);
  uint8_t* out = rgb.data_ptr<uint8_t>();
  for (int64_t y = 0; y < h; ++y) {
    const uint8_t* in = rows[size_t(y)];
    for (int64_t x = 0; x < w; ++x, out += 3) {
      if (r.bit_depth == 16) {  // 16-bit gray: PIL's I -> L clips
        const int v = in[2 * x] << 8 | in[2 * x + 1];
        out[0] = out[1] = out[2] = uint8_t(std::min(v, 255));
      } else if (r.channels <= 2) {  // gray, gray + alpha (alpha dropped)
        out[0] = out[1] = out[2] = in[x * r.channels];
      } else {  // RGB, RGBA (alpha dropped)
        std::memcpy(out, in + x * r.channels, 3);
      }
    }
  }
  return rgb;
}

}  // namespace

void media::check_image_pixels(int64_t w, int64_t h, int64_t max_pixels, const std::string& name) {
  if (w <= 0 || h <= 0) fail("image '{}': invalid dimensions {}x{}", name, w, h);
  if (w * h > max_pixels)
    fail("image '{}': {}x{} = {} pixels exceeds the limit of {} (possible decompression bomb)", name, w, h, w * h,
         max_pixels);
}

void read_file_bytes(const std::filesystem::path& path, std::vector<uint8_t>& out, const char* what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    fail("{} '{}': {}", what, path.string(),
         std::filesystem::is_directory(path, ec) ? "a directory, not a file" : "no such file");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) fail("{} '{}': cannot read the file size: {}", what, path.string(), ec.message());
  std::ifstream in(path, std::ios::binary);
  out.resize(size);
  if (!in || !in.read(reinterpret_cast<char*>(out.data()), std::streamsize(size)))
    fail("{} '{}': cannot read the file", what, path.string());
}

torch::Tensor ImageDecoder::decode_file(const std::filesystem::path& path) {
  read_file_bytes(path, file_buffer_, "image");
  return decode_bytes(file_buffer_.data(), file_buffer_.size(), path.string());
}

torch::Tensor ImageDecoder::decode_bytes(const uint8_t* data, size_t size, const std::string& name) {
  if (size == 0 || data == nullptr) fail("image '{}': the file is empty", name);
  if (is_jpeg(data, size)) return decode_jpeg(*jpeg_, data, size, name, max_pixels_);
  if (is_png(data, size)) return decode_png(data, size, name, max_pixels_);
  if (media::is_gif(data, size)) return media::decode_gif(data, size, name, max_pixels_);
  if (media::is_webp(data, size)) return media::decode_webp(data, size, name, max_pixels_);
  if (media::is_bmp(data, size)) return media::decode_bmp(data, size, name, max_pixels_);
  fail("image '{}': not a JPEG, PNG, GIF, WebP or BMP file (unrecognised signature)", name);
}

}  // namespace cb
