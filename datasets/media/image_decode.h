// Still-image decoding to RGB exactly as the original's `PIL.Image.open(f).convert('RGB')`:
// JPEG through libjpeg(-turbo) with its default decompression (ISLOW IDCT, fancy upsampling, libjpeg's
// YCbCr/CMYK handling as PIL requests it), PNG through libpng (palette, gray, gray+alpha, RGBA -> RGB by
// dropping alpha; 16-bit samples keep their high byte, 16-bit gray clips at 255 like PIL's I -> L).
// GIF, WebP and BMP go through image_formats.h. The format is sniffed from the bytes, not the file name.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace cb {

// PIL's Image.MAX_IMAGE_PIXELS; PIL refuses images over twice this (DecompressionBombError).
inline constexpr int64_t kPilMaxImagePixels = 1024LL * 1024 * 1024 / 4 / 3;

// One per worker thread: keeps the libjpeg decompressor and the file buffer between images.
// Every failure (missing, empty, truncated, corrupt or unsupported file, too many pixels) throws
// cb::Error naming the file and the problem; nothing is written to disk.
class ImageDecoder {
 public:
  explicit ImageDecoder(int64_t max_pixels = 2 * kPilMaxImagePixels);
  ~ImageDecoder();
  ImageDecoder(const ImageDecoder&) = delete;
  ImageDecoder& operator=(const ImageDecoder&) = delete;

  // -> [H, W, 3] uint8 RGB.
  torch::Tensor decode_file(const std::filesystem::path& path);
  torch::Tensor decode_bytes(const uint8_t* data, size_t size, const std::string& name);

  struct Jpeg;  // libjpeg state (defined in the .cpp)

 private:
  std::unique_ptr<Jpeg> jpeg_;
  std::vector<uint8_t> file_buffer_;
  int64_t max_pixels_;
};

// Reads a whole file into `out` (reusing its capacity); throws naming the file if missing or unreadable.
void read_file_bytes(const std::filesystem::path& path, std::vector<uint8_t>& out, const char* what);

}  // namespace cb
