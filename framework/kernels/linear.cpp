// The CPU entry points of linear.h: which kernel family runs (linear_family.h), the threads' share of the
// rows, the tiled and GEMM paths for larger batches.
#include "framework/kernels/linear.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "framework/error.h"
#include "framework/kernels/cpu_features.h"
#include "framework/kernels/gemm.h"
#include "framework/kernels/linear_family.h"
#include "framework/kernels/q4_0_avx2.h"
#include "framework/kernels/q4_0_vnni.h"
#include "framework/kernels/row_threads.h"

namespace cb::kernels {
namespace {

using F = WeightFormat;
using family::FormatKernels;
using family::kRowGroup;
using family::PanelX;

// Weight rows dequantised per BLAS call on the tiled path (the tile is ~4 MB of fp32).
constexpr int64_t kTileFloats = int64_t{1} << 20;

// The family of a kernel choice (linear_family.h).
FormatKernels kernels_for(F f, LinearKernel k) {
#if defined(__x86_64__)
  if (uses_avx512(k)) return family::avx512_kernels(f, k == LinearKernel::avx512_vnni);
  if (k == LinearKernel::avx2) return family::avx2_kernels(f);
#endif
  return family::scalar_kernels(f);
}

const uint8_t* storage(const PackedWeight& w) { return static_cast<const uint8_t*>(w.data.data_ptr()); }

// Output rows per chunk: ~64 KB of weights (a few microseconds), small enough to balance the threads, large
// enough that claiming a chunk costs nothing beside it; smaller layers stay on one thread.
int64_t row_grain(const PackedWeight& w) {
  return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, row_bytes(w.format, w.cols)));
}

// The units the threads share out: W's panels of 16 rows (weight_format.h), then its rows after the last
// full panel one by one (all rows, in the rows layout).
struct RowUnits {
  int64_t panels = 0, count = 0;
  int64_t first_row(int64_t u) const { return u < panels ? u * kPanelRows : u - panels + panels * kPanelRows; }
  int64_t rows(int64_t u) const { return u < panels ? kPanelRows : 1; }
};

// The units of W's rows [r0, r0 + n), r0 a multiple of kPanelRows when W is in panels.
RowUnits row_units(const PackedWeight& w, int64_t r0, int64_t n) {
  const int64_t panel_rows = w.layout == BlockLayout::panels ? w.rows / kPanelRows * kPanelRows : 0;
  const int64_t panels = std::clamp<int64_t>(panel_rows - r0, 0, n) / kPanelRows;
  return {panels, panels + n - panels * kPanelRows};
}

// Units per chunk for row_grain's rows per chunk.
int64_t unit_grain(const PackedWeight& w, const RowUnits& u) {
  return u.panels ? std::max<int64_t>(1, row_grain(w) / kPanelRows) : row_grain(w);
}

// A panel taken apart into its 16 rows, in the calling thread's buffer (grown as needed and kept).
const uint8_t* panel_as_rows(F f, const uint8_t* panel, int64_t cols) {
  thread_local std::vector<uint8_t> buffer;
  buffer.resize(static_cast<size_t>(kPanelRows * row_bytes(f, cols)));
  panel_to_rows(f, panel, cols, buffer.data());
  return buffer.data();
}

// One weight of a row-kernel call: y [M, w.rows] = x · Wᵀ, its units numbered from `first_unit` in the call.
struct RowJob {
  RowJob() = default;
  RowJob(const PackedWeight& weight, const FormatKernels& kernels, float* out)
      : w(&weight), k(kernels), units(row_units(weight, 0, weight.rows)), y(out) {}
  const PackedWeight* w = nullptr;
  FormatKernels k;
  RowUnits units;
  float* y = nullptr;
  int64_t first_unit = 0;  // set by row_kernel_linear
};

// x's rows prepared for the q4_0 kernels that take them (cols / 32 blocks a row), or null.
struct PreparedX {
  const Q4VnniBlock* vnni = nullptr;  // for the VNNI q4_0 panels
  const Q4Avx2Block* avx2 = nullptr;  // for the AVX2 q4_0 panels
};

