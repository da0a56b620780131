#include "tests/support/make_media.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <random>
#include <stdexcept>

extern "C" {
#include <gif_lib.h>
#include <jpeglib.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
#include <png.h>
#include <webp/encode.h>
}

namespace cb::test {

std::vector<uint8_t> encode_jpeg(const torch::Tensor& image, int quality) {
  auto img = image.contiguous();
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* out = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &out, &size);
  c.image_width = JDIMENSION(img.size(1));
  c.image_height = JDIMENSION(img.size(0));
  c.input_components = int(img.size(2));
  c.in_color_space = img.size(2) == 4 ? JCS_CMYK : img.size(2) == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = img.data_ptr<uint8_t>() + int64_t(c.next_scanline) * img.size(1) * img.size(2);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::vector<uint8_t> bytes(out, out + size);
  free(out);
  return bytes;
}

std::vector<uint8_t> encode_png(const torch::Tensor& samples, int color_type, int bit_depth,
                                const std::vector<uint8_t>& palette) {
  std::vector<uint8_t> bytes;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(
      png, &bytes,
      [](png_structp p, png_bytep d, png_size_t n) {
        auto* v = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
        v->insert(v->end(), d, d + n);
      },
      nullptr);
  const auto h = png_uint_32(samples.size(0)), w = png_uint_32(samples.size(1));
  const int channels = int(samples.size(2));
  png_set_IHDR(png, info, w, h, bit_depth, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  std::vector<png_color> pal;
  for (size_t i = 0; i + 2 < palette.size(); i += 3) pal.push_back({palette[i], palette[i + 1], palette[i + 2]});
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_PLTE(png, info, pal.data(), int(pal.size()));
  png_write_info(png, info);
  if (bit_depth < 8) png_set_packing(png);
  auto s = samples.to(torch::kInt32).contiguous();
  const int bytes_per = bit_depth == 16 ? 2 : 1;
  std::vector<uint8_t> row(size_t(w) * size_t(channels) * size_t(bytes_per));
  for (png_uint_32 y = 0; y < h; ++y) {
    const int32_t* in = s.data_ptr<int32_t>() + int64_t(y) * w * channels;
    for (size_t i = 0; i < size_t(w) * size_t(channels); ++i) {
      if (bytes_per == 2) {
        row[2 * i] = uint8_t(in[i] >> 8);
        row[2 * i + 1] = uint8_t(in[i] & 0xFF);
      } else {
        row[i] = uint8_t(in[i]);
      }
    }
    png_write_row(png, row.data());
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return bytes;
}

torch::Tensor pattern_frame(int64_t t, int64_t height, int64_t width) {
  auto y = torch::arange(height, torch::kFloat32).view({height, 1, 1});
  auto x = torch::arange(width, torch::kFloat32).view({1, width, 1});
  auto c = torch::tensor({0.0f, 1.0f, 2.0f}).view({1, 1, 3});
  auto v = 128 + 100 * torch::sin((x + 3 * t) / 9.0 + c) * torch::cos((y - 2 * t) / 11.0 - c);
  return v.clamp(0, 255).to(torch::kUInt8);
}

namespace {

// MPEG-4 Part 2 in MP4: frame(t) at pts(t) (in units of 1/rate s) for t < frames.
void encode_mp4(const std::filesystem::path& path, int64_t frames, const std::function<int64_t(int64_t)>& pts,
                const std::function<torch::Tensor(int64_t)>& image, int64_t height, int64_t width, int gop, int fps,
                bool faststart, int b_frames = 0) {
  auto check = [](int rc, const char* what) {
    if (rc < 0) throw std::runtime_error(std::string("write_mp4: ") + what);
  };
  AVFormatContext* fmt = nullptr;
  check(avformat_alloc_output_context2(&fmt, nullptr, "mp4", path.c_str()), "output context");
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
  if (!codec) throw std::runtime_error("write_mp4: no MPEG-4 encoder");
  AVStream* st = avformat_new_stream(fmt, nullptr);
  AVCodecContext* enc = avcodec_alloc_context3(codec);
  enc->width = int(width);
  enc->height = int(height);
  enc->pix_fmt = AV_PIX_FMT_YUV420P;
  enc->time_base = AVRational{1, fps};
  enc->framerate = AVRational{fps, 1};
  enc->gop_size = gop;
  enc->max_b_frames = b_frames;
  enc->bit_rate = 2000000;
  if (fmt->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  check(avcodec_open2(enc, codec, nullptr), "open encoder");
  check(avcodec_parameters_from_context(st->codecpar, enc), "parameters");
  st->time_base = enc->time_base;
  check(avio_open(&fmt->pb, path.c_str(), AVIO_FLAG_WRITE), "open file");
  AVDictionary* options = nullptr;
  if (faststart) av_dict_set(&options, "movflags", "+faststart", 0);
  const int header = avformat_write_header(fmt, &options);
  av_dict_free(&options);
  check(header, "header");
  SwsContext* sws = sws_getContext(int(width), int(height), AV_PIX_FMT_RGB24, int(width), int(height),
                                   AV_PIX_FMT_YUV420P, SWS_BILINEAR, nullptr, nullptr, nullptr);
  AVFrame* frame = av_frame_alloc();
  frame->format = enc->pix_fmt;
  frame->width = enc->width;
  frame->height = enc->height;
  check(av_frame_get_buffer(frame, 0), "frame buffer");
  AVPacket* pkt = av_packet_alloc();
  auto drain = [&] {
    while (avcodec_receive_packet(enc, pkt) >= 0) {
      av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
      pkt->stream_index = st->index;
      check(av_interleaved_write_frame(fmt, pkt), "write packet");
    }
  };
  for (int64_t t = 0; t < frames; ++t) {
    // swscale's SIMD reads up to 16 bytes past a row: give the source a spare row.
    auto rgb = torch::zeros({height + 1, width, 3}, torch::kUInt8);
    rgb.slice(0, 0, height).copy_(image(t));
    const uint8_t* src[1] = {rgb.data_ptr<uint8_t>()};
    const int stride[1] = {int(width * 3)};
    check(av_frame_make_writable(frame), "writable");
    sws_scale(sws, src, stride, 0, int(height), frame->data, frame->linesize);
    frame->pts = pts(t);
    check(avcodec_send_frame(enc, frame), "encode");
    drain();
  }
  avcodec_send_frame(enc, nullptr);
  drain();
  check(av_write_trailer(fmt), "trailer");
  avio_closep(&fmt->pb);
  av_packet_free(&pkt);
  av_frame_free(&frame);
  sws_freeContext(sws);
  avcodec_free_context(&enc);
  avformat_free_context(fmt);
}

}  // namespace

void write_mp4(const std::filesystem::path& path, int64_t frames, int64_t height, int64_t width, int gop, int fps,
               bool faststart) {
  encode_mp4(
      path, frames, [](int64_t t) { return t; }, [&](int64_t t) { return pattern_frame(t, height, width); }, height,
      width, gop, fps, faststart);
}

torch::Tensor solid_colour(int64_t k) {
  return torch::tensor({int(k * 53 % 256), int(k * 101 % 256), int((k * 29 + 64) % 256)}, torch::kUInt8);
}

void write_vfr_mp4(const std::filesystem::path& path, const std::vector<int64_t>& pts, int64_t height, int64_t width,
                   int gop, int rate, int b_frames) {
  encode_mp4(
      path, int64_t(pts.size()), [&](int64_t t) { return pts[size_t(t)]; },
      [&](int64_t t) {
        return solid_colour(t).view({1, 1, 3}).expand({height, width, 3});
      },
      height, width, gop, rate, false, b_frames);
}

namespace {

uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put_be32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (24 - 8 * i));
}

}  // namespace

std::vector<uint8_t> encode_gif(const torch::Tensor& indices, const std::vector<uint8_t>& palette, int64_t screen_w,
                                int64_t screen_h, const GifFrame& frame) {
  auto idx = indices.contiguous();
  const int h = int(idx.size(0)), w = int(idx.size(1));
  std::vector<uint8_t> bytes;
  int err = 0;
  GifFileType* gif = EGifOpen(
      &bytes,
      [](GifFileType* g, const GifByteType* d, int n) {
        auto* v = static_cast<std::vector<uint8_t>*>(g->UserData);
        v->insert(v->end(), d, d + n);
        return n;
      },
      &err);
  if (!gif) throw std::runtime_error("EGifOpen failed");
  EGifSetGifVersion(gif, true);
  ColorMapObject* map = nullptr;
  if (!palette.empty()) {
    const int colors = int(palette.size() / 3);
    map = GifMakeMapObject(1 << std::max(1, GifBitSize(colors)), nullptr);
    for (int i = 0; i < colors; ++i) map->Colors[i] = {palette[3 * i], palette[3 * i + 1], palette[3 * i + 2]};
  }
  bool ok = EGifPutScreenDesc(gif, int(screen_w), int(screen_h), 8, 0, frame.local_palette ? nullptr : map) == GIF_OK;
  if (frame.transparent >= 0) {
    const GifByteType gce[4] = {1, 0, 0, GifByteType(frame.transparent)};
    ok = ok && EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, 4, gce) == GIF_OK;
  }
  ok = ok && EGifPutImageDesc(gif, int(frame.left), int(frame.top), w, h, frame.interlace,
                              frame.local_palette ? map : nullptr) == GIF_OK;
  std::vector<int> rows;  // an interlaced image is sent in its four passes
  constexpr int kStart[4] = {0, 4, 2, 1}, kStep[4] = {8, 8, 4, 2};
  for (int pass = 0; pass < (frame.interlace ? 4 : 1); ++pass)
    for (int y = frame.interlace ? kStart[pass] : 0; y < h; y += frame.interlace ? kStep[pass] : 1) rows.push_back(y);
  for (int y : rows) ok = ok && EGifPutLine(gif, idx.data_ptr<uint8_t>() + int64_t(y) * w, w) == GIF_OK;
  GifFreeMapObject(map);
  ok = EGifCloseFile(gif, &err) == GIF_OK && ok;
  if (!ok) throw std::runtime_error("giflib could not encode the test GIF");
  return bytes;
}

