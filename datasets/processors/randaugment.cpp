#include "datasets/processors/randaugment.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "framework/error.h"

namespace cb {

namespace {

using Fill = std::array<uint8_t, 3>;

void check_image(const torch::Tensor& img, const char* op) {
  if (img.scalar_type() != torch::kUInt8 || img.dim() != 3 || img.size(2) != 3)
    fail("RandomAugment {}: expected an [H, W, 3] uint8 image, got {} {}", op, c10::toString(img.scalar_type()),
         c10::str(img.sizes()));
}

// numpy's float -> uint8 astype: truncation through a 32-bit integer, so out-of-range values wrap.
uint8_t astype_u8(double v) { return static_cast<uint8_t>(static_cast<int32_t>(v)); }

// out[p] = table[channel][img[p]] for a per-channel 256-entry lookup table.
torch::Tensor lookup(const torch::Tensor& img, const std::array<std::array<uint8_t, 256>, 3>& tables) {
  auto src = img.contiguous();
  auto out = torch::empty_like(src);
  const uint8_t* in = src.data_ptr<uint8_t>();
  uint8_t* o = out.data_ptr<uint8_t>();
  for (int64_t i = 0, n = src.numel(); i < n; ++i) o[i] = tables[size_t(i % 3)][in[i]];
  return out;
}

torch::Tensor lookup_all(const torch::Tensor& img, const std::array<uint8_t, 256>& table) {
  return lookup(img, {table, table, table});
}

std::array<int64_t, 256> channel_histogram(const torch::Tensor& img, int64_t channel) {
  std::array<int64_t, 256> hist{};
  const uint8_t* in = img.data_ptr<uint8_t>();
  for (int64_t i = channel, n = img.numel(); i < n; i += 3) ++hist[in[i]];
  return hist;
}

}  // namespace

namespace randaug {

torch::Tensor autocontrast(const torch::Tensor& img) {
  check_image(img, "AutoContrast");
  auto src = img.contiguous();
  std::array<std::array<uint8_t, 256>, 3> tables;
  for (int64_t c = 0; c < 3; ++c) {
    const auto hist = channel_histogram(src, c);
    int low = 0, high = 255;
    while (hist[size_t(low)] == 0) ++low;
    while (hist[size_t(high)] == 0) --high;
    auto& table = tables[size_t(c)];
    for (int v = 0; v < 256; ++v) table[size_t(v)] = uint8_t(v);
    if (high <= low) continue;
    const double scale = 255.0 / double(high - low);
    // Quirk: `-low` negates a numpy uint8, which wraps to 256 - low, so the offset is positive.
    const double offset = double(uint8_t(-low)) * scale;
    for (int v = 0; v < 256; ++v) table[size_t(v)] = astype_u8(std::clamp(v * scale + offset, 0.0, 255.0));
  }
  return lookup(src, tables);
}

torch::Tensor equalize(const torch::Tensor& img) {
  check_image(img, "Equalize");
  auto src = img.contiguous();
  std::array<std::array<uint8_t, 256>, 3> tables;
  for (int64_t c = 0; c < 3; ++c) {
    const auto hist = channel_histogram(src, c);
    auto& table = tables[size_t(c)];
    for (int v = 0; v < 256; ++v) table[size_t(v)] = uint8_t(v);
    // step = (sum of the non-zero bins but the last one) // 255, as PIL's ImageOps.equalize.
    int64_t last = 255;
    while (last > 0 && hist[size_t(last)] == 0) --last;
    int64_t sum = 0;
    for (int64_t v = 0; v < last; ++v) sum += hist[size_t(v)];
    const int64_t step = sum / 255;
    if (step == 0) continue;
    int64_t acc = step / 2;
    for (int v = 0; v < 256; ++v) {
      table[size_t(v)] = uint8_t(std::min<int64_t>(acc / step, 255));
      acc += hist[size_t(v)];
    }
  }
  return lookup(src, tables);
}

torch::Tensor warp_affine(const torch::Tensor& img, const std::array<double, 6>& forward, Fill fill) {
  check_image(img, "warpAffine");
  auto src = img.contiguous();
  const int64_t H = src.size(0), W = src.size(1);
  // cv2.warpAffine inverts M (dst -> src) in double, exactly this way.
  std::array<double, 6> m = forward;
  double det = m[0] * m[4] - m[1] * m[3];
  det = det != 0 ? 1.0 / det : 0;
  const double a11 = m[4] * det, a22 = m[0] * det;
  m[0] = a11;
  m[1] *= -det;
  m[3] *= -det;
  m[4] = a22;
  const double b1 = -m[0] * m[2] - m[1] * m[5], b2 = -m[3] * m[2] - m[4] * m[5];
  m[2] = b1;
  m[5] = b2;

  // Source coordinates in 1/1024 pixel rounded (cvRound: half to even), reduced to 1/32 pixel:
  // integer position + a 5-bit fraction per axis selecting a bilinear weight (15-bit fixed point).
  constexpr int kInterBits = 5, kTab = 1 << kInterBits, kAbBits = 10, kAbScale = 1 << kAbBits;
  constexpr int kRoundDelta = kAbScale / kTab / 2, kCoefBits = 15;
  auto round_i = [](double v) { return int32_t(std::nearbyint(v)); };
  std::vector<int32_t> adelta(static_cast<size_t>(W)), bdelta(static_cast<size_t>(W));
  for (int64_t x = 0; x < W; ++x) {
    adelta[size_t(x)] = round_i(m[0] * double(x) * kAbScale);
    bdelta[size_t(x)] = round_i(m[3] * double(x) * kAbScale);
  }
  auto out = torch::empty_like(src);
  const uint8_t* in = src.data_ptr<uint8_t>();
  uint8_t* o = out.data_ptr<uint8_t>();
  const int64_t stride = W * 3;
  for (int64_t y = 0; y < H; ++y) {
    const int32_t x0 = round_i((m[1] * double(y) + m[2]) * kAbScale) + kRoundDelta;
    const int32_t y0 = round_i((m[4] * double(y) + m[5]) * kAbScale) + kRoundDelta;
    for (int64_t x = 0; x < W; ++x, o += 3) {
      const int32_t X = (x0 + adelta[size_t(x)]) >> (kAbBits - kInterBits);
      const int32_t Y = (y0 + bdelta[size_t(x)]) >> (kAbBits - kInterBits);
      const int64_t sx = std::clamp<int32_t>(X >> kInterBits, INT16_MIN, INT16_MAX);
      const int64_t sy = std::clamp<int32_t>(Y >> kInterBits, INT16_MIN, INT16_MAX);
      const int32_t fx = X & (kTab - 1), fy = Y & (kTab - 1);
      // (1-ty)(1-tx), (1-ty)tx, ty(1-tx), ty*tx scaled by 2^15: exact products of multiples of 1/32.
      const int32_t w[4] = {(kTab - fy) * (kTab - fx) * kTab, (kTab - fy) * fx * kTab, fy * (kTab - fx) * kTab,
                            fy * fx * kTab};
      if (sx >= W || sx + 1 < 0 || sy >= H || sy + 1 < 0) {  // entirely outside: the border colour
        for (int c = 0; c < 3; ++c) o[c] = fill[size_t(c)];
        continue;
      }
      for (int c = 0; c < 3; ++c) {
        auto at = [&](int64_t px, int64_t py) -> int32_t {
          return px >= 0 && py >= 0 && px < W && py < H ? in[py * stride + px * 3 + c] : fill[size_t(c)];
        };
        const int32_t sum =
            at(sx, sy) * w[0] + at(sx + 1, sy) * w[1] + at(sx, sy + 1) * w[2] + at(sx + 1, sy + 1) * w[3];
        o[c] = uint8_t(std::clamp((sum + (1 << (kCoefBits - 1))) >> kCoefBits, 0, 255));
      }
    }
  }
  return out;
}

torch::Tensor rotate(const torch::Tensor& img, double degrees, Fill fill) {
  // cv2.getRotationMatrix2D((W/2, H/2), degrees, 1): counter-clockwise about the centre.
  const double angle = degrees * std::numbers::pi / 180, a = std::cos(angle), b = std::sin(angle);
  const double cx = double(float(img.size(1)) / 2.0f), cy = double(float(img.size(0)) / 2.0f);
  return warp_affine(img, {a, b, (1 - a) * cx - b * cy, -b, a, b * cx + (1 - a) * cy}, fill);
}

// Shear/translate matrices are np.float32 in the original: the argument is rounded to float first.
torch::Tensor shear_x(const torch::Tensor& img, double factor, Fill fill) {
  return warp_affine(img, {1, double(float(factor)), 0, 0, 1, 0}, fill);
}
torch::Tensor shear_y(const torch::Tensor& img, double factor, Fill fill) {
  return warp_affine(img, {1, 0, 0, double(float(factor)), 1, 0}, fill);
}
torch::Tensor translate_x(const torch::Tensor& img, double offset, Fill fill) {
  return warp_affine(img, {1, 0, double(-float(offset)), 0, 1, 0}, fill);
}
torch::Tensor translate_y(const torch::Tensor& img, double offset, Fill fill) {
  return warp_affine(img, {1, 0, 0, 0, 1, double(-float(offset))}, fill);
}

torch::Tensor solarize(const torch::Tensor& img, int64_t threshold) {
  check_image(img, "Solarize");
  std::array<uint8_t, 256> table;
  for (int v = 0; v < 256; ++v) table[size_t(v)] = uint8_t(v < threshold ? v : 255 - v);
  return lookup_all(img, table);
}

torch::Tensor posterize(const torch::Tensor& img, int64_t bits) {
  check_image(img, "Posterize");
  const auto mask = uint8_t((255u << (8 - std::clamp<int64_t>(bits, 0, 8))) & 0xFF);
  return torch::bitwise_and(img, mask);
}

torch::Tensor brightness(const torch::Tensor& img, double factor) {
  check_image(img, "Brightness");
  // np.arange(256, float32) * factor: float32 arithmetic.
  std::array<uint8_t, 256> table;
  const float f = float(factor);
  for (int v = 0; v < 256; ++v) table[size_t(v)] = astype_u8(std::clamp(float(v) * f, 0.0f, 255.0f));
  return lookup_all(img, table);
}

torch::Tensor contrast(const torch::Tensor& img, double factor) {
  check_image(img, "Contrast");
  auto src = img.contiguous();
  // Quirk: the grey mean weights the RGB channels with BGR coefficients; float64 throughout.
  constexpr double kWeights[3] = {0.114, 0.587, 0.299};
  const double pixels = double(src.size(0) * src.size(1));
  double mean = 0;
  for (int64_t c = 0; c < 3; ++c) {
    const auto hist = channel_histogram(src, c);
    int64_t sum = 0;
    for (int v = 0; v < 256; ++v) sum += hist[size_t(v)] * v;
    mean += double(sum) / pixels * kWeights[c];
  }
  std::array<uint8_t, 256> table;
  for (int v = 0; v < 256; ++v) table[size_t(v)] = astype_u8(std::clamp((v - mean) * factor + mean, 0.0, 255.0));
  return lookup_all(src, table);
}

torch::Tensor color(const torch::Tensor& img, double factor) {
  check_image(img, "Color");
  // img @ M with M = float32 matrix * factor + float32 column of grey weights, in float32.
  constexpr float kBase[3][3] = {{0.886f, -0.114f, -0.114f}, {-0.587f, 0.413f, -0.587f}, {-0.299f, -0.299f, 0.701f}};
  constexpr float kGrey[3] = {0.114f, 0.587f, 0.299f};
  float m[3][3];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) m[i][j] = kBase[i][j] * float(factor) + kGrey[i];
  auto src = img.contiguous();
  auto out = torch::empty_like(src);
  const uint8_t* in = src.data_ptr<uint8_t>();
  uint8_t* o = out.data_ptr<uint8_t>();
  for (int64_t p = 0, n = src.numel(); p < n; p += 3)
    for (int j = 0; j < 3; ++j) {
      const float v = float(in[p]) * m[0][j] + float(in[p + 1]) * m[1][j] + float(in[p + 2]) * m[2][j];
      o[p + j] = astype_u8(std::clamp(v, 0.0f, 255.0f));
    }
  return out;
}

torch::Tensor sharpness(const torch::Tensor& img, double factor) {
  check_image(img, "Sharpness");
  if (factor == 1.0) return img;  // the original returns its input unchanged
  auto src = img.contiguous();
  const int64_t H = src.size(0), W = src.size(1), stride = W * 3;
  const uint8_t* in = src.data_ptr<uint8_t>();
  // cv2.filter2D with the float32 kernel [[1,1,1],[1,5,1],[1,1,1]]/13 (BORDER_REFLECT_101), summed in
  // float32 in kernel order and rounded half to even.
  const float k_side = 1.0f / 13.0f, k_centre = 5.0f / 13.0f;
  auto reflect = [](int64_t i, int64_t n) { return n == 1 ? 0 : i < 0 ? -i : i >= n ? 2 * n - 2 - i : i; };
  auto degenerate = [&](int64_t y, int64_t x, int c) {
    float s = 0;
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx)
        s += (dy == 0 && dx == 0 ? k_centre : k_side) *
             float(in[reflect(y + dy, H) * stride + reflect(x + dx, W) * 3 + c]);
    return float(std::nearbyint(s));  // saturate_cast<uchar>: the sum lies within [0, 255]
  };
  auto out = torch::empty_like(src);
  uint8_t* o = out.data_ptr<uint8_t>();
  const float f = float(factor);
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int c = 0; c < 3; ++c) {
        const int64_t i = y * stride + x * 3 + c;
        const float d = degenerate(y, x, c);
        if (factor == 0.0) o[i] = uint8_t(d);
        else if (y == 0 || x == 0 || y == H - 1 || x == W - 1)  // the border keeps the input
          o[i] = in[i];
        else  // float32 blend, then astype(uint8)
          o[i] = astype_u8(d + f * (float(in[i]) - d));
      }
  return out;
}

