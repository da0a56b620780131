// Unit tests of image and video decoding: formats PIL reads, and every kind of bad input (truncated,
// random, empty, absurd dimensions) -> cb::Error naming the file, never a crash.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <numeric>
#include <random>

#include "datasets/media/frame_sampling.h"
#include "datasets/media/image_decode.h"
#include "datasets/media/valor_video.h"
#include "datasets/media/video_decode.h"
#include "datasets/processors/alpro_video.h"
#include "datasets/processors/processor.h"
#include "framework/error.h"
#include "tests/support/make_media.h"

extern "C" {
#include <png.h>
}

namespace {

using Catch::Matchers::Contains;
using cb::test::encode_jpeg;
using cb::test::encode_png;

torch::Tensor decode(cb::ImageDecoder& d, const std::vector<uint8_t>& bytes, const std::string& name = "mem.img") {
  return d.decode_bytes(bytes.data(), bytes.size(), name);
}

double mean_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat32) - b.to(torch::kFloat32)).abs().mean().item<double>();
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

}  // namespace

TEST_CASE("image decode: JPEG colour and gray + PNG layouts converted like PIL convert('RGB')") {
  cb::ImageDecoder d;
  const auto rgb = cb::test::pattern_frame(3, 40, 56);
  const auto colour = decode(d, encode_jpeg(rgb));
  REQUIRE(colour.sizes() == rgb.sizes());
  CHECK(mean_abs_diff(colour, rgb) < 4.0);

  const auto gray = rgb.select(2, 1).unsqueeze(2).contiguous();
  const auto g = decode(d, encode_jpeg(gray));
  REQUIRE(g.sizes() == torch::IntArrayRef{40, 56, 3});
  CHECK(torch::equal(g.select(2, 0), g.select(2, 2)));
  CHECK(mean_abs_diff(g.select(2, 0), gray.squeeze(2)) < 3.0);

  // CMYK: stored ink is read inverted as PIL does ("CMYK;I"), then PIL's cmyk2rgb.
  auto cmyk = torch::empty({16, 16, 4}, torch::kUInt8);
  cmyk.slice(0, 0, 8).fill_(255);  // inverted: no ink -> white
  cmyk.slice(0, 8).fill_(0);       // inverted: full ink -> black
  const auto from_cmyk = decode(d, encode_jpeg(cmyk, 100));
  CHECK(from_cmyk.slice(0, 0, 8).min().item<int>() >= 253);
  CHECK(from_cmyk.slice(0, 8).max().item<int>() <= 2);

  // PNG is lossless: exact.
  CHECK(torch::equal(decode(d, encode_png(rgb, PNG_COLOR_TYPE_RGB)), rgb));
  auto alpha = torch::full({40, 56, 1}, 7, torch::kUInt8);
  CHECK(torch::equal(decode(d, encode_png(torch::cat({rgb, alpha}, 2), PNG_COLOR_TYPE_RGB_ALPHA)), rgb));
  CHECK(torch::equal(decode(d, encode_png(gray, PNG_COLOR_TYPE_GRAY)), gray.expand({40, 56, 3})));
  CHECK(torch::equal(decode(d, encode_png(torch::cat({gray, alpha}, 2), PNG_COLOR_TYPE_GRAY_ALPHA)),
                     gray.expand({40, 56, 3})));
  // Palette: indices into RGB triples.
  const std::vector<uint8_t> palette{10, 20, 30, 200, 100, 0, 1, 2, 3};
  auto indices = torch::randint(0, 3, {5, 6, 1}, torch::kInt64).to(torch::kUInt8);
  auto expected = torch::tensor(palette).view({3, 3}).index({indices.squeeze(2).to(torch::kLong)});
  CHECK(torch::equal(decode(d, encode_png(indices, PNG_COLOR_TYPE_PALETTE, 8, palette)), expected));
  // 1-bit gray expands to 0/255 (PIL mode "1").
  auto bits = torch::randint(0, 2, {4, 9, 1}, torch::kInt64).to(torch::kUInt8);
  CHECK(torch::equal(decode(d, encode_png(bits, PNG_COLOR_TYPE_GRAY, 1)), (bits * 255).expand({4, 9, 3})));
  // 16-bit: RGB keeps the high byte; plain gray is clipped at 255 as PIL's I -> L conversion does.
  auto wide = torch::tensor({0, 200, 255, 256, 65535, 300}, torch::kInt32).view({1, 6, 1});
  auto clipped = torch::tensor({0, 200, 255, 255, 255, 255}, torch::kUInt8).view({1, 6, 1}).expand({1, 6, 3});
  CHECK(torch::equal(decode(d, encode_png(wide, PNG_COLOR_TYPE_GRAY, 16)), clipped));
  auto wide_rgb = (rgb.to(torch::kInt32) * 256 + 77);
  CHECK(torch::equal(decode(d, encode_png(wide_rgb, PNG_COLOR_TYPE_RGB, 16)), rgb));
}

namespace {

// palette [n * 3] looked up at `indices` [h, w] uint8 -> [h, w, 3]; entries past the palette are gray.
torch::Tensor palette_rgb(const torch::Tensor& indices, const std::vector<uint8_t>& palette) {
  auto table = torch::arange(256, torch::kUInt8).unsqueeze(1).repeat({1, 3});
  for (size_t i = 0; i < palette.size(); ++i) table[int64_t(i / 3)][int64_t(i % 3)] = palette[i];
  return table.index({indices.to(torch::kLong)});
}

std::vector<uint8_t> random_palette(int colors, uint32_t seed) { return random_bytes(size_t(colors) * 3, seed); }

torch::Tensor random_indices(int64_t h, int64_t w, int colors, uint32_t seed) {
  torch::manual_seed(seed);
  return torch::randint(colors, {h, w}, torch::kUInt8);
}

}  // namespace

