// GIF -> RGB as Pillow 9.4's GifImagePlugin loads frame 0 and convert('RGB') maps it: the LZW data is
// read by giflib (DGifGetLine, no whole-file slurp); the canvas is grown to hold the frame when the frame
// reaches past the logical screen (as PIL does), filled with the frame's transparent index or else 0,
// and mapped through the frame's palette (local, else global; none -> gray). Transparency is not applied:
// PIL's "P" -> "RGB" conversion keeps the palette colour of transparent pixels.
#include <gif_lib.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <vector>

#include "datasets/media/image_formats.h"
#include "framework/error.h"

namespace cb::media {

namespace {

struct Reader {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
};

int read_bytes(GifFileType* gif, GifByteType* out, int n) {
  auto* r = static_cast<Reader*>(gif->UserData);
  const size_t k = std::min(size_t(std::max(n, 0)), r->size - r->pos);
  std::memcpy(out, r->data + r->pos, k);
  r->pos += k;
  return int(k);
}

struct GifCloser {
  void operator()(GifFileType* g) const {
    int err = 0;
    DGifCloseFile(g, &err);
  }
};

// giflib reports a short read as D_GIF_ERR_READ_FAILED; PIL says "image file is truncated" for it.
[[noreturn]] void fail_gif(int err, const std::string& name) {
  if (err == D_GIF_ERR_READ_FAILED) fail("image '{}': truncated GIF data (unexpected end of file)", name);
  const char* text = GifErrorString(err);
  fail("image '{}': corrupt GIF: {}", name, text ? text : "unknown giflib error");
}

}  // namespace

bool is_gif(const uint8_t* d, size_t n) {
  return n >= 6 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0);
}

torch::Tensor decode_gif(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  Reader reader{data, size};
  int err = 0;
  std::unique_ptr<GifFileType, GifCloser> gif(DGifOpen(&reader, &read_bytes, &err));
  if (!gif) fail_gif(err, name);
  GifFileType* g = gif.get();

  int transparent = -1;  // the last graphic control extension before the image, as PIL reads it
  for (;;) {
    GifRecordType type;
    if (DGifGetRecordType(g, &type) == GIF_ERROR) fail_gif(g->Error, name);
    if (type == IMAGE_DESC_RECORD_TYPE) break;
    if (type == TERMINATE_RECORD_TYPE) fail("image '{}': corrupt GIF: no image in the file", name);
    if (type != EXTENSION_RECORD_TYPE) continue;
    int code = 0;
    GifByteType* block = nullptr;
    if (DGifGetExtension(g, &code, &block) == GIF_ERROR) fail_gif(g->Error, name);
    // block[0] is the sub-block's length; GCE: flags, delay (2 bytes), transparent index.
    if (code == GRAPHICS_EXT_FUNC_CODE && block && block[0] >= 4 && (block[1] & 1)) transparent = block[4];
    while (block)
      if (DGifGetExtensionNext(g, &block) == GIF_ERROR) fail_gif(g->Error, name);
  }
  if (DGifGetImageDesc(g) == GIF_ERROR) fail_gif(g->Error, name);
  const GifImageDesc& desc = g->Image;
  const int64_t fw = desc.Width, fh = desc.Height, left = desc.Left, top = desc.Top;
  const int64_t w = std::max<int64_t>(g->SWidth, left + fw), h = std::max<int64_t>(g->SHeight, top + fh);
  check_image_pixels(w, h, max_pixels, name);

  // Palette: 256 entries, those past the file's colour table a gray ramp (PIL's palette initialisation).
  std::array<uint8_t, 256 * 3> palette;
  for (int i = 0; i < 256; ++i) palette[3 * i] = palette[3 * i + 1] = palette[3 * i + 2] = uint8_t(i);
  if (const ColorMapObject* map = desc.ColorMap ? desc.ColorMap : g->SColorMap) {
    for (int i = 0; i < std::min(map->ColorCount, 256); ++i) {
      palette[3 * i] = map->Colors[i].Red;
      palette[3 * i + 1] = map->Colors[i].Green;
      palette[3 * i + 2] = map->Colors[i].Blue;
    }
  }

  std::vector<uint8_t> index(size_t(w * h), uint8_t(transparent >= 0 ? transparent : 0));
  if (fw > 0 && fh > 0) {
    // Rows in stream order; an interlaced image sends rows 0, 8, ..., then 4, 12, ..., 2, 6, ..., 1, 3, ...
    std::vector<int64_t> order;
    order.reserve(size_t(fh));
    if (desc.Interlace) {
      constexpr int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
      for (int pass = 0; pass < 4; ++pass)
        for (int64_t y = start[pass]; y < fh; y += step[pass]) order.push_back(y);
    } else {
      for (int64_t y = 0; y < fh; ++y) order.push_back(y);
    }
    for (int64_t y : order)
      if (DGifGetLine(g, index.data() + (top + y) * w + left, int(fw)) == GIF_ERROR) fail_gif(g->Error, name);
  }

  auto rgb = torch::empty({h, w, 3}, torch::kUInt8);
  uint8_t* out = rgb.data_ptr<uint8_t>();
  for (uint8_t i : index) {
    std::memcpy(out, palette.data() + 3 * i, 3);
    out += 3;
  }
  return rgb;
}

}  // namespace cb::media