// x [M, cols] prepared by `prepare` a row at a time into the calling thread's buffer for Block (grown as
// needed and kept).
template <class Block>
const Block* prepare_x(const float* x, int64_t M, int64_t cols, void (*prepare)(const float*, int64_t, Block*)) {
  thread_local std::vector<Block> buffer;
  const int64_t blocks = cols / kQuantBlock;
  if (static_cast<int64_t>(buffer.size()) < M * blocks) buffer.resize(static_cast<size_t>(M * blocks));
  for (int64_t m = 0; m < M; ++m) prepare(x + m * cols, cols, buffer.data() + m * blocks);
  return buffer.data();
}

// y [M, rows] of one panel u of a job: its weights are read once for all M rows of x (they stay in L1/L2
// across the groups of kRowGroup).
void panel_unit(const float* x, const PreparedX& xp, int64_t M, const RowJob& job, int64_t u) {
  const PackedWeight& w = *job.w;
  const int64_t stride = row_bytes(w.format, w.cols), cols = w.cols, rows = w.rows;
  const float* xs[kRowGroup];
  const Q4VnniBlock* xqs[kRowGroup];
  const Q4Avx2Block* x2s[kRowGroup];
  float out[kRowGroup * kPanelRows], row_out[kRowGroup];  // out[i * 16 + r]: x row i, weight row r of the panel
  const int64_t r0 = job.units.first_row(u);
  const bool panel_kernel = job.k.panel_dot[0] || job.k.panel_x != PanelX::floats;
  const PanelX panel_x = panel_kernel ? job.k.panel_x : PanelX::floats;
  const int64_t blocks = cols / kQuantBlock;
  const uint8_t* wr = storage(w) + r0 * stride;
  if (!panel_kernel) wr = panel_as_rows(w.format, wr, cols);
  for (int64_t m = 0; m < M; m += kRowGroup) {
    const int n = static_cast<int>(std::min<int64_t>(kRowGroup, M - m));
    for (int i = 0; i < n; ++i) xs[i] = x + (m + i) * cols;
    if (panel_x == PanelX::vnni) {
      for (int i = 0; i < n; ++i) xqs[i] = xp.vnni + (m + i) * blocks;
      q4_0_vnni_panel_dot(n, wr, xqs, cols, out);
    } else if (panel_x == PanelX::avx2) {
      for (int i = 0; i < n; ++i) x2s[i] = xp.avx2 + (m + i) * blocks;
      q4_0_avx2_panel_dot(n, wr, x2s, cols, out);
    } else if (panel_kernel) {
      job.k.panel_dot[n - 1](wr, xs, cols, out);
    } else {
      for (int64_t r = 0; r < kPanelRows; ++r) {
        job.k.dot[n - 1](wr + r * stride, xs, cols, row_out);
        for (int i = 0; i < n; ++i) out[i * kPanelRows + r] = row_out[i];
      }
    }
    for (int i = 0; i < n; ++i)
      for (int64_t r = 0; r < kPanelRows; ++r) job.y[(m + i) * rows + r0 + r] = out[i * kPanelRows + r];
  }
}

// y [M, rows] of W's stored rows [r0, r1) (the rows after its panels): each row is read once for all M rows
// of x. One call for the whole run, not one per row: at M = 1 a call per row cost ~3 % of an fp32 decode.
void row_run(const float* x, int64_t M, const RowJob& job, int64_t r0, int64_t r1) {
  const PackedWeight& w = *job.w;
  const int64_t stride = row_bytes(w.format, w.cols), cols = w.cols, rows = w.rows;
  const uint8_t* wr = storage(w);
  const float* xs[kRowGroup];
  float row_out[kRowGroup];
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t m = 0; m < M; m += kRowGroup) {
      const int n = static_cast<int>(std::min<int64_t>(kRowGroup, M - m));
      for (int i = 0; i < n; ++i) xs[i] = x + (m + i) * cols;
      job.k.dot[n - 1](wr + r * stride, xs, cols, row_out);
      for (int i = 0; i < n; ++i) job.y[(m + i) * rows + r] = row_out[i];
    }
}