std::vector<uint8_t> encode_webp(const torch::Tensor& image, bool lossless, float quality) {
  auto img = image.contiguous();
  const int h = int(img.size(0)), w = int(img.size(1)), c = int(img.size(2));
  WebPConfig config;
  WebPPicture pic;
  if (!WebPConfigInit(&config) || !WebPPictureInit(&pic)) throw std::runtime_error("libwebp version mismatch");
  config.lossless = lossless;
  config.quality = quality;
  config.exact = 1;
  pic.use_argb = lossless;
  pic.width = w;
  pic.height = h;
  WebPMemoryWriter writer;
  WebPMemoryWriterInit(&writer);
  pic.writer = WebPMemoryWrite;
  pic.custom_ptr = &writer;
  const bool ok = (c == 4 ? WebPPictureImportRGBA(&pic, img.data_ptr<uint8_t>(), w * 4)
                          : WebPPictureImportRGB(&pic, img.data_ptr<uint8_t>(), w * 3)) &&
                  WebPEncode(&config, &pic);
  std::vector<uint8_t> bytes(writer.mem, writer.mem + writer.size);
  WebPPictureFree(&pic);
  WebPMemoryWriterClear(&writer);
  if (!ok) throw std::runtime_error("libwebp could not encode the test WebP");
  return bytes;
}