TEST_CASE("image decode: GIF, WebP and BMP converted like PIL convert('RGB')") {
  cb::ImageDecoder d;
  using cb::test::encode_bmp;
  using cb::test::encode_gif;
  using cb::test::encode_webp;
  using cb::test::GifFrame;
  using namespace torch::indexing;

  SECTION("GIF: first frame through its palette; transparency ignored, the canvas filled like PIL") {
    const auto pal = random_palette(200, 3);
    const auto idx = random_indices(23, 37, 200, 4);
    CHECK(torch::equal(decode(d, encode_gif(idx, pal, 37, 23), "a.gif"), palette_rgb(idx, pal)));
    // Interlaced, index 5 transparent: those pixels keep palette colour 5.
    GifFrame interlaced{.interlace = true, .transparent = 5};
    CHECK(torch::equal(decode(d, encode_gif(idx, pal, 37, 23, interlaced)), palette_rgb(idx, pal)));
    // A 20x11 frame at (6, 4) of the 37x23 screen: outside it index 0, or the transparent index.
    const auto small = random_indices(11, 20, 16, 5);
    auto canvas = torch::zeros({23, 37}, torch::kUInt8);
    canvas.index_put_({Slice(4, 15), Slice(6, 26)}, small);
    CHECK(torch::equal(decode(d, encode_gif(small, pal, 37, 23, {.left = 6, .top = 4})), palette_rgb(canvas, pal)));
    canvas.fill_(7).index_put_({Slice(4, 15), Slice(6, 26)}, small);
    CHECK(torch::equal(decode(d, encode_gif(small, pal, 37, 23, {.left = 6, .top = 4, .transparent = 7})),
                       palette_rgb(canvas, pal)));
    // A local colour table; a frame reaching past the screen grows the image (PIL does).
    const auto local = random_palette(16, 6);
    CHECK(
        torch::equal(decode(d, encode_gif(small, local, 20, 11, {.local_palette = true})), palette_rgb(small, local)));
    auto grown = torch::zeros({16, 30}, torch::kUInt8);
    grown.index_put_({Slice(5, 16), Slice(10, 30)}, small);
    CHECK(torch::equal(decode(d, encode_gif(small, pal, 20, 10, {.left = 10, .top = 5})), palette_rgb(grown, pal)));
  }

  SECTION("WebP: lossless exact, alpha dropped; lossy close to the source") {
    const auto rgb = cb::test::pattern_frame(2, 23, 37);
    CHECK(torch::equal(decode(d, encode_webp(rgb, true), "a.webp"), rgb));
    torch::manual_seed(1);
    const auto rgba = torch::cat({rgb, torch::randint(256, {23, 37, 1}, torch::kUInt8)}, 2);
    CHECK(torch::equal(decode(d, encode_webp(rgba, true)), rgb));
    // Lossy: libwebp's own decoder, as PIL's; the PIL reference case checks it exactly. Here only the
    // encoding error is bounded.
    for (const auto& image : {rgb, rgba}) {
      const auto out = decode(d, encode_webp(image, false, 90));
      REQUIRE(out.sizes() == rgb.sizes());
      CHECK(mean_abs_diff(out, rgb) < 4.0);
    }
  }

  SECTION("BMP: 24-bit, 32-bit (alpha dropped), 8-bit palette, bottom-up and top-down") {
    const auto rgb = cb::test::pattern_frame(3, 23, 37);
    CHECK(torch::equal(decode(d, encode_bmp(rgb, 24), "a.bmp"), rgb));
    CHECK(torch::equal(decode(d, encode_bmp(rgb, 24, {}, true)), rgb));
    torch::manual_seed(2);
    const auto rgba = torch::cat({rgb, torch::randint(256, {23, 37, 1}, torch::kUInt8)}, 2);
    CHECK(torch::equal(decode(d, encode_bmp(rgba, 32)), rgb));
    const auto pal = random_palette(40, 7);
    const auto idx = random_indices(23, 37, 40, 8);
    CHECK(torch::equal(decode(d, encode_bmp(idx.unsqueeze(2), 8, pal)), palette_rgb(idx, pal)));
  }
}

TEST_CASE("image decode: bad GIF, WebP and BMP input throws cb::Error naming the file") {
  cb::ImageDecoder d;
  const auto rgb = cb::test::pattern_frame(0, 32, 48);
  const auto idx = random_indices(32, 48, 200, 1);
  const std::vector<std::pair<std::string, std::vector<uint8_t>>> files = {
      {"x.gif", cb::test::encode_gif(idx, random_palette(200, 2), 48, 32)},
      {"x.webp", cb::test::encode_webp(rgb, false)},
      {"x.webp", cb::test::encode_webp(rgb, true)},
      {"x.bmp", cb::test::encode_bmp(rgb, 24)}};
  for (const auto& [name, bytes] : files) {
    INFO(name);
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + std::ptrdiff_t(bytes.size() / 2));
    CHECK_THROWS_WITH(decode(d, cut, "cut." + name), Contains("cut." + name) && Contains("truncated"));
    cut.assign(bytes.begin(), bytes.begin() + 14);  // inside the headers
    CHECK_THROWS_WITH(decode(d, cut, "head." + name), Contains("head." + name));
    for (uint32_t seed = 2; seed < 12; ++seed) {  // a valid signature followed by garbage
      auto junk = random_bytes(2048, seed);
      std::copy(bytes.begin(), bytes.begin() + 12, junk.begin());
      CHECK_THROWS_AS(decode(d, junk, "junk." + name), cb::Error);
    }
    for (uint32_t seed = 20; seed < 30; ++seed) {  // damage in the pixel data: an error or an image
      auto damaged = bytes;
      auto noise = random_bytes(32, seed);
      std::copy(noise.begin(), noise.end(), damaged.begin() + std::ptrdiff_t(damaged.size() / 2));
      torch::Tensor out;
      try {
        out = decode(d, damaged);
      } catch (const cb::Error&) {
        continue;
      }
      CHECK(out.size(2) == 3);
    }
    cb::ImageDecoder small(100);
    CHECK_THROWS_WITH(decode(small, bytes, "big." + name), Contains("big." + name) && Contains("exceeds"));
  }
  // Absurd header dimensions are refused before decoding: GIF screen 65535 x 65535, BMP 100000 x 100000.
  auto gif = files[0].second;
  std::fill(gif.begin() + 6, gif.begin() + 10, 0xFF);
  CHECK_THROWS_WITH(decode(d, gif, "huge.gif"), Contains("huge.gif") && Contains("exceeds"));
  auto bmp = files[3].second;
  for (int at : {18, 22}) bmp[size_t(at)] = 0xA0, bmp[size_t(at) + 1] = 0x86, bmp[size_t(at) + 2] = 0x01;
  CHECK_THROWS_WITH(decode(d, bmp, "huge.bmp"), Contains("huge.bmp") && Contains("exceeds"));
  // The decoder still works after the failures.
  CHECK(torch::equal(decode(d, files[3].second), rgb));
}

