// WebP -> RGB through libwebp, the library behind Pillow's WebPImagePlugin, so lossy files get libwebp's
// own YUV -> RGB conversion (fancy upsampling) and match PIL exactly rather than within a rounding
// tolerance. A still image is decoded straight into the output (MODE_RGB gives the same R, G, B as PIL's
// MODE_RGBA; alpha is dropped by convert('RGB')); an animation goes through WebPAnimDecoder as in PIL and
// its first canvas is kept (transparent black outside the first frame).
#include <webp/decode.h>
#include <webp/demux.h>

#include <cstring>
#include <memory>

#include "datasets/media/image_formats.h"
#include "framework/error.h"

namespace cb::media {

namespace {

const char* status_text(VP8StatusCode s) {
  switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "not enough data";
    default: return "unknown error";
  }
}

[[noreturn]] void fail_webp(VP8StatusCode s, const std::string& name) {
  if (s == VP8_STATUS_NOT_ENOUGH_DATA) fail("image '{}': truncated WebP data (unexpected end of file)", name);
  fail("image '{}': corrupt WebP: {}", name, status_text(s));
}

struct AnimDeleter {
  void operator()(WebPAnimDecoder* d) const { WebPAnimDecoderDelete(d); }
};

}  // namespace

bool is_webp(const uint8_t* d, size_t n) {
  return n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0;
}

torch::Tensor decode_webp(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  WebPBitstreamFeatures features;
  if (VP8StatusCode s = WebPGetFeatures(data, size, &features); s != VP8_STATUS_OK) fail_webp(s, name);
  const int64_t w = features.width, h = features.height;  // the canvas, for an animation
  check_image_pixels(w, h, max_pixels, name);
  auto rgb = torch::empty({h, w, 3}, torch::kUInt8);

  if (!features.has_animation) {
    WebPDecoderConfig config;
    if (!WebPInitDecoderConfig(&config)) fail("image '{}': libwebp version mismatch", name);
    config.output.colorspace = MODE_RGB;
    config.output.is_external_memory = 1;
    config.output.u.RGBA.rgba = rgb.data_ptr<uint8_t>();
    config.output.u.RGBA.stride = int(w * 3);
    config.output.u.RGBA.size = size_t(w * h * 3);
    const VP8StatusCode s = WebPDecode(data, size, &config);
    WebPFreeDecBuffer(&config.output);
    if (s != VP8_STATUS_OK) fail_webp(s, name);
    return rgb;
  }

  WebPAnimDecoderOptions options;
  if (!WebPAnimDecoderOptionsInit(&options)) fail("image '{}': libwebp version mismatch", name);
  options.color_mode = MODE_RGBA;
  options.use_threads = 0;
  const WebPData input{data, size};
  std::unique_ptr<WebPAnimDecoder, AnimDeleter> anim(WebPAnimDecoderNew(&input, &options));
  if (!anim) fail("image '{}': corrupt or truncated animated WebP (libwebp cannot demux it)", name);
  uint8_t* canvas = nullptr;
  int timestamp = 0;
  if (!WebPAnimDecoderGetNext(anim.get(), &canvas, &timestamp))
    fail("image '{}': corrupt or truncated animated WebP (its first frame does not decode)", name);
  uint8_t* out = rgb.data_ptr<uint8_t>();
  for (int64_t p = 0; p < w * h; ++p) std::memcpy(out + 3 * p, canvas + 4 * p, 3);
  return rgb;
}

}  // namespace cb::media
