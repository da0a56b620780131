#include "framework/kernels/weight_format.h"

#include <c10/util/Half.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "framework/error.h"
#include "framework/kernels/cpu_features.h"
#include "framework/kernels/row_threads.h"

namespace cb::kernels {

int64_t panel_prefetch_bytes() {
  static const int64_t bytes = cpu_features().intel ? 2048 : 8192;
  return bytes;
}

WeightFormat parse_weight_format(const std::string& name, const std::string& what) {
  if (name == "fp32" || name == "f32") return WeightFormat::f32;
  if (name == "bf16") return WeightFormat::bf16;
  if (name == "fp16" || name == "f16") return WeightFormat::f16;
  if (name == "q8_0") return WeightFormat::q8_0;
  if (name == "q4_0") return WeightFormat::q4_0;
  fail("{}: '{}' is not a weight format (expected fp32, bf16, fp16, q8_0 or q4_0)", what, name);
}

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::f32: return "fp32";
    case WeightFormat::bf16: return "bf16";
    case WeightFormat::f16: return "fp16";
    case WeightFormat::q8_0: return "q8_0";
    case WeightFormat::q4_0: return "q4_0";
  }
  return "?";
}

bool is_block_format(WeightFormat f) { return f == WeightFormat::q8_0 || f == WeightFormat::q4_0; }

namespace {

torch::Dtype dense_dtype(WeightFormat f) {
  switch (f) {
    case WeightFormat::bf16: return torch::kBFloat16;
    case WeightFormat::f16: return torch::kHalf;
    default: return torch::kFloat;
  }
}

void check_block_cols(WeightFormat f, int64_t cols) {
  if (cols % kQuantBlock != 0)
    fail("{} weights need a multiple of {} input features, got {}", weight_format_name(f), kQuantBlock, cols);
}

// One row of fp32 values -> cols/32 blocks.
void quantize_row(WeightFormat f, const float* x, int64_t cols, uint8_t* out) {
  for (int64_t b = 0; b < cols / kQuantBlock; ++b, x += kQuantBlock, out += block_bytes(f)) {
    if (f == WeightFormat::q8_0) {
      float amax = 0.f;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
      const float d = amax / 127.f, id = d != 0.f ? 1.f / d : 0.f;
      const c10::Half dh(d);
      std::memcpy(out, &dh, 2);
      for (int j = 0; j < 32; ++j) out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
    } else {
      float amax = 0.f, m = 0.f;
      for (int j = 0; j < 32; ++j)
        if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), m = x[j];
      const float d = m / -8.f, id = d != 0.f ? 1.f / d : 0.f;
      const c10::Half dh(d);
      std::memcpy(out, &dh, 2);
      for (int j = 0; j < 16; ++j) {
        const auto lo = static_cast<uint8_t>(std::min(15.f, x[j] * id + 8.5f));
        const auto hi = static_cast<uint8_t>(std::min(15.f, x[j + 16] * id + 8.5f));
        out[2 + j] = lo | (hi << 4);
      }
    }
  }
}

void dequantize_row(WeightFormat f, const uint8_t* in, int64_t cols, float* y) {
  for (int64_t b = 0; b < cols / kQuantBlock; ++b, y += kQuantBlock, in += block_bytes(f)) {
    c10::Half dh;
    std::memcpy(&dh, in, 2);
    const float d = dh;
    if (f == WeightFormat::q8_0) {
      for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(in[2 + j]));
    } else {
      for (int j = 0; j < 16; ++j) {
        y[j] = d * static_cast<float>((in[2 + j] & 0x0F) - 8);
        y[j + 16] = d * static_cast<float>((in[2 + j] >> 4) - 8);
      }
    }
  }
}

// Converts the storage's full groups of 16 rows in place with `convert(group -> scratch)`, then copies back.
template <class Convert>
void convert_groups(torch::Tensor& data, WeightFormat f, Convert convert) {
  if (!is_block_format(f) || !data.is_cpu() || !data.is_contiguous() || data.scalar_type() != torch::kUInt8 ||
      data.dim() != 2)
    fail("row panels: expected the contiguous uint8 CPU storage of a q8_0 or q4_0 weight");
  const int64_t rb = data.size(1), cols = rb / block_bytes(f) * kQuantBlock, group = kPanelRows * rb;
  uint8_t* base = data.data_ptr<uint8_t>();
  parallel_rows(data.size(0) / kPanelRows, 1, [&](int64_t g0, int64_t g1) {
    std::vector<uint8_t> scratch(static_cast<size_t>(group));
    for (int64_t g = g0; g < g1; ++g) {
      convert(f, base + g * group, cols, scratch.data());
      std::memcpy(base + g * group, scratch.data(), scratch.size());
    }
  });
}