namespace {

// LZW codes packed LSB first, widened as a decoder adding one table entry per code after the first
// (and after each clear) widens them: make_pil_reference.py's lzw_pack.
std::vector<uint8_t> lzw_pack(const std::vector<int>& codes, int min_size) {
  const int clear = 1 << min_size;
  int width = min_size + 1, next = clear + 2, nbits = 0;
  bool fresh = true;
  uint64_t bits = 0;
  std::vector<uint8_t> out;
  for (int c : codes) {
    bits |= uint64_t(c) << nbits;
    for (nbits += width; nbits >= 8; nbits -= 8, bits >>= 8) out.push_back(uint8_t(bits));
    if (c == clear) {
      width = min_size + 1, next = clear + 2, fresh = true;
    } else if (c != clear + 1) {
      if (!fresh && next < 4096) {
        if (next == (1 << width) - 1 && width < 12) ++width;
        ++next;
      }
      fresh = false;
    }
  }
  if (nbits > 0) out.push_back(uint8_t(bits));
  return out;
}

// `data` as sub-blocks of `size` bytes, without the terminator.
std::vector<uint8_t> sub_blocks(const std::vector<uint8_t>& data, size_t size = 255) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i < data.size(); i += size) {
    const size_t n = std::min(size, data.size() - i);
    out.push_back(uint8_t(n));
    out.insert(out.end(), data.begin() + std::ptrdiff_t(i), data.begin() + std::ptrdiff_t(i + n));
  }
  return out;
}

struct HandGif {
  int screen_w = 11, screen_h = 7;
  std::vector<uint8_t> palette;       // 16 RGB entries: the global colour table
  std::vector<uint8_t> before_image;  // bytes between the colour table and the image descriptor
  int x = 0, y = 0, w = 11, h = 7;
  int min_size = 8;
  std::vector<uint8_t> data;  // the image's sub-blocks, terminator excluded
  std::vector<uint8_t> after = {0, ';'};

  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out = {'G', 'I', 'F', '8', '9', 'a'};
    auto le16 = [&](int v) { out.push_back(uint8_t(v)), out.push_back(uint8_t(v >> 8)); };
    le16(screen_w), le16(screen_h);
    out.insert(out.end(), {0x83, 0, 0});
    out.insert(out.end(), palette.begin(), palette.end());
    out.insert(out.end(), before_image.begin(), before_image.end());
    out.push_back(',');
    le16(x), le16(y), le16(w), le16(h);
    out.insert(out.end(), {0, uint8_t(min_size)});
    out.insert(out.end(), data.begin(), data.end());
    out.insert(out.end(), after.begin(), after.end());
    return out;
  }
};

std::vector<int> codes_of(const torch::Tensor& indices, int clear = 256) {
  std::vector<int> codes = {clear};
  const auto* p = indices.contiguous().data_ptr<uint8_t>();
  for (int64_t i = 0; i < indices.numel(); ++i) {
    if (i > 0 && i % 250 == 0) codes.push_back(clear);  // literals only: keep the table from filling
    codes.push_back(p[i]);
  }
  codes.push_back(clear + 1);
  return codes;
}

}  // namespace

