// Tiny media made at test time (no files committed): JPEG, PNG, GIF and WebP bytes through libjpeg,
// libpng, giflib and libwebp, BMP written by hand, MPEG-4 Part 2 in an MP4 container through
// libavcodec/libavformat, PCM WAV written by hand.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace cb::test {

// rgb [H, W, 3] (gray [H, W, 1], CMYK [H, W, 4]) uint8 -> JPEG bytes (baseline, 4:2:0 for colour).
std::vector<uint8_t> encode_jpeg(const torch::Tensor& image, int quality = 95);
// PNG bytes of `samples` [H, W, C] (uint8, or int32 holding 16-bit values when bit_depth is 16) with
// libpng colour type `color_type`; for palette images `samples` holds indices and `palette` RGB triples.
std::vector<uint8_t> encode_png(const torch::Tensor& samples, int color_type, int bit_depth = 8,
                                const std::vector<uint8_t>& palette = {});
// GIF bytes through giflib: `indices` [h, w] uint8 as a frame at (left, top) of a `screen_w` x `screen_h`
// screen, `palette` RGB triples as the global colour table (none when empty) or, with `local_palette`, as
// the frame's own table; `transparent` >= 0 writes a graphic control extension naming that index.
struct GifFrame {
  int64_t left = 0, top = 0;
  bool interlace = false, local_palette = false;
  int transparent = -1;
};
std::vector<uint8_t> encode_gif(const torch::Tensor& indices, const std::vector<uint8_t>& palette, int64_t screen_w,
                                int64_t screen_h, const GifFrame& frame = {});
// WebP bytes through libwebp: `image` [H, W, 3] (RGB) or [H, W, 4] (RGBA) uint8; lossless, or lossy at
// `quality`. Lossless RGBA keeps the colour of transparent pixels (exact).
std::vector<uint8_t> encode_webp(const torch::Tensor& image, bool lossless, float quality = 80);
// BMP bytes written by hand (40-byte info header): bits 24 or 32 (`image` [H, W, 3] / [H, W, 4], stored
// BGR / BGRA), or 8 (`image` [H, W, 1] indices into `palette` RGB triples); rows bottom-up unless top_down.
std::vector<uint8_t> encode_bmp(const torch::Tensor& image, int bits, const std::vector<uint8_t>& palette = {},
                                bool top_down = false);
// A smooth moving test pattern: frame t of a video, [H, W, 3] uint8.
torch::Tensor pattern_frame(int64_t t, int64_t height, int64_t width);
// Encodes pattern frames 0..frames-1 as MPEG-4 (keyframe every `gop`) into an MP4 file at `path`;
// `faststart` puts the index (moov) before the media data.
void write_mp4(const std::filesystem::path& path, int64_t frames, int64_t height, int64_t width, int gop, int fps,
               bool faststart = false);

// Frame k of write_vfr_mp4: a distinct solid colour, [3] uint8 (k < 256 all differ).
torch::Tensor solid_colour(int64_t k);
// A variable-frame-rate MP4 (MPEG-4 Part 2): frame k, solid_colour(k), shown at pts[k] / rate seconds
// (pts increasing, gaps as irregular as wanted), a keyframe every `gop` frames, up to `b_frames`
// B-frames in a row (decode order then differs from presentation order).
void write_vfr_mp4(const std::filesystem::path& path, const std::vector<int64_t>& pts, int64_t height, int64_t width,
                   int gop, int rate, int b_frames = 0);

// The same encoded image with a header that claims absurd dimensions: PNG IHDR 100000 x 100000 (CRC
// recomputed, so only the size check can refuse it), JPEG SOF0 60138 x 60138.
std::vector<uint8_t> with_huge_png_header(std::vector<uint8_t> png);
std::vector<uint8_t> with_huge_jpeg_header(std::vector<uint8_t> jpeg);

// 16-bit mono PCM WAV bytes of a sine tone of `freq` Hz (amplitude 8000 of 32767).
std::vector<uint8_t> encode_wav_tone(int sample_rate, int samples, double freq);

std::vector<uint8_t> read_bytes(const std::filesystem::path& path);
void write_bytes(const std::filesystem::path& path, const uint8_t* data, size_t size);
// Write `bytes` / `text` to `path`, creating its parent directories.
void write_file(const std::filesystem::path& path, const std::vector<uint8_t>& bytes);
void write_text(const std::filesystem::path& path, const std::string& text);
// A fresh empty directory under the system temp dir, removed by the destructor.
struct TempDir {
  TempDir();
  ~TempDir();
  std::filesystem::path path;
};

}  // namespace cb::test