// Where byte c of row r's quants lies among a panel block's quant bytes (weight_format.h).
int64_t panel_quant_offset(WeightFormat f, int64_t c, int r) {
  return f == WeightFormat::q4_0 ? 64 * (c / 4) + 4 * r + c % 4 : kPanelRows * c + r;
}

// Calls fn(row block offset, panel block offset, r) for each block b and row r of a group of 16 rows: the
// offsets of row r's block {d, quants} in the rows and of block b {16 scales, interleaved quants} in the
// panel.
template <class Fn>
void for_each_panel_block(WeightFormat f, int64_t cols, Fn&& fn) {
  const int64_t bb = block_bytes(f), rb = row_bytes(f, cols);
  for (int64_t b = 0; b < cols / kQuantBlock; ++b)
    for (int r = 0; r < kPanelRows; ++r) fn(r * rb + b * bb, b * kPanelRows * bb, r);
}

}  // namespace

void rows_to_panel(WeightFormat f, const uint8_t* rows, int64_t cols, uint8_t* panel) {
  const int64_t quants = block_bytes(f) - 2;
  for_each_panel_block(f, cols, [&](int64_t blk, int64_t pb, int r) {
    std::memcpy(panel + pb + 2 * r, rows + blk, 2);
    for (int64_t c = 0; c < quants; ++c) panel[pb + 2 * kPanelRows + panel_quant_offset(f, c, r)] = rows[blk + 2 + c];
  });
}

void panel_to_rows(WeightFormat f, const uint8_t* panel, int64_t cols, uint8_t* rows) {
  const int64_t quants = block_bytes(f) - 2;
  for_each_panel_block(f, cols, [&](int64_t blk, int64_t pb, int r) {
    std::memcpy(rows + blk, panel + pb + 2 * r, 2);
    for (int64_t c = 0; c < quants; ++c) rows[blk + 2 + c] = panel[pb + 2 * kPanelRows + panel_quant_offset(f, c, r)];
  });
}

void storage_to_panels(torch::Tensor& data, WeightFormat f) { convert_groups(data, f, rows_to_panel); }

void storage_to_rows(torch::Tensor& data, WeightFormat f) { convert_groups(data, f, panel_to_rows); }

int64_t row_bytes(WeightFormat f, int64_t cols) {
  if (!is_block_format(f)) return cols * static_cast<int64_t>(c10::elementSize(dense_dtype(f)));
  check_block_cols(f, cols);
  return cols / kQuantBlock * block_bytes(f);
}

PackedWeight pack_weight(const torch::Tensor& w, WeightFormat f) {
  if (w.dim() != 2 || !w.is_floating_point())
    fail("pack_weight: expected a 2-d floating-point weight, got {}-d {}", w.dim(),
         std::string(c10::toString(w.scalar_type())));
  PackedWeight p{f, w.size(0), w.size(1), {}};
  if (!is_block_format(f)) {
    p.data = w.to(dense_dtype(f)).contiguous();
    return p;
  }
  const auto cols = p.cols;
  const auto src = w.to(torch::kCPU, torch::kFloat).contiguous();
  auto out = torch::empty({p.rows, row_bytes(f, cols)}, torch::kUInt8);
  const float* x = src.data_ptr<float>();
  uint8_t* o = out.data_ptr<uint8_t>();
  at::parallel_for(0, p.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) quantize_row(f, x + r * cols, cols, o + r * out.size(1));
  });
  p.data = out.to(w.device());
  return p;
}

PackedWeight packed_weight_from_storage(torch::Tensor data, WeightFormat f, int64_t rows, int64_t cols) {
  const auto want = is_block_format(f) ? torch::kUInt8 : dense_dtype(f);
  const std::vector<int64_t> shape{rows, is_block_format(f) ? row_bytes(f, cols) : cols};
  if (data.scalar_type() != want || data.sizes() != c10::IntArrayRef(shape))
    fail("{} weight [{}, {}]: stored tensor is {} {}, expected {} {}", weight_format_name(f), rows, cols,
         std::string(c10::toString(data.scalar_type())), fmt::join(data.sizes(), "x"), std::string(c10::toString(want)),
         fmt::join(shape, "x"));
  return {f, rows, cols, data.contiguous(), BlockLayout::rows};
}

torch::Tensor unpack_weight(const PackedWeight& w, torch::Dtype dtype) {
  if (!is_block_format(w.format)) return w.data.to(dtype);
  auto src = w.data.to(torch::kCPU).contiguous();
  if (w.layout == BlockLayout::panels) {
    src = src.clone();
    storage_to_rows(src, w.format);
  }
  auto out = torch::empty({w.rows, w.cols}, torch::kFloat);
  const uint8_t* in = src.data_ptr<uint8_t>();
  float* y = out.data_ptr<float>();
  at::parallel_for(0, w.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) dequantize_row(w.format, in + r * src.size(1), w.cols, y + r * w.cols);
  });
  return out.to(w.data.device(), dtype);
}

}  // namespace cb::kernels