// What Pillow 9.4's Image.open(f).convert('RGB') does with damaged GIFs (established with
// make_pil_reference.py's edge cases, which the reference case below compares file by file): stray
// bytes and odd blocks it reads through give the same pixels, what it refuses is a cb::Error naming the
// file. giflib, which decoded GIFs before, refused the first kind and read some of the second.
TEST_CASE("image decode: damaged GIFs as Pillow 9.4 reads them") {
  cb::ImageDecoder d;
  const auto pal = random_palette(16, 31);
  const auto idx = random_indices(7, 11, 16, 32);
  const auto expected = palette_rgb(idx, pal);
  const auto codes = codes_of(idx);
  HandGif gif;
  gif.palette = pal;
  gif.data = sub_blocks(lzw_pack(codes, 8), 40);
  REQUIRE(torch::equal(decode(d, gif.bytes(), "ok.gif"), expected));

  SECTION("read through: stray bytes, extensions, empty sub-blocks, no trailer, anything after the frame") {
    auto g = gif;
    g.before_image = {0x00, 0x01, 'x', 'y', 0xFF};  // not '!', ',' or ';': skipped byte by byte
    CHECK(torch::equal(decode(d, g.bytes(), "stray.gif"), expected));
    g.before_image = {'!', 0x42, 3, 'a', 'b', 'c', 2, 'd', 'e', 0, '!', 0xFE, 0, '!', 0xF9, 3, 0, 0, 0, 0};
    CHECK(torch::equal(decode(d, g.bytes(), "extensions.gif"), expected));  // unknown, empty comment, 3-byte GCE
    g = gif;
    g.data.insert(g.data.begin(), 0);  // an empty sub-block is skipped, not the end of the data
    g.data.insert(g.data.begin() + 1 + 41, {0, 0});
    CHECK(torch::equal(decode(d, g.bytes(), "empty_sub_blocks.gif"), expected));
    g = gif;
    g.after = {};  // neither terminator nor trailer
    CHECK(torch::equal(decode(d, g.bytes(), "no_trailer.gif"), expected));
    g.after = {0, ';', 'j', 'u', 'n', 'k', ',', 0};
    CHECK(torch::equal(decode(d, g.bytes(), "after_trailer.gif"), expected));
    g = gif;  // codes past the frame's last pixel are never read
    auto more = codes;
    more.insert(more.end() - 1, codes.begin(), codes.end() - 1);
    more.push_back(4095);
    g.data = sub_blocks(lzw_pack(more, 8));
    CHECK(torch::equal(decode(d, g.bytes(), "extra_codes.gif"), expected));
  }

  SECTION("LZW minimum code sizes 0 and 1 are decoded as Pillow does (codes never widen)") {
    auto g = gif;
    g.min_size = 0;  // 1-bit codes: 0 is the only literal, 1 the clear code
    g.data = sub_blocks(std::vector<uint8_t>(10, 0));
    CHECK(torch::equal(decode(d, g.bytes(), "size0.gif"), palette_rgb(torch::zeros({7, 11}, torch::kUInt8), pal)));
    const auto bits = random_indices(7, 11, 2, 33);
    g.min_size = 1;  // 2-bit codes for ever: literals 0 and 1, clear 2, end 3
    std::vector<int> c1 = {2};
    for (int64_t i = 0; i < bits.numel(); ++i) c1.push_back(bits.data_ptr<uint8_t>()[i]);
    c1.push_back(3);
    std::vector<uint8_t> packed;
    for (size_t i = 0; i < c1.size(); i += 4) {
      uint8_t b = 0;
      for (size_t k = 0; k < 4 && i + k < c1.size(); ++k) b |= uint8_t(c1[i + k] << (2 * k));
      packed.push_back(b);
    }
    g.data = sub_blocks(packed);
    CHECK(torch::equal(decode(d, g.bytes(), "size1.gif"), palette_rgb(bits, pal)));
  }

  SECTION("a frame of width 0 at x 0 is decoded over the whole canvas; any other empty frame is refused") {
    auto g = gif;
    g.y = 2, g.w = 0, g.h = 3;
    CHECK(torch::equal(decode(d, g.bytes(), "width0.gif"), expected));
    g.x = 4;
    CHECK_THROWS_WITH(decode(d, g.bytes(), "width0_at4.gif"), Contains("width0_at4.gif") && Contains("empty frame"));
    g.x = 0, g.w = 5, g.h = 0;
    CHECK_THROWS_WITH(decode(d, g.bytes(), "height0.gif"), Contains("height0.gif") && Contains("empty frame"));
  }

  SECTION("an end code before the last pixel: truncated, unless another 65536-byte read follows") {
    auto g = gif;
    std::vector<int> early(codes.begin(), codes.begin() + 31);
    early.push_back(257);
    g.data = sub_blocks(lzw_pack(early, 8));
    CHECK_THROWS_WITH(decode(d, g.bytes(), "end_early.gif"), Contains("end_early.gif") && Contains("truncated"));
    // 400 x 300 literals (~135 kB): Pillow's read loop hands the decoder the next read and it goes on.
    const auto big = random_indices(300, 400, 16, 34);
    auto big_codes = codes_of(big);
    big_codes.insert(big_codes.begin() + 1000, 257);
    g.screen_w = g.w = 400, g.screen_h = g.h = 300;
    g.data = sub_blocks(lzw_pack(big_codes, 8));
    CHECK(torch::equal(decode(d, g.bytes(), "end_then_more.gif"), palette_rgb(big, pal)));
  }

  SECTION("refused as Pillow refuses: cut data, bad blocks, no image, bad code size, a code past the table") {
    auto bytes = gif.bytes();
    const auto check_error = [&](const std::vector<uint8_t>& b, const std::string& name, const std::string& what) {
      INFO(name);
      CHECK_THROWS_WITH(decode(d, b, name), Contains(name) && Contains(what));
    };
    const size_t data_at = 13 + 48 + 10 + 1;
    check_error({bytes.begin(), bytes.begin() + std::ptrdiff_t(data_at + 5)}, "cut_data.gif", "truncated");
    check_error({bytes.begin(), bytes.end() - 3}, "cut_last_block.gif", "truncated");
    check_error({bytes.begin(), bytes.begin() + std::ptrdiff_t(data_at)}, "cut_code_size.gif", "truncated");
    check_error({bytes.begin(), bytes.begin() + 13 + 48 + 4}, "cut_descriptor.gif", "truncated");
    auto g = gif;
    g.data = sub_blocks(lzw_pack(codes, 8));
    g.data[0] = 255;  // one sub-block, said to be longer than the rest of the file
    check_error(g.bytes(), "long_block.gif", "truncated");
    g = gif;
    g.before_image = {';'};
    check_error(g.bytes(), "semicolon.gif", "no image");
    std::vector<uint8_t> header_only(bytes.begin(), bytes.begin() + 13 + 48);
    check_error(header_only, "header_only.gif", "no image");
    g.before_image = {'!', 0xF9, 3, 1, 0, 0, 0};  // transparency flag, but no index byte
    check_error(g.bytes(), "gce3.gif", "graphic control");
    g.before_image = {'!', 0xF9, 0};
    check_error(g.bytes(), "gce0.gif", "graphic control");
    g.before_image = {'!', 0x42, 0};  // Pillow skips sub-blocks on: ',' reads as a length
    check_error(g.bytes(), "empty_extension.gif", "image");
    g.before_image = {'!', 0xFF, 0};
    check_error(g.bytes(), "empty_application.gif", "application extension");
    g.before_image = {'!', 0xFF, 11, 'N', 'E', 'T', 'S', 'C', 'A', 'P', 'E', '2', '.', '0', 0};
    check_error(g.bytes(), "netscape.gif", "NETSCAPE2.0");
    g = gif;
    g.min_size = 13;
    check_error(g.bytes(), "size13.gif", "code size 13");
    g = gif;
    auto bad = codes;
    bad.insert(bad.begin() + 4, 300);  // the table holds 258..260 then
    g.data = sub_blocks(lzw_pack(bad, 8));
    check_error(g.bytes(), "bad_code.gif", "broken LZW");
  }
}

namespace {

// A BMP with a 40-byte info header: `palette` BGRX entries, `pixels` as stored (rows bottom-up, padded,
// or the RLE stream).
std::vector<uint8_t> bmp_file(int w, int h, int bits, const std::vector<uint8_t>& palette,
                              const std::vector<uint8_t>& pixels, int compression = 0) {
  std::vector<uint8_t> out = {'B', 'M'};
  auto le = [&](uint32_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(uint8_t(v >> (8 * i)));
  };
  const uint32_t offset = 14 + 40 + uint32_t(palette.size());
  le(offset + uint32_t(pixels.size()), 4), le(0, 4), le(offset, 4);
  le(40, 4), le(uint32_t(w), 4), le(uint32_t(h), 4), le(1, 2), le(uint32_t(bits), 2), le(uint32_t(compression), 4);
  le(uint32_t(pixels.size()), 4), le(2835, 4), le(2835, 4), le(uint32_t(palette.size() / 4), 4), le(0, 4);
  out.insert(out.end(), palette.begin(), palette.end());
  out.insert(out.end(), pixels.begin(), pixels.end());
  return out;
}

}  // namespace