std::vector<uint8_t> encode_bmp(const torch::Tensor& image, int bits, const std::vector<uint8_t>& palette,
                                bool top_down) {
  auto img = image.contiguous();
  const int64_t h = img.size(0), w = img.size(1), c = img.size(2);
  const int64_t stride = (w * bits + 31) / 32 * 4, colors = int64_t(palette.size() / 3);
  const uint32_t offset = uint32_t(14 + 40 + 4 * colors), total = uint32_t(offset + stride * h);
  std::vector<uint8_t> b;
  auto put = [&](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(uint8_t(v >> (8 * i)));
  };
  b.push_back('B'), b.push_back('M');
  put(total, 4), put(0, 4), put(offset, 4);
  put(40, 4), put(uint32_t(w), 4), put(uint32_t(top_down ? -h : h), 4), put(1, 2), put(uint32_t(bits), 2);
  put(0, 4), put(uint32_t(stride * h), 4), put(2835, 4), put(2835, 4), put(uint32_t(colors), 4), put(0, 4);
  for (int64_t i = 0; i < colors; ++i)
    put(palette[3 * i + 2], 1), put(palette[3 * i + 1], 1), put(palette[3 * i], 1), put(0, 1);
  const uint8_t* px = img.data_ptr<uint8_t>();
  for (int64_t r = 0; r < h; ++r) {
    const int64_t y = top_down ? r : h - 1 - r;
    const size_t row_start = b.size();
    for (int64_t x = 0; x < w; ++x) {
      const uint8_t* p = px + (y * w + x) * c;
      if (bits == 8) b.push_back(p[0]);
      else b.push_back(p[2]), b.push_back(p[1]), b.push_back(p[0]);
      if (bits == 32) b.push_back(c == 4 ? p[3] : 255);
    }
    b.resize(row_start + size_t(stride), 0);
  }
  return b;
}