// y of a job's units [u0, u1).
void job_units(const float* x, const PreparedX& xp, int64_t M, const RowJob& job, int64_t u0, int64_t u1) {
  for (int64_t u = u0; u < std::min(u1, job.units.panels); ++u) panel_unit(x, xp, M, job, u);
  if (u1 > job.units.panels) {
    const int64_t ur = std::max(u0, job.units.panels);
    row_run(x, M, job, job.units.first_row(ur), job.units.first_row(u1 - 1) + 1);
  }
}

// Every job's y = x [M, cols] · Wᵀ, M <= kSmallBatchRows, in one hand-off to the threads: they share out
// the jobs' units in order (a decode step's q/k/v or gate/up then cost one fork-join, not one each).
void row_kernel_linear(const float* x, int64_t M, RowJob* jobs, int n_jobs) {
  int64_t total = 0, grain = std::numeric_limits<int64_t>::max();
  bool vnni = false, avx2 = false;
  for (int j = 0; j < n_jobs; ++j) {
    jobs[j].first_unit = total;
    total += jobs[j].units.count;
    grain = std::min(grain, unit_grain(*jobs[j].w, jobs[j].units));
    const bool has_panels = jobs[j].units.panels > 0;
    vnni = vnni || (has_panels && jobs[j].k.panel_x == PanelX::vnni);
    avx2 = avx2 || (has_panels && jobs[j].k.panel_x == PanelX::avx2);
  }
  // x's rows for the q4_0 kernels that take them, once for all jobs (they share x).
  const int64_t cols = jobs[0].w->cols;
  PreparedX xp;
  if (vnni) xp.vnni = prepare_x(x, M, cols, q4_0_vnni_prepare);
  if (avx2) xp.avx2 = prepare_x(x, M, cols, q4_0_avx2_prepare);
  parallel_rows(total, grain, [&](int64_t u0, int64_t u1) {
    int j = 0;
    for (int64_t u = u0; u < u1;) {
      while (u >= jobs[j].first_unit + jobs[j].units.count) ++j;
      const int64_t end = std::min(u1, jobs[j].first_unit + jobs[j].units.count);
      job_units(x, xp, M, jobs[j], u - jobs[j].first_unit, end - jobs[j].first_unit);
      u = end;
    }
  });
}

// Columns [c0, c0 + n) of unit u of `units` (W's rows from r0) dequantised into t (row stride ld), at the
// unit's row within the range; c0 a multiple of kQuantBlock for the block formats.
void dequantise_unit(const PackedWeight& w, const FormatKernels& k, const RowUnits& units, int64_t r0, int64_t u,
                     int64_t c0, int64_t n, float* t, int64_t ld) {
  const int64_t stride = row_bytes(w.format, w.cols), r = units.first_row(u);
  const uint8_t* wr = storage(w) + (r0 + r) * stride;
  if (u < units.panels && k.panel_dequant)  // a panel's blocks lie column block after column block
    return k.panel_dequant(wr + kPanelRows * row_bytes(w.format, c0), n, t + r * ld, ld);
  if (u < units.panels) wr = panel_as_rows(w.format, wr, w.cols);
  for (int64_t i = 0; i < units.rows(u); ++i) k.dequant(wr + i * stride + row_bytes(w.format, c0), n, t + (r + i) * ld);
}

// The fp32 tile buffer of the calling thread, grown as needed and kept.
torch::Tensor tile_buffer(int64_t tile_rows, int64_t cols) {
  thread_local torch::Tensor buffer;
  if (!buffer.defined() || buffer.numel() < tile_rows * cols) buffer = torch::empty({tile_rows * cols}, torch::kFloat);
  return buffer.narrow(0, 0, tile_rows * cols).view({tile_rows, cols});
}

