// Storage formats of a frozen linear layer's weight W [rows = out features, cols = in features].
//
//   f32, bf16, f16: the dense tensor itself, [rows, cols] of that dtype.
//   q8_0: per row, cols/32 blocks of {fp16 scale d, int8 q[32]} = 34 bytes; w = d * q.
//         d = max|w| / 127, q = round(w / d), halves away from zero (llama.cpp's Q8_0 block).
//   q4_0: per row, cols/32 blocks of {fp16 scale d, uint8 qs[16]} = 18 bytes; element j of the block
//         is the low nibble of qs[j], element j+16 the high nibble of qs[j]; w = d * (nibble - 8).
//         d = m / -8 where m is the block's element of largest magnitude (sign kept), nibble =
//         min(15, trunc(w / d + 8.5)) (llama.cpp's Q4_0 block).
// Block formats need cols % 32 == 0 and are stored as uint8 [rows, row_bytes(format, cols)].
//
// In memory the block formats may also lie in row panels (BlockLayout::panels), the AVX-512 row kernels'
// layout: one load feeds 16 output rows (linear.h: preferred_layout). Each full group of 16 rows (rows
// past the last full group stay as rows) takes the bytes of its 16 rows, so `data` keeps its shape; per
// block b of the group, in order: the 16 rows' fp16 scales d (row 0 first), then the rows' quant bytes
// interleaved so that one load holds the same bytes of every row:
//   q8_0: byte 16c + r is byte c of row r's quants (c = 0..31, element c): a 16-byte load is one column.
//   q4_0: byte 64(c/4) + 4r + c%4 is byte c of row r's quants (c = 0..15, elements c and c+16 in its low
//         and high nibble, as in rows): a 64-byte load holds bytes 4k..4k+3 of each row r in its 32-bit
//         lane r, the lanes of AVX-512's 8-bit dot product (VNNI), 8 columns of all 16 rows.
// Panels never leave memory: files, pack_weight and unpack_weight speak rows.
// Element j (0..31) of a q4_0 panel block lies in 64-byte chunk q4_0_panel_chunk(j), at bit
// q4_0_panel_bit(j) of each row's 32-bit lane (the byte layout above, read by the kernels).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace cb::kernels {

enum class WeightFormat { f32, bf16, f16, q8_0, q4_0 };

constexpr int64_t kQuantBlock = 32;
constexpr int64_t kPanelRows = 16;
// Bytes ahead of a panel's current block that the panel kernels ask the cache for. A panel
// stream gains, unlike the fp32 rows' kernels (linear_avx512.cpp), but the distance is the CPU's: on Zen 5,
// medium decode with the distance switched every 24 tokens inside one process (40 rounds, 2026-12-06):
// q8_0 206 -> 226 tok/s median from none to 8 KB ahead (4 and 16 KB gained less), q4_0 330 -> 342 (2 to
// 8 KB alike). On a Sapphire-Rapids-class Xeon (2026-12-07, alternating runs) 8 KB ahead costs a
// 7B-shaped decode from DRAM 10-20 % against none, and 2 KB beats both: q8_0 3.78-3.83 tok/s against
// 3.52-3.63 (none) and 3.00-3.14 (8 KB), q4_0 6.20-6.36 against 5.58-5.61 and 5.02-5.23. So: 2 KB on
// Intel, 8 KB elsewhere.
int64_t panel_prefetch_bytes();

enum class BlockLayout { rows, panels };

constexpr int q4_0_panel_chunk(int j) { return j % 16 / 4; }
constexpr int q4_0_panel_bit(int j) { return 8 * (j % 4) + (j < 16 ? 0 : 4); }

// "fp32"/"f32", "bf16", "fp16"/"f16", "q8_0", "q4_0"; anything else fails naming `what`.
WeightFormat parse_weight_format(const std::string& name, const std::string& what = "weight format");
const char* weight_format_name(WeightFormat f);  // "fp32", "bf16", "fp16", "q8_0", "q4_0"
bool is_block_format(WeightFormat f);
// Bytes of one block of a block format: fp16 scale + quants (q8_0: 34, q4_0: 18).
constexpr int64_t block_bytes(WeightFormat f) { return f == WeightFormat::q8_0 ? 2 + 32 : 2 + 16; }
// Bytes of one stored row of `cols` input features.
int64_t row_bytes(WeightFormat f, int64_t cols);

// W in one storage format. `data` is contiguous, on the CPU or a CUDA device: float/bfloat16/half
// [rows, cols] for the dense formats, uint8 [rows, row_bytes] for the block formats, in `layout`.
struct PackedWeight {
  WeightFormat format = WeightFormat::f32;
  int64_t rows = 0, cols = 0;
  torch::Tensor data;
  BlockLayout layout = BlockLayout::rows;

  int64_t bytes() const { return data.defined() ? data.numel() * data.element_size() : 0; }
};

// From a dense [rows, cols] tensor of any floating dtype (rounded to nearest for bf16/f16).
PackedWeight pack_weight(const torch::Tensor& w, WeightFormat f);
// Wraps already-packed storage (e.g. a uint8 tensor read from a file), checking shape and dtype.
PackedWeight packed_weight_from_storage(torch::Tensor data, WeightFormat f, int64_t rows, int64_t cols);
// The dequantised weight [rows, cols] as `dtype`, on the storage's device.
torch::Tensor unpack_weight(const PackedWeight& w, torch::Dtype dtype = torch::kFloat);

// One group of 16 rows of a block format with `cols` features between the two layouts: `rows` is 16 x
// row_bytes bytes, row after row; `panel` the same bytes as a panel. The buffers must not overlap.
void rows_to_panel(WeightFormat f, const uint8_t* rows, int64_t cols, uint8_t* panel);
void panel_to_rows(WeightFormat f, const uint8_t* panel, int64_t cols, uint8_t* rows);
// In place: a block format's contiguous CPU storage [n, row_bytes] from rows to panels or back (its full
// groups of 16 rows; the rest stays as rows).
void storage_to_panels(torch::Tensor& data, WeightFormat f);
void storage_to_rows(torch::Tensor& data, WeightFormat f);

}  // namespace cb::kernels