// What Pillow 9.4 does with BMPs whose headers and data disagree (make_pil_reference.py's bmp_edge cases
// and mutants compare the rest file by file). FFmpeg, which decoded them all before, differed on each.
TEST_CASE("image decode: BMP edge cases as Pillow 9.4 reads them") {
  cb::ImageDecoder d;
  // 3 x 2, 8-bit, palette of 3: rows bottom-up, padded to 4 bytes.
  const std::vector<uint8_t> pal = {10, 20, 30, 0, 40, 50, 60, 0, 70, 80, 90, 0};  // BGRX
  const std::vector<uint8_t> rows = {2, 1, 0, 0, 0, 7, 2, 0};
  auto rgb = [&](std::initializer_list<int> indices) {  // top row first; entries past the palette gray
    std::vector<uint8_t> v;
    for (int i : indices) {
      if (i < 3) {
        v.insert(v.end(), {pal[size_t(4 * i + 2)], pal[size_t(4 * i + 1)], pal[size_t(4 * i)]});
      } else {
        v.insert(v.end(), {uint8_t(i), uint8_t(i), uint8_t(i)});
      }
    }
    return torch::tensor(v, torch::kUInt8).view({2, 3, 3});
  };
  const auto expected = rgb({0, 7, 2, 2, 1, 0});
  const auto file = bmp_file(3, 2, 8, pal, rows);
  REQUIRE(torch::equal(decode(d, file, "ok.bmp"), expected));

  SECTION("what PIL reads through: the last row unpadded, wrong size fields and planes, offset 0") {
    CHECK(torch::equal(decode(d, {file.begin(), file.end() - 1}, "unpadded.bmp"), expected));
    auto f = file;
    f[2] = 7, f[34] = 99, f[26] = 0;  // file size, image size, planes
    CHECK(torch::equal(decode(d, f, "fields.bmp"), expected));
    f = file;
    f[10] = 0;  // no offset: the pixels follow the palette
    CHECK(torch::equal(decode(d, f, "offset0.bmp"), expected));
    f = file;
    f[10] = 54;  // the offset says "after the info header": PIL skips the palette
    CHECK(torch::equal(decode(d, f, "offset54.bmp"), expected));
  }

  SECTION("palettes PIL reads its own way: black and white is a bit a pixel, gray a byte a pixel") {
    const std::vector<uint8_t> bw = {0, 0, 0, 0, 255, 255, 255, 0};
    // 8-bit rows 0b10100000..., 0b01000000...: PIL's mode "1" takes their first bits.
    const auto mono = decode(d, bmp_file(3, 2, 8, bw, {0xA0, 0, 0, 0, 0x40, 1, 1, 0}), "bw8.bmp");
    CHECK(torch::equal(mono.select(2, 0), torch::tensor({0, 255, 0, 255, 0, 255}, torch::kUInt8).view({2, 3})));
    std::vector<uint8_t> gray;
    for (int i = 0; i < 16; ++i) gray.insert(gray.end(), {uint8_t(i), uint8_t(i), uint8_t(i), 0});
    // 4-bit, 16 gray entries, 8 pixels (4 bytes) a row: PIL reads 8 bytes a row from 4 -> refused.
    CHECK_THROWS_WITH(decode(d, bmp_file(8, 1, 4, gray, {1, 2, 3, 4}), "gray4.bmp"),
                      Contains("gray4.bmp") && Contains("gray palette"));
  }

  SECTION("RLE8 with PIL 9.4's rules: runs clipped at the row, deltas, too little data refused") {
    // Bottom row: a run of 5 x index 1 clipped to 3, end of line; top row: delta (PIL skips 2 bytes,
    // then right 1, up 0), then 2 x index 2, end of bitmap.
    const std::vector<uint8_t> rle = {5, 1, 0, 0, 0, 2, 9, 9, 1, 0, 2, 2, 0, 1};
    CHECK(torch::equal(decode(d, bmp_file(3, 2, 8, pal, rle, 1), "rle.bmp"), rgb({0, 2, 2, 1, 1, 1})));
    const std::vector<uint8_t> early = {5, 1, 0, 0, 1, 2, 0, 1};
    CHECK_THROWS_WITH(decode(d, bmp_file(3, 2, 8, pal, early, 1), "rle_early.bmp"),
                      Contains("rle_early.bmp") && Contains("not enough image data"));
  }

  SECTION("refused as PIL refuses: a 56-byte header, unsupported masks, a cut last row") {
    auto f = file;
    f[14] = 56;
    CHECK_THROWS_WITH(decode(d, f, "v3.bmp"), Contains("v3.bmp") && Contains("56 bytes"));
    f = bmp_file(3, 2, 16, {}, std::vector<uint8_t>(16, 0x55), 3);
    f.insert(f.begin() + 54, {0, 0xF, 0, 0, 0xF0, 0, 0, 0, 0xF, 0, 0, 0});  // 4:4:4 masks
    f[10] += 12;
    CHECK_THROWS_WITH(decode(d, f, "444.bmp"), Contains("444.bmp") && Contains("bit-field"));
    CHECK_THROWS_WITH(decode(d, {file.begin(), file.end() - 2}, "cut.bmp"),
                      Contains("cut.bmp") && Contains("truncated"));
  }
}

// Pixel-exact agreement with Pillow on the files tests/datasets/media/make_pil_reference.py writes
// (GIF, WebP lossy/lossless/animated, BMP 1/4/8/16/24/32-bit and RLE8; damaged and mutated GIFs): the
// same pixels where Pillow gives pixels (<file>.rgb), a cb::Error naming the file where Pillow raises
// (<file>.err). Skipped unless CB_PIL_REFERENCE_DIR names such a directory: Pillow is not a build
// dependency.
TEST_CASE("image decode: PIL reference files (CB_PIL_REFERENCE_DIR)") {
  const char* dir = std::getenv("CB_PIL_REFERENCE_DIR");
  if (!dir) {
    WARN("SKIP: CB_PIL_REFERENCE_DIR not set");
    return;
  }
  cb::ImageDecoder d;
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const auto path = entry.path();
    if (path.extension() == ".rgb" || path.extension() == ".err") continue;
    INFO(path.string());
    if (std::filesystem::exists(path.string() + ".err")) {
      CHECK_THROWS_WITH(d.decode_file(path), Contains(path.filename().string()));
      ++files;
      continue;
    }
    std::ifstream ref(path.string() + ".rgb", std::ios::binary);
    REQUIRE(ref);
    int64_t h = 0, w = 0;
    ref >> h >> w;
    ref.get();
    auto expected = torch::empty({h, w, 3}, torch::kUInt8);
    ref.read(reinterpret_cast<char*>(expected.data_ptr<uint8_t>()), h * w * 3);
    REQUIRE(ref);
    ++files;
    torch::Tensor out;
    try {  // every file is checked: one failure does not hide the others
      out = d.decode_file(path);
    } catch (const cb::Error& e) {
      FAIL_CHECK("Pillow gives an image; we throw: " << e.what());
      continue;
    }
    CHECK(out.sizes() == expected.sizes());
    if (out.sizes() != expected.sizes()) continue;
    const int64_t max_diff = (out.to(torch::kInt) - expected.to(torch::kInt)).abs().max().item<int64_t>();
    CHECK(max_diff == 0);
  }
  CHECK(files > 0);
}