// Calls fn(r0, tile) for consecutive tiles of W's rows, tile [r1 - r0, cols] fp32 (the same buffer each time).
template <class Fn>
void for_each_dequantised_tile(const PackedWeight& w, const FormatKernels& k, Fn&& fn) {
  const int64_t cols = w.cols;
  const int64_t tile_rows =  // whole panels
      std::clamp<int64_t>(kTileFloats / std::max<int64_t>(1, cols), 16, std::max<int64_t>(16, w.rows)) / kPanelRows *
      kPanelRows;
  for (int64_t r0 = 0; r0 < w.rows; r0 += tile_rows) {
    const int64_t n = std::min(tile_rows, w.rows - r0);
    auto tile = tile_buffer(tile_rows, cols).narrow(0, 0, n);
    float* t = tile.data_ptr<float>();
    const auto units = row_units(w, r0, n);
    parallel_rows(units.count, unit_grain(w, units), [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u) dequantise_unit(w, k, units, r0, u, 0, cols, t, cols);
    });
    fn(r0, tile);
  }
}

#if defined(__x86_64__)
// y [M, rows] = x [M, cols] · Wᵀ through the AVX-512 GEMM (gemm.h). The threads share W's panels of 64
// rows. fp32 and 16-bit rows are packed from the weight itself; block formats are dequantised into the
// thread's tile buffer and packed from there, or, where all 64 rows are row panels, dequantised straight
// into the packed layout (a 7B-shaped q4_0 prefill of 32 tokens spent as long packing as multiplying
// before; 2026-12-07, Xeon).
static_assert(kGemmPanelRows % kPanelRows == 0, "a GEMM panel must hold whole weight panels");
static_assert(kGemmDepth % kQuantBlock == 0, "a GEMM depth block must hold whole quantization blocks");
void gemm_linear(const float* x, int64_t M, const PackedWeight& w, const FormatKernels& k, float* y) {
  const int64_t cols = w.cols, panels = (w.rows + kGemmPanelRows - 1) / kGemmPanelRows;
  parallel_rows(panels, 1, [&](int64_t p0, int64_t p1) {
    float* rows = tile_buffer(2 * kGemmPanelRows, cols).data_ptr<float>();
    float* packed = rows + kGemmPanelRows * cols;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t r0 = p * kGemmPanelRows, n = std::min(kGemmPanelRows, w.rows - r0);
      const auto units = row_units(w, r0, n);
      if (k.panel_dequant_columns && n == kGemmPanelRows && units.panels * kPanelRows == kGemmPanelRows) {
        // A depth block at a time, as the GEMM walks K anyway: its 64 KB stay in L2 between written and read.
        const int64_t stride = row_bytes(w.format, cols);
        for (int64_t k0 = 0; k0 < cols; k0 += kGemmDepth) {
          const int64_t kc = std::min(kGemmDepth, cols - k0);
          for (int64_t u = 0; u < units.panels; ++u)
            k.panel_dequant_columns(storage(w) + (r0 + u * kPanelRows) * stride + kPanelRows * row_bytes(w.format, k0),
                                    kc, packed + u * kPanelRows, kGemmPanelRows);
          gemm_packed_avx512(x + k0, cols, M, packed, kc, n, y + r0, w.rows, k0 > 0);
        }
        continue;
      }
      const void* b = storage(w) + r0 * row_bytes(w.format, cols);
      WeightFormat b_rows = w.format;
      if (is_block_format(w.format)) {
        for (int64_t u = 0; u < units.count; ++u) dequantise_unit(w, k, units, r0, u, 0, cols, rows, cols);
        b = rows;
        b_rows = F::f32;
      }
      gemm_panel_avx512(x, M, cols, b, b_rows, n, y + r0, w.rows, packed);
    }
  });
}

// Asks L2 for the bytes of W[k0:k0+kc, c0:c0+n] (one piece per unit of rows, a unit's width apart).
void prefetch_block(const PackedWeight& w, int64_t k0, int64_t kc, int64_t c0, int64_t n) {
  const int64_t stride = row_bytes(w.format, w.cols), offset = row_bytes(w.format, c0), len = row_bytes(w.format, n);
  const auto units = row_units(w, k0, kc);
  for (int64_t u = 0; u < units.count; ++u) {
    const int64_t rows = units.rows(u);
    const uint8_t* p = storage(w) + (k0 + units.first_row(u)) * stride + rows * offset;
    for (int64_t b = 0; b < rows * len; b += 64) _mm_prefetch(reinterpret_cast<const char*>(p + b), _MM_HINT_T1);
  }
}

