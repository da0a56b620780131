// Decoders behind ImageDecoder (image_decode.cpp) for the formats PIL opens besides JPEG and PNG, each
// giving what the original's `PIL.Image.open(f).convert('RGB')` gives (Pillow 9.4, checked pixel for
// pixel by tests/datasets/media/make_pil_reference.py):
//   GIF  (own LZW)  the first frame; palette -> RGB, transparent pixels keep their palette colour (PIL's
//                   convert('RGB') of a "P" image ignores transparency); pixels outside the frame take
//                   the transparent index, else index 0, as PIL fills its canvas. Damaged files as Pillow
//                   reads them (gif_decode.cpp lists what it reads through and what it refuses).
//   WebP (libwebp)  the library PIL links: lossy and lossless, alpha dropped; an animation's first frame
//                   through WebPAnimDecoder, as PIL reads every WebP.
//   BMP             1/4/8-bit palette and RLE4/RLE8 unpacked here by PIL's rules, 16-bit 5:5:5 / 5:6:5
//                   (PIL's x * 255 / 31 widening), 24 and 32 bit, bit fields through FFmpeg; alpha
//                   dropped; damaged files as Pillow reads them (bmp_decode.cpp).
// Every failure throws cb::Error naming the file (`name`) and the reason.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace cb::media {

bool is_gif(const uint8_t* d, size_t n);
bool is_webp(const uint8_t* d, size_t n);
bool is_bmp(const uint8_t* d, size_t n);

// -> [H, W, 3] uint8 RGB; refuses more than `max_pixels` before decoding.
torch::Tensor decode_gif(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels);
torch::Tensor decode_webp(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels);
torch::Tensor decode_bmp(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels);

// Throws naming `name` when w x h is empty or over `max_pixels` (PIL's DecompressionBombError).
void check_image_pixels(int64_t w, int64_t h, int64_t max_pixels, const std::string& name);

}  // namespace cb::media