const std::vector<std::string>& op_names() {
  static const std::vector<std::string> names{"Identity",   "AutoContrast", "Equalize",   "Rotate",    "Solarize",
                                              "Color",      "Contrast",     "Brightness", "Sharpness", "ShearX",
                                              "TranslateX", "TranslateY",   "Posterize",  "ShearY"};
  return names;
}

torch::Tensor apply(const torch::Tensor& img, const AugmentOp& op) {
  const auto& n = op.name;
  const double v = op.value;
  if (n == "Identity") return img;
  if (n == "AutoContrast") return autocontrast(img);
  if (n == "Equalize") return equalize(img);
  if (n == "Rotate") return rotate(img, v, op.fill);
  if (n == "Solarize") return solarize(img, int64_t(v));
  if (n == "Color") return color(img, v);
  if (n == "Contrast") return contrast(img, v);
  if (n == "Brightness") return brightness(img, v);
  if (n == "Sharpness") return sharpness(img, v);
  if (n == "ShearX") return shear_x(img, v, op.fill);
  if (n == "ShearY") return shear_y(img, v, op.fill);
  if (n == "TranslateX") return translate_x(img, v, op.fill);
  if (n == "TranslateY") return translate_y(img, v, op.fill);
  if (n == "Posterize") return posterize(img, int64_t(v));
  fail("RandomAugment: unknown op '{}' (known: {})", n, fmt::join(op_names(), ", "));
}

}  // namespace randaug