// dx [M, cols] = dy [M, rows] · W through the AVX-512 GEMM. The threads share dx's panels of 64 columns;
// for each, W's rows are dequantised kGemmDepth at a time straight into the GEMM's packed layout (row k
// of the block is W[k, c0:c0+64], so no transpose) and multiplied for every row of dy, each block adding
// to dx after the first.
static_assert(kGemmDepth % kPanelRows == 0, "a block of W's rows must hold whole panels (row_units)");
void gemm_input_grad(const float* dy, int64_t M, const PackedWeight& w, const FormatKernels& k, float* dx) {
  const int64_t cols = w.cols, panels = (cols + kGemmPanelRows - 1) / kGemmPanelRows;
  parallel_rows(panels, 1, [&](int64_t p0, int64_t p1) {
    auto block = tile_buffer(kGemmDepth, kGemmPanelRows);  // [k][64]
    float* bp = block.data_ptr<float>();
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t c0 = p * kGemmPanelRows, n = std::min(kGemmPanelRows, cols - c0);
      if (n < kGemmPanelRows) block.zero_();  // lanes past n: read by the GEMM, their products dropped
      for (int64_t k0 = 0; k0 < w.rows; k0 += kGemmDepth) {
        const int64_t kc = std::min(kGemmDepth, w.rows - k0);
        const auto units = row_units(w, k0, kc);
        for (int64_t u = 0; u < units.count; ++u) dequantise_unit(w, k, units, k0, u, c0, n, bp, kGemmPanelRows);
        if (k0 + kc < w.rows) prefetch_block(w, k0 + kc, std::min(kGemmDepth, w.rows - k0 - kc), c0, n);
        gemm_packed_avx512(dy + k0, w.rows, M, bp, kc, n, dx + c0, cols, k0 > 0);
      }
    }
  });
}
#endif

// Uninitialised, x's shape with `n` in its last dimension, x's dtype and device.
torch::Tensor empty_with_features(const torch::Tensor& x, int64_t n) {
  auto sizes = x.sizes().vec();
  sizes.back() = n;
  return torch::empty(sizes, x.options());
}

void check_layout(const PackedWeight& w) {
  if (w.layout == BlockLayout::panels && !is_block_format(w.format))
    fail("linear: a {} weight cannot lie in row panels (block formats only)", weight_format_name(w.format));
}

bool fast_path(const torch::Tensor& x, const PackedWeight& w) {
  check_layout(w);
  return x.device().is_cpu() && w.data.device().is_cpu() && x.scalar_type() == torch::kFloat;
}

void check_kernel(LinearKernel kernel) {
  if (!linear_kernel_available(kernel))
    fail("linear: the {} kernel needs an x86-64 CPU with {} (this one lacks one of them)", linear_kernel_name(kernel),
         kernel == LinearKernel::avx512_vnni ? "AVX-512F, AVX-512 VNNI, AVX2, FMA and F16C"
         : kernel == LinearKernel::avx512    ? "AVX-512F, AVX2, FMA and F16C"
                                             : "AVX2, FMA and F16C");
}

}  // namespace

DotKernel dot_kernel(LinearKernel kernel, WeightFormat a_format) {
  check_kernel(kernel);
  if (is_block_format(a_format)) fail("dot_kernel: {} rows are not dense", weight_format_name(a_format));
  return kernels_for(a_format, kernel).dot_one;
}

bool linear_kernel_available(LinearKernel kernel) {
  const auto& f = cpu_features();
  switch (kernel) {
    case LinearKernel::scalar: return true;
    case LinearKernel::avx2: return f.avx2 && f.fma && f.f16c;
    case LinearKernel::avx512: return f.avx512f && f.avx2 && f.fma && f.f16c;
    case LinearKernel::avx512_vnni: return f.avx512vnni && f.avx512f && f.avx2 && f.fma && f.f16c;
  }
  return false;
}

