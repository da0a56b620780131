// pack_weight / unpack_weight of the block formats against a straightforward re-implementation, written
// here, of llama.cpp's reference quantizers (quantize_row_q8_0_ref / quantize_row_q4_0_ref in
// ggml-quants.c) and block layouts: byte for byte, so a layout or rounding difference cannot hide. The
// in-memory row panels against their documented byte positions.
#include <catch2/catch.hpp>

#include <ATen/Parallel.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "framework/kernels/weight_format.h"

using namespace cb::kernels;

namespace {

// block_q8_0 { ggml_half d; int8_t qs[32]; }: d = amax / 127, q = roundf(x / d).
std::vector<uint8_t> q8_0_reference(const float* x, int64_t n) {
  std::vector<uint8_t> out;
  for (int64_t i = 0; i < n / 32; ++i) {
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[i * 32 + j]));
    const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
    const c10::Half dh(d);
    uint8_t block[34];
    std::memcpy(block, &dh, 2);
    for (int j = 0; j < 32; ++j) {
      const int8_t q = static_cast<int8_t>(roundf(x[i * 32 + j] * id));
      std::memcpy(block + 2 + j, &q, 1);
    }
    out.insert(out.end(), block, block + 34);
  }
  return out;
}

// block_q4_0 { ggml_half d; uint8_t qs[16]; }: d = max / -8 (max: the signed element of largest
// magnitude, the first one on ties), q = min(15, (int8_t)(x / d + 8.5)), qs[j] = q[j] | q[j + 16] << 4.
std::vector<uint8_t> q4_0_reference(const float* x, int64_t n) {
  std::vector<uint8_t> out;
  for (int64_t i = 0; i < n / 32; ++i) {
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < 32; ++j) {
      const float v = x[i * 32 + j];
      if (amax < std::fabs(v)) {
        amax = std::fabs(v);
        max = v;
      }
    }
    const float d = max / -8, id = d ? 1.0f / d : 0.0f;
    const c10::Half dh(d);
    uint8_t block[18];
    std::memcpy(block, &dh, 2);
    for (int j = 0; j < 16; ++j) {
      const uint8_t lo = std::min<int>(15, static_cast<int8_t>(x[i * 32 + j] * id + 8.5f));
      const uint8_t hi = std::min<int>(15, static_cast<int8_t>(x[i * 32 + 16 + j] * id + 8.5f));
      block[2 + j] = lo | (hi << 4);
    }
    out.insert(out.end(), block, block + 18);
  }
  return out;
}

// The reference's dequantisation: w = fp16(d) · q (q4_0: nibble − 8, element j low, j + 16 high).
std::vector<float> dequant_reference(WeightFormat f, const std::vector<uint8_t>& bytes) {
  std::vector<float> w;
  const size_t bb = f == WeightFormat::q8_0 ? 34 : 18;
  for (size_t b = 0; b < bytes.size(); b += bb) {
    c10::Half dh;
    std::memcpy(&dh, bytes.data() + b, 2);
    const float d = dh;
    float v[32];
    for (int j = 0; j < 32; ++j) {
      if (f == WeightFormat::q8_0) v[j] = d * static_cast<int8_t>(bytes[b + 2 + j]);
      else v[j] = d * ((j < 16 ? bytes[b + 2 + j] & 0x0F : bytes[b + 2 + j - 16] >> 4) - 8);
    }
    w.insert(w.end(), v, v + 32);
  }
  return w;
}

// Rows of random values plus blocks that probe the edges: all zeros, one value, an exact .5 of the
// q8_0 step (roundf: away from zero), the largest magnitude negative, ties of magnitude, tiny scales.
torch::Tensor probe_weights() {
  torch::manual_seed(21);
  auto w = torch::randn({6, 96});
  auto a = w.accessor<float, 2>();
  for (int j = 0; j < 32; ++j) a[0][j] = 0.f;
  a[0][40] = 1.f;
  for (int j = 0; j < 32; ++j) a[1][j] = (j % 2 ? 1 : -1) * (j + 0.5f);  // d = 31.5/127: many near-ties
  a[1][64] = 127.f;                                                      // d = 1: exact halves below
  for (int j = 65; j < 96; ++j) a[1][j] = (j - 80) + 0.5f;
  for (int j = 0; j < 32; ++j) a[2][j] = -4.f + 0.25f * j;   // negative extreme: a ramp over every nibble
  a[2][40] = -3.f, a[2][41] = 3.f;                           // equal magnitudes: the first one sets the sign
  for (int j = 64; j < 96; ++j) a[3][j] = 1e-6f * (j - 70);  // fp16 subnormal scales
  return w;
}

std::vector<uint8_t> bytes_of(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return {c.data_ptr<uint8_t>(), c.data_ptr<uint8_t>() + c.numel()};
}

}  // namespace