TEST_CASE("image decode: bad input throws cb::Error naming the file + the decoder stays usable") {
  cb::ImageDecoder d;
  const auto rgb = cb::test::pattern_frame(0, 32, 48);
  const auto jpeg = encode_jpeg(rgb), png = encode_png(rgb, PNG_COLOR_TYPE_RGB);

  std::vector<uint8_t> cut(jpeg.begin(), jpeg.begin() + std::ptrdiff_t(jpeg.size() / 2));
  CHECK_THROWS_WITH(decode(d, cut, "cut.jpg"), Contains("cut.jpg") && Contains("truncated"));
  cut.assign(png.begin(), png.begin() + std::ptrdiff_t(png.size() / 2));
  CHECK_THROWS_WITH(decode(d, cut, "cut.png"), Contains("cut.png") && Contains("PNG"));
  cut.assign(png.begin(), png.begin() + 20);  // inside IHDR
  CHECK_THROWS_AS(decode(d, cut, "head.png"), cb::Error);
  cut.assign(jpeg.begin(), jpeg.begin() + 3);  // the signature only
  CHECK_THROWS_AS(decode(d, cut, "sig.jpg"), cb::Error);

  CHECK_THROWS_WITH(decode(d, random_bytes(4096, 1), "noise.bin"),
                    Contains("noise.bin") && Contains("not a JPEG, PNG"));
  for (uint32_t seed = 2; seed < 12; ++seed) {  // valid signatures followed by garbage
    auto junk = random_bytes(2048, seed);
    std::copy(jpeg.begin(), jpeg.begin() + 3, junk.begin());
    CHECK_THROWS_AS(decode(d, junk, "junk.jpg"), cb::Error);
    std::copy(png.begin(), png.begin() + 8, junk.begin());
    CHECK_THROWS_AS(decode(d, junk, "junk.png"), cb::Error);
  }
  // Garbage inside the entropy-coded data of a JPEG must not crash either (it may decode).
  for (uint32_t seed = 20; seed < 30; ++seed) {
    auto damaged = jpeg;
    auto noise = random_bytes(64, seed);
    std::copy(noise.begin(), noise.end(), damaged.begin() + std::ptrdiff_t(damaged.size() / 2));
    try {
      CHECK(decode(d, damaged).sizes() == rgb.sizes());
    } catch (const cb::Error&) {
    }
  }
  CHECK_THROWS_WITH(decode(d, {}, "empty.jpg"), Contains("empty.jpg") && Contains("empty"));

  // Absurd header dimensions: refused before any pixel buffer is allocated.
  CHECK_THROWS_WITH(decode(d, cb::test::with_huge_png_header(png), "huge.png"),
                    Contains("huge.png") && Contains("exceeds"));
  const auto huge_jpeg = cb::test::with_huge_jpeg_header(jpeg);
  CHECK_THROWS_WITH(decode(d, huge_jpeg, "huge.jpg"), Contains("huge.jpg") && Contains("exceeds"));
  cb::ImageDecoder small(100);
  CHECK_THROWS_WITH(decode(small, jpeg, "big.jpg"), Contains("exceeds"));

  // After all those failures the same decoder still decodes.
  CHECK(torch::equal(decode(d, jpeg), cb::ImageDecoder().decode_bytes(jpeg.data(), jpeg.size(), "fresh")));

  // Files: missing, zero-length, and a good one.
  cb::test::TempDir tmp;
  CHECK_THROWS_WITH(d.decode_file(tmp.path / "missing.jpg"), Contains("missing.jpg") && Contains("no such file"));
  cb::test::write_bytes(tmp.path / "zero.jpg", nullptr, 0);
  CHECK_THROWS_WITH(d.decode_file(tmp.path / "zero.jpg"), Contains("zero.jpg") && Contains("empty"));
  cb::test::write_bytes(tmp.path / "ok.png", png.data(), png.size());
  CHECK(torch::equal(d.decode_file(tmp.path / "ok.png"), rgb));
}

TEST_CASE("video decode: frames by index with seeking equal sequential decoding + from file and memory") {
  cb::test::TempDir tmp;
  const int64_t n = 48, h = 48, w = 64;
  const auto file = tmp.path / "clip.mp4";
  cb::test::write_mp4(file, n, h, w, /*gop=*/6, /*fps=*/12);
  auto reader = cb::VideoReader::open_file(file);
  CHECK(reader.frame_count() == n);
  CHECK(reader.fps() == Approx(12));
  CHECK(reader.width() == w);
  CHECK(reader.height() == h);
  std::vector<int64_t> all(n);
  for (int64_t i = 0; i < n; ++i) all[size_t(i)] = i;
  const auto sequential = cb::VideoReader::open_file(file).frames(all);
  REQUIRE(sequential.sizes() == torch::IntArrayRef{n, h, w, 3});
  for (int64_t t : {0, 17, 47}) CHECK(mean_abs_diff(sequential[t], cb::test::pattern_frame(t, h, w)) < 12.0);
  // Far ahead (seek forward), backwards (seek back), repeats and any order.
  const std::vector<int64_t> picks{45, 2, 40, 2, 13};
  const auto got = reader.frames(picks);
  for (size_t i = 0; i < picks.size(); ++i) CHECK(torch::equal(got[int64_t(i)], sequential[picks[i]]));
  CHECK(reader.frames({n - 1, 0}).size(0) == 2);
  CHECK(reader.frames({4}, 23, 31).sizes() == torch::IntArrayRef{1, 23, 31, 3});
  CHECK_THROWS_WITH(reader.frames({n + 5}), Contains("clip.mp4") && Contains("frame"));
  CHECK_THROWS_AS(reader.frames({-1}), cb::Error);

  const auto bytes = cb::test::read_bytes(file);
  auto mem = cb::VideoReader::open_bytes(bytes.data(), bytes.size(), "clip(mem)");
  CHECK(torch::equal(mem.frames({30, 5}), torch::stack({sequential[30], sequential[5]})));

  // The valor sampling of a decoded video: middle frame of each of the n groups.
  std::mt19937_64 rng(0);
  CHECK(cb::sample_indices(n, 4, false, rng) == std::vector<int64_t>{5, 17, 29, 41});
  cb::VideoMapperOptions o;
  o.resolution = 20;
  o.sample_num = 4;
  const auto pixels = cb::VideoMapper(tmp.path, o).video_file(file, rng);
  CHECK(pixels.sizes() == torch::IntArrayRef{4, 3, 20, 20});
  CHECK(torch::equal(pixels, cb::frames_to_pixels({sequential[5], sequential[17], sequential[29], sequential[41]}, o)));

  // alpro_video_eval (registered, reads a path): uniform indices, decoder-side resize, /255, Normalize.
  CHECK(cb::uniform_frame_indices(n, 5) == std::vector<int64_t>{0, 9, 19, 28, 38});
  CHECK(cb::uniform_frame_indices(10, 3) == std::vector<int64_t>{0, 3, 6});
  CHECK(cb::uniform_frame_indices(5, 100) == std::vector<int64_t>{0, 1, 2, 3, 4});
  auto alpro = cb::make_processor(
      cb::Config(cb::parse_yaml("name: alpro_video_eval\nimage_size: 16\nn_frms: 5\n", "p.yaml"), "p.yaml"));
  REQUIRE(alpro.file);
  const auto clip = alpro.file(file.string());
  REQUIRE(clip.sizes() == torch::IntArrayRef{3, 5, 16, 16});
  const auto small = cb::VideoReader::open_file(file).frames({0, 9, 19, 28, 38}, 16, 16);
  const auto mean =
      torch::tensor({cb::kClipMean[0], cb::kClipMean[1], cb::kClipMean[2]}, torch::kFloat32).view({3, 1, 1, 1});
  const auto std =
      torch::tensor({cb::kClipStd[0], cb::kClipStd[1], cb::kClipStd[2]}, torch::kFloat32).view({3, 1, 1, 1});
  CHECK(torch::allclose(clip, (small.permute({3, 0, 1, 2}).to(torch::kFloat32) / 255 - mean) / std));
  CHECK_THROWS_WITH(alpro.file((tmp.path / "missing.mp4").string()), Contains("missing.mp4"));
  // A clip shorter than n_frms would give fewer frames than its batch holds: refused, naming it.
  cb::test::write_mp4(tmp.path / "short.mp4", 3, 16, 16, 3, 12);
  CHECK_THROWS_WITH(alpro.file((tmp.path / "short.mp4").string()),
                    Contains("short.mp4") && Contains("3 frame(s), fewer than n_frms = 5"));
  CHECK(cb::AlproVideoEvalProcessor{16}(tmp.path / "short.mp4").sizes() ==
        torch::IntArrayRef{3, 3, 16, 16});  // n_frms unset: every frame
}