const char* linear_kernel_name(LinearKernel kernel) {
  switch (kernel) {
    case LinearKernel::scalar: return "scalar";
    case LinearKernel::avx2: return "avx2";
    case LinearKernel::avx512: return "avx512";
    case LinearKernel::avx512_vnni: return "avx512_vnni";
  }
  return "?";
}

LinearKernel default_linear_kernel() {
  static const LinearKernel kernel = [] {
    const auto limit = simd_limit();
    if (limit >= SimdLevel::avx512_vnni && linear_kernel_available(LinearKernel::avx512_vnni))
      return LinearKernel::avx512_vnni;
    if (limit >= SimdLevel::avx512 && linear_kernel_available(LinearKernel::avx512)) return LinearKernel::avx512;
    if (limit >= SimdLevel::avx2 && linear_kernel_available(LinearKernel::avx2)) return LinearKernel::avx2;
    return LinearKernel::scalar;
  }();
  return kernel;
}

BlockLayout preferred_layout(WeightFormat f) {
  const auto k = default_linear_kernel();
  const bool panels = is_block_format(f) && (uses_avx512(k) || (f == F::q4_0 && k == LinearKernel::avx2));
  return panels ? BlockLayout::panels : BlockLayout::rows;
}

torch::Tensor linear(const torch::Tensor& x, const PackedWeight& w) { return linear(x, w, default_linear_kernel()); }

torch::Tensor linear_input_grad(const torch::Tensor& dy, const PackedWeight& w) {
  return linear_input_grad(dy, w, default_linear_kernel());
}

std::vector<torch::Tensor> linear_shared_input(const torch::Tensor& x, const std::vector<PackedWeight>& ws) {
  return linear_shared_input(x, ws, default_linear_kernel());
}

torch::Tensor linear(const torch::Tensor& x, const PackedWeight& w, LinearKernel kernel) {
  check_kernel(kernel);
  if (x.dim() == 0 || x.size(-1) != w.cols)
    fail("linear: input has {} features, the weight expects {}", x.dim() ? x.size(-1) : 0, w.cols);
  if (!fast_path(x, w)) return torch::matmul(x, unpack_weight(w, x.scalar_type()).t());

  torch::NoGradGuard no_grad;  // W is frozen; the caller's autograd function owns the graph
  const auto xc = x.contiguous();
  const int64_t M = c10::multiply_integers(x.sizes().slice(0, x.dim() - 1));
  auto y = empty_with_features(x, w.rows);
  if (M == 0 || w.rows == 0) return y;
  if (w.cols == 0) return y.zero_();
  if (M <= kSmallBatchRows) {  // from the pointers: a decode step's calls take no view op
    const PackedWeight* ws[] = {&w};
    float* ys[] = {y.data_ptr<float>()};
    linear_rows(xc.data_ptr<float>(), M, w.cols, ws, ys, 1, kernel);
    return y;
  }
  const auto k = kernels_for(w.format, kernel);
  const auto x2 = xc.view({M, w.cols});  // [M, cols]
  auto y2 = y.view({M, w.rows});         // [M, rows]
#if defined(__x86_64__)
  if (uses_avx512(kernel)) {
    gemm_linear(x2.data_ptr<float>(), M, w, k, y2.data_ptr<float>());
    return y;
  }
#endif
  if (w.format == F::f32) {
    at::mm_out(y2, x2, w.data.t());
  } else {
    // y[:, r0:r0+n] = x · tileᵀ, written in place (BLAS takes the output's row stride).
    for_each_dequantised_tile(w, k, [&](int64_t r0, const torch::Tensor& tile) {
      auto out = y2.narrow(1, r0, tile.size(0));
      at::mm_out(out, x2, tile.t());
    });
  }
  return y;
}