std::vector<uint8_t> with_huge_png_header(std::vector<uint8_t> png) {
  if (png.size() < 33) throw std::runtime_error("not a PNG");
  put_be32(png.data() + 16, 100000);
  put_be32(png.data() + 20, 100000);
  put_be32(png.data() + 29, crc32(png.data() + 12, 17));
  return png;
}

std::vector<uint8_t> with_huge_jpeg_header(std::vector<uint8_t> jpeg) {
  size_t sof = 2;
  while (sof + 9 < jpeg.size() && !(jpeg[sof] == 0xFF && jpeg[sof + 1] == 0xC0)) ++sof;
  if (sof + 9 >= jpeg.size()) throw std::runtime_error("no baseline SOF0 marker");
  for (size_t i : {sof + 5, sof + 6, sof + 7, sof + 8}) jpeg[i] = 0xEA;
  return jpeg;
}

std::vector<uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::filesystem::path& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
}

void write_file(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  std::filesystem::create_directories(path.parent_path());
  write_bytes(path, bytes.data(), bytes.size());
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::vector<uint8_t> encode_wav_tone(int sample_rate, int samples, double freq) {
  std::vector<uint8_t> out;
  auto put = [&](uint32_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  auto tag = [&](const char* t) { out.insert(out.end(), t, t + 4); };
  const uint32_t data = samples * 2;
  tag("RIFF"), put(36 + data, 4), tag("WAVE"), tag("fmt "), put(16, 4), put(1, 2), put(1, 2);  // PCM, mono
  put(sample_rate, 4), put(sample_rate * 2, 4), put(2, 2), put(16, 2), tag("data"), put(data, 4);
  for (int i = 0; i < samples; ++i)
    put(static_cast<uint16_t>(static_cast<int16_t>(8000 * std::sin(2 * M_PI * freq * i / sample_rate))), 2);
  return out;
}

TempDir::TempDir() {
  std::random_device rd;
  path = std::filesystem::temp_directory_path() / ("cb-images-" + std::to_string(rd()) + std::to_string(rd()));
  std::filesystem::create_directories(path);
}
TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

}  // namespace cb::test