AugmentOp RandomAugment::op_at_level(const std::string& name, int64_t level, bool negative) {
  constexpr double kMaxLevel = 10, kTranslateConst = 10;
  const double l = double(level) / kMaxLevel;
  const double sign = negative ? -1 : 1;
  AugmentOp op{name};
  if (name == "Rotate") op.value = sign * l * 30;
  else if (name == "Solarize") op.value = double(int64_t(l * 256));
  else if (name == "Color" || name == "Contrast" || name == "Brightness" || name == "Sharpness")
    op.value = l * 1.8 + 0.1;
  else if (name == "ShearX" || name == "ShearY") op.value = sign * l * 0.3;
  else if (name == "TranslateX" || name == "TranslateY") op.value = sign * l * kTranslateConst;
  else if (name == "Posterize") op.value = double(int64_t(l * 4));
  else if (name != "Identity" && name != "AutoContrast" && name != "Equalize")
    fail("RandomAugment: unknown op '{}' (known: {})", name, fmt::join(randaug::op_names(), ", "));
  return op;
}

AugmentOp RandomAugment::draw_op(const std::string& name, int64_t level, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  bool negative = false;
  // Signs as arg_dict draws them: rotate is negative when random() < 0.5, shear/translate when > 0.5.
  if (name == "Rotate") negative = uniform(rng) < 0.5;
  else if (name.starts_with("Shear") || name.starts_with("Translate")) negative = uniform(rng) > 0.5;
  return op_at_level(name, level, negative);
}

std::vector<AugmentOp> RandomAugment::draw(std::mt19937_64& rng) const {
  if (augs.empty()) fail("RandomAugment: empty op list");
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::uniform_int_distribution<size_t> choice(0, augs.size() - 1);
  std::vector<std::string> picked;  // np.random.choice(augs, N): with replacement
  for (int64_t i = 0; i < n; ++i) picked.push_back(augs[choice(rng)]);
  std::vector<AugmentOp> ops;
  for (const auto& name : picked) {
    if (uniform(rng) > 0.5) continue;  // each op applied with probability 0.5
    ops.push_back(draw_op(name, level, rng));
  }
  return ops;
}

torch::Tensor RandomAugment::apply(torch::Tensor img, const std::vector<AugmentOp>& ops) {
  for (const auto& op : ops) img = randaug::apply(img, op);
  return img;
}

}  // namespace cb
