// BMP -> RGB as Pillow 9.4's BmpImagePlugin + convert('RGB'): FFmpeg's bmp decoder (libavcodec, which
// parses the file header itself: no demuxer) does the unpacking, including RLE4/RLE8 and bit fields, and
// the samples are widened here the way PIL's unpackers do (5-bit x -> x * 255 / 31, 6-bit x * 255 / 63,
// where FFmpeg's own converters would replicate high bits). The header is read first for PIL's pixel
// limit and to call a short uncompressed file truncated, as PIL does, where FFmpeg would pad it.
#include <cstring>
#include <limits>

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

torch::Tensor decode_bmp(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  // BITMAPFILEHEADER (14 bytes), then an info header: 12 bytes (OS/2 core) or 40 and longer.
  if (size < 18 || size < 14 + le32(data + 14)) fail("image '{}': truncated BMP data (incomplete header)", name);
  const uint32_t header = le32(data + 14), offset = le32(data + 10);
  int64_t w = 0, h = 0, bits = 0, compression = 0;
  if (header == 12) {
    w = le16(data + 18), h = le16(data + 20), bits = le16(data + 24);
  } else if (header >= 40) {
    w = int32_t(le32(data + 18)), h = int32_t(le32(data + 22)), bits = le16(data + 28);
    compression = le32(data + 30);
  } else {
    fail("image '{}': corrupt BMP: info header of {} bytes", name, header);
  }
  h = h < 0 ? -h : h;  // negative: rows stored top-down
  check_image_pixels(w, h, max_pixels, name);
  const int64_t stride = (w * bits + 31) / 32 * 4;
  if ((compression == 0 || compression == 3) && int64_t(offset) + stride * h > int64_t(size))
    fail("image '{}': truncated BMP data ({} bytes of pixels expected, {} present)", name, stride * h,
         int64_t(size) - std::min<int64_t>(offset, int64_t(size)));
  if (size > size_t(std::numeric_limits<int>::max())) fail("image '{}': BMP file too large", name);

  ffmpeg::quiet_logging();
  const AVCodec* codec = avcodec_find_decoder(AV_CODEC_ID_BMP);
  if (!codec) fail("image '{}': this FFmpeg has no BMP decoder", name);
  ffmpeg::CodecPtr dec(avcodec_alloc_context3(codec));
  if (!dec || avcodec_open2(dec.get(), codec, nullptr) < 0) fail("image '{}': cannot open FFmpeg's BMP decoder", name);
  ffmpeg::PacketPtr packet(av_packet_alloc());
  ffmpeg::FramePtr frame(av_frame_alloc());
  if (!packet || !frame) fail("image '{}': out of memory", name);
  packet->data = const_cast<uint8_t*>(data);  // not reference-counted: libavcodec copies it
  packet->size = int(size);
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
      if (fmt == AV_PIX_FMT_PAL8) {
        const uint32_t c = reinterpret_cast<const uint32_t*>(frame->data[1])[in[x]];  // 0xAARRGGBB
        out[0] = uint8_t(c >> 16), out[1] = uint8_t(c >> 8), out[2] = uint8_t(c);
      } else if (fmt == AV_PIX_FMT_RGB555LE) {  // PIL's "BGR;15"
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