TEST_CASE("video decode: a variable-frame-rate clip is indexed by its frames, as decord does") {
  cb::test::TempDir tmp;
  // 40 frames whose pts gaps go irregularly through 1..5 ticks of 1/12 s; frame k a solid colour.
  const int64_t n = 40;
  std::vector<int64_t> pts;
  for (int64_t k = 0, t = 0; k < n; ++k, t += 1 + (k * 7 + k / 3) % 5) pts.push_back(t);
  // Without and with B-frames (packets then arrive out of presentation order).
  const int b_frames = GENERATE(0, 2);
  INFO("B-frames: " << b_frames);
  const auto file = tmp.path / "vfr.mp4";
  cb::test::write_vfr_mp4(file, pts, 32, 32, /*gop=*/8, /*rate=*/12, b_frames);
  std::vector<torch::Tensor> colours;
  for (int64_t k = 0; k < n; ++k) colours.push_back(cb::test::solid_colour(k).to(torch::kInt));
  const auto palette = torch::stack(colours);     // [n, 3]
  auto shown = [&](const torch::Tensor& frame) {  // which frame an image [H, W, 3] shows: its nearest colour
    const auto centre = frame[frame.size(0) / 2][frame.size(1) / 2].to(torch::kInt);
    return (palette - centre).abs().sum(1).argmin().item<int64_t>();
  };
  auto shown_all = [&](const torch::Tensor& frames) {
    std::vector<int64_t> out;
    for (int64_t i = 0; i < frames.size(0); ++i) out.push_back(shown(frames[i]));
    return out;
  };

  auto reader = cb::VideoReader::open_file(file);
  REQUIRE(reader.frame_count() == n);
  std::vector<int64_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  CHECK(shown_all(reader.frames(all)) == all);
  // Far frames (seeks by the table's pts), backwards, any order, on a fresh reader.
  const std::vector<int64_t> picks{37, 3, 22, 39, 0, 30, 9};
  CHECK(shown_all(cb::VideoReader::open_file(file).frames(picks)) == picks);

  // valor: the middle frame of each of 8 groups over all 40 frames (decord's len and indexing).
  std::mt19937_64 rng(0);
  const auto middle = cb::sample_indices(n, 8, false, rng);
  CHECK(middle == std::vector<int64_t>{2, 7, 12, 17, 22, 27, 32, 37});
  cb::VideoMapperOptions o;
  o.resolution = 16;
  o.sample_num = 8;
  const auto pixels = cb::VideoMapper(tmp.path, o).video_file(file, rng);
  std::vector<torch::Tensor> expected;
  const auto middle_frames = cb::VideoReader::open_file(file).frames(middle);
  CHECK(shown_all(middle_frames) == middle);
  for (int64_t i = 0; i < 8; ++i) expected.push_back(middle_frames[i]);
  CHECK(torch::equal(pixels, cb::frames_to_pixels(expected, o)));
  // alpro_video_eval: uniformly spaced frames over all 40.
  const auto uniform = cb::uniform_frame_indices(n, 5);
  CHECK(shown_all(cb::VideoReader::open_file(file).frames(uniform, 16, 16)) == uniform);
}