TEST_CASE("weight format: q8_0 and q4_0 packing equals llama.cpp's reference quantizers byte for byte") {
  const auto f = GENERATE(WeightFormat::q8_0, WeightFormat::q4_0);
  INFO(weight_format_name(f));
  const auto w = probe_weights();
  const auto packed = pack_weight(w, f);
  REQUIRE(packed.data.scalar_type() == torch::kUInt8);
  REQUIRE(packed.data.sizes() == torch::IntArrayRef({w.size(0), row_bytes(f, w.size(1))}));
  for (int64_t r = 0; r < w.size(0); ++r) {
    INFO("row " << r);
    const float* x = w[r].data_ptr<float>();
    const auto ref = f == WeightFormat::q8_0 ? q8_0_reference(x, w.size(1)) : q4_0_reference(x, w.size(1));
    CHECK(bytes_of(packed.data[r]) == ref);
    // Unpacking gives the reference's dequantised values exactly.
    const auto back = unpack_weight(packed)[r];
    CHECK(std::vector<float>(back.data_ptr<float>(), back.data_ptr<float>() + back.numel()) ==
          dequant_reference(f, ref));
  }
}

TEST_CASE("weight format: the dense formats round to nearest and unpack exactly") {
  const auto w = probe_weights();
  CHECK(torch::equal(unpack_weight(pack_weight(w, WeightFormat::f32)), w));
  CHECK(torch::equal(unpack_weight(pack_weight(w, WeightFormat::bf16)), w.to(torch::kBFloat16).to(torch::kFloat)));
  CHECK(torch::equal(unpack_weight(pack_weight(w, WeightFormat::f16)), w.to(torch::kHalf).to(torch::kFloat)));
}

TEST_CASE("weight format: stored tensors of the wrong shape or dtype, and widths off the block, are named") {
  CHECK_THROWS_WITH(pack_weight(torch::randn({2, 40}), WeightFormat::q4_0),
                    "q4_0 weights need a multiple of 32 input features, got 40");
  CHECK_THROWS_WITH(packed_weight_from_storage(torch::zeros({3, 33}, torch::kUInt8), WeightFormat::q8_0, 3, 32),
                    "q8_0 weight [3, 32]: stored tensor is Byte 3x33, expected Byte 3x34");
  CHECK_THROWS_WITH(parse_weight_format("q5_1", "model.llama_precision"),
                    "model.llama_precision: 'q5_1' is not a weight format (expected fp32, bf16, fp16, q8_0 or q4_0)");
}

TEST_CASE("weight format: row panels hold each row's scales and quant bytes where weight_format.h says") {
  const auto f = GENERATE(WeightFormat::q8_0, WeightFormat::q4_0);
  INFO(weight_format_name(f));
  torch::manual_seed(21);
  const int64_t rows = 37, cols = 96, rb = row_bytes(f, cols), bb = block_bytes(f);  // 2 panels and 5 rows
  const auto packed = pack_weight(torch::randn({rows, cols}), f);
  const auto row_bytes_of = bytes_of(packed.data);
  for (const int threads : {1, 2}) {
    INFO(threads << " thread(s)");
    at::set_num_threads(threads);
    auto panels = packed.data.clone();
    storage_to_panels(panels, f);
    const auto p = bytes_of(panels);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t b = 0; b < cols / 32; ++b) {
        const uint8_t* blk = &row_bytes_of[r * rb + b * bb];
        if (r >= 32) {  // past the last full group of 16: still a row
          CHECK(std::equal(blk, blk + bb, &p[r * rb + b * bb]));
          continue;
        }
        const uint8_t* pb = &p[(r / 16) * 16 * rb + b * 16 * bb];
        const int64_t lane = r % 16;
        CHECK((pb[2 * lane] == blk[0] && pb[2 * lane + 1] == blk[1]));
        for (int64_t c = 0; c < bb - 2; ++c) {
          const int64_t at = f == WeightFormat::q4_0 ? 64 * (c / 4) + 4 * lane + c % 4 : 16 * c + lane;
          CHECK(pb[32 + at] == blk[2 + c]);
        }
      }
    storage_to_rows(panels, f);
    CHECK(torch::equal(panels, packed.data));
    CHECK(torch::equal(unpack_weight({f, rows, cols, panels, BlockLayout::rows}), unpack_weight(packed)));
  }
  auto panels = packed.data.clone();
  storage_to_panels(panels, f);
  CHECK(torch::equal(unpack_weight({f, rows, cols, panels, BlockLayout::panels}), unpack_weight(packed)));
  auto dense = pack_weight(torch::randn({16, 32}), WeightFormat::bf16).data;
  CHECK_THROWS_WITH(storage_to_panels(dense, WeightFormat::bf16), Catch::Contains("q8_0 or q4_0 weight"));
}