std::vector<torch::Tensor> linear_shared_input(const torch::Tensor& x, const std::vector<PackedWeight>& ws,
                                               LinearKernel kernel) {
  check_kernel(kernel);
  const int64_t M = x.dim() && x.size(-1) ? x.numel() / x.size(-1) : 0;
  bool row_kernels = M >= 1 && M <= kSmallBatchRows;
  for (const auto& w : ws) row_kernels = row_kernels && x.size(-1) == w.cols && w.rows > 0 && fast_path(x, w);
  std::vector<torch::Tensor> ys;
  if (!row_kernels) {  // checks, other paths and empty shapes as linear() has them
    for (const auto& w : ws) ys.push_back(linear(x, w, kernel));
    return ys;
  }
  torch::NoGradGuard no_grad;
  const auto xc = x.contiguous();
  std::vector<const PackedWeight*> wp;
  std::vector<float*> yp;
  for (const auto& w : ws) {
    ys.push_back(empty_with_features(x, w.rows));
    wp.push_back(&w);
    yp.push_back(ys.back().data_ptr<float>());
  }
  linear_rows(xc.data_ptr<float>(), M, x.size(-1), wp.data(), yp.data(), static_cast<int>(ws.size()), kernel);
  return ys;
}

void linear_rows(const float* x, int64_t M, int64_t cols, const PackedWeight* const* ws, float* const* ys, int n,
                 LinearKernel kernel) {
  check_kernel(kernel);
  if (M < 1 || M > kSmallBatchRows) fail("linear_rows: {} rows of x (1 to {})", M, kSmallBatchRows);
  if (n < 1) fail("linear_rows: {} weights", n);
  std::array<RowJob, 8> few;  // a layer's q/k/v or gate/up: no allocation
  std::vector<RowJob> many(n > static_cast<int>(few.size()) ? n : 0);
  RowJob* jobs = many.empty() ? few.data() : many.data();
  for (int j = 0; j < n; ++j) {
    const PackedWeight& w = *ws[j];
    if (w.cols != cols || w.rows < 1 || !w.data.device().is_cpu())
      fail("linear_rows: weight {} is [{}, {}] on {}, expected a CPU weight of {} columns and at least one row", j,
           w.rows, w.cols, w.data.device().str(), cols);
    check_layout(w);
    jobs[j] = RowJob(w, kernels_for(w.format, kernel), ys[j]);
  }
  row_kernel_linear(x, M, jobs, n);
}

torch::Tensor linear_input_grad(const torch::Tensor& dy, const PackedWeight& w, LinearKernel kernel) {
  check_kernel(kernel);
  if (dy.dim() == 0 || dy.size(-1) != w.rows)
    fail("linear_input_grad: gradient has {} features, the weight has {} rows", dy.dim() ? dy.size(-1) : 0, w.rows);
  if (!fast_path(dy, w)) return torch::matmul(dy, unpack_weight(w, dy.scalar_type()));

  torch::NoGradGuard no_grad;
  const auto dy2 = dy.reshape({-1, w.rows}).contiguous();  // [M, rows]
  const int64_t M = dy2.size(0);
  auto dx = empty_with_features(dy, w.cols);
  auto dx2 = dx.view({M, w.cols});  // [M, cols]
  if (M == 0 || w.cols == 0) return dx;
  if (w.rows == 0) return dx.zero_();
  const auto k = kernels_for(w.format, kernel);
#if defined(__x86_64__)
  if (uses_avx512(kernel)) {
    gemm_input_grad(dy2.data_ptr<float>(), M, w, k, dx2.data_ptr<float>());
    return dx;
  }
#endif
  if (w.format == F::f32) {
    at::mm_out(dx2, dy2, w.data);
    return dx;
  }
  // dx = Σ_tiles dy[:, r0:r0+n] · tile: the backward runs at training batch sizes, where the GEMM wins.
  for_each_dequantised_tile(w, k, [&](int64_t r0, const torch::Tensor& tile) {
    const auto dy_part = dy2.narrow(1, r0, tile.size(0));
    if (r0 == 0) at::mm_out(dx2, dy_part, tile);
    else dx2.addmm_(dy_part, tile);
  });
  return dx;
}

}  // namespace cb::kernels