TEST_CASE("video decode: truncated + random + empty + missing files throw cb::Error naming the file") {
  cb::test::TempDir tmp;
  const auto file = tmp.path / "clip.mp4";
  cb::test::write_mp4(file, 24, 32, 32, 6, 12);
  const auto bytes = cb::test::read_bytes(file);
  auto open_and_read_all = [](const uint8_t* data, size_t size, const std::string& name) {
    auto r = cb::VideoReader::open_bytes(data, size, name);
    const int64_t count = r.frame_count();
    std::vector<int64_t> all(size_t(std::max<int64_t>(count, 1)));
    for (size_t i = 0; i < all.size(); ++i) all[i] = int64_t(i);
    return r.frames(all);
  };
  REQUIRE(open_and_read_all(bytes.data(), bytes.size(), "whole.mp4").size(0) == 24);
  // Cut at several points: header only, middle of the media data, just before the end.
  for (double frac : {0.02, 0.3, 0.6, 0.95}) {
    const auto size = size_t(double(bytes.size()) * frac);
    CHECK_THROWS_WITH(open_and_read_all(bytes.data(), size, "cut.mp4"), Contains("cut.mp4"));
  }
  // With the index first, a cut inside the media data opens fine and fails on the missing frames.
  cb::test::write_mp4(tmp.path / "fast.mp4", 24, 32, 32, 6, 12, /*faststart=*/true);
  const auto fast = cb::test::read_bytes(tmp.path / "fast.mp4");
  REQUIRE(open_and_read_all(fast.data(), fast.size(), "fast.mp4").size(0) == 24);
  auto cut = cb::VideoReader::open_bytes(fast.data(), fast.size() * 6 / 10, "fastcut.mp4");
  CHECK(cut.frame_count() == 24);
  CHECK(cut.frames({1}).size(0) == 1);
  CHECK_THROWS_WITH(cut.frames({23}), Contains("fastcut.mp4") && Contains("only frames up to") &&
                                          Contains("ends before the 24 frames its header declares (truncated?)"));
  // A far frame past the cut is not in the packet table: refused before any decoding.
  cb::test::write_mp4(tmp.path / "long.mp4", 96, 32, 32, 6, 12, /*faststart=*/true);
  const auto longer = cb::test::read_bytes(tmp.path / "long.mp4");
  auto long_cut = cb::VideoReader::open_bytes(longer.data(), longer.size() * 6 / 10, "longcut.mp4");
  CHECK(long_cut.frame_count() == 96);
  CHECK_THROWS_WITH(long_cut.frames({90}), Contains("longcut.mp4") && Contains("only frames up to") &&
                                               Contains("ends before the 96 frames its header declares"));
  const auto noise = random_bytes(8192, 7);
  CHECK_THROWS_WITH(open_and_read_all(noise.data(), noise.size(), "noise.mp4"), Contains("noise.mp4"));
  CHECK_THROWS_WITH(open_and_read_all(bytes.data(), 0, "empty.mp4"), Contains("empty.mp4"));
  CHECK_THROWS_WITH(cb::VideoReader::open_file(tmp.path / "none.mp4"),
                    Contains("none.mp4") && Contains("no such file"));
  cb::test::write_bytes(tmp.path / "zero.mp4", nullptr, 0);
  CHECK_THROWS_WITH(cb::VideoReader::open_file(tmp.path / "zero.mp4"), Contains("zero.mp4") && Contains("empty"));
  // An image is not a video stream we can sample from... but a JPEG is a one-frame "video" to FFmpeg;
  // a PNG file read as video must at least not crash.
  const auto png = encode_png(cb::test::pattern_frame(0, 8, 8), PNG_COLOR_TYPE_RGB);
  try {
    CHECK(open_and_read_all(png.data(), png.size(), "image.png").size(0) >= 1);
  } catch (const cb::Error&) {
  }
}

TEST_CASE("valor VideoMapper: frame directories and images") {
  cb::test::TempDir tmp;
  const int64_t frames = 7;
  std::vector<torch::Tensor> source;
  std::filesystem::create_directories(tmp.path / "videos" / "ab" / "AbcClip");
  for (int64_t k = 0; k < frames; ++k) {
    source.push_back(cb::test::pattern_frame(k, 30, 40));
    const auto jpeg = encode_jpeg(source.back());
    char name[32];
    std::snprintf(name, sizeof(name), "img_%04lld.jpg", (long long)(k + 1));
    cb::test::write_bytes(tmp.path / "videos" / "ab" / "AbcClip" / name, jpeg.data(), jpeg.size());
  }
  cb::VideoMapperOptions o;
  o.resolution = 16;
  o.sample_num = 3;
  cb::VideoMapper mapper(tmp.path / "videos", o);
  cb::ImageDecoder decoder;
  std::mt19937_64 rng(1);
  // <root>/<id> is missing, so <root>/<id[:2].lower()>/<id> is used; groups {0,1,2} {3,4} {5,6}.
  const auto picked = mapper.pick_frames("AbcClip", rng);
  REQUIRE(picked.size() == 3);
  CHECK(picked[0].filename() == "img_0002.jpg");
  CHECK(picked[1].filename() == "img_0004.jpg");
  CHECK(picked[2].filename() == "img_0006.jpg");
  const auto pixels = mapper.video("AbcClip", decoder, rng);
  CHECK(pixels.sizes() == torch::IntArrayRef{3, 3, 16, 16});
  CHECK(torch::equal(pixels[1], cb::frames_to_pixels({decoder.decode_file(picked[1])}, o)[0]));

  // Training: one random member per group.
  o.training = true;
  cb::VideoMapper train(tmp.path / "videos", o);
  for (int trial = 0; trial < 20; ++trial) {
    const auto p = train.pick_frames("AbcClip", rng);
    CHECK(p[0].filename() <= "img_0003.jpg");
    CHECK((p[1].filename() == "img_0004.jpg" || p[1].filename() == "img_0005.jpg"));
    CHECK(p[2].filename() >= "img_0006.jpg");
  }
  // More frames requested than exist: the last frame repeats.
  o.training = false;
  o.sample_num = 9;
  CHECK(cb::VideoMapper(tmp.path / "videos", o).pick_frames("AbcClip", rng).back().filename() == "img_0007.jpg");

  // Images: <id>, then <id>.jpg, then .jpg -> .JPEG.
  const auto jpeg = encode_jpeg(source[0]);
  cb::test::write_bytes(tmp.path / "videos" / "photo.JPEG", jpeg.data(), jpeg.size());
  const auto image = mapper.image("photo", decoder, rng);
  CHECK(image.sizes() == torch::IntArrayRef{1, 3, 16, 16});
  CHECK_THROWS_WITH(mapper.image("nothing", decoder, rng), Contains("nothing"));
  CHECK_THROWS_WITH(mapper.video("nothing", decoder, rng), Contains("nothing"));
  // alpro_video_eval on a frame directory: the middle frame of each group, PIL bicubic resize.
  cb::AlproVideoEvalProcessor alpro{12, 3};
  const auto from_dir = alpro(tmp.path / "videos" / "ab" / "AbcClip");
  CHECK(from_dir.sizes() == torch::IntArrayRef{3, 3, 12, 12});
  CHECK_THROWS_WITH((cb::AlproVideoEvalProcessor{12, 20}(tmp.path / "videos" / "ab" / "AbcClip")),
                    Contains("AbcClip") && Contains("fewer than n_frms = 20"));

  // A corrupt frame file fails with its name.
  cb::test::write_bytes(tmp.path / "videos" / "ab" / "AbcClip" / "img_0004.jpg", jpeg.data(), jpeg.size() / 3);
  o.sample_num = 3;
  CHECK_THROWS_WITH(cb::VideoMapper(tmp.path / "videos", o).video("AbcClip", decoder, rng), Contains("img_0004.jpg"));
}
