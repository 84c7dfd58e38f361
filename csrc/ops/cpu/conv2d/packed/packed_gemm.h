// A float GEMM whose B operand is never stored as a matrix: a packer writes each depth block of B
// straight into the panel order the micro-kernel reads, so im2col's columns live only in a
// cache-sized buffer. The A operand (the weights) is read in place.
//
//   c[m x n] = start + a[m x depth] * b[depth x n]
//
// Blocking, outermost first: depth blocks of kKC (B block and A panels stay in L2), pairs of B
// panels of kNR columns (one pair in L1 at a time), A panels of kMR rows, each A panel and pair of
// B panels one micro-kernel call (the 12x32 tile).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>

#include "ops/cpu/common.h"
#include "ops/cpu/microkernels/f32_gemm.h"
#include "ops/cpu/workspace.h"
#include "ops/geometry.h"

namespace fastconv::cpu {

constexpr int64_t kKC = 256;

// The number of blocks (of pixels or tiles, at most max_blocks) that a GEMM's columns are cut
// into, when each block makes tasks_per_block tasks: raised until the tasks are a multiple of the
// thread count, while they number at most kMaxBalancedTasksPerThread per thread (13 tasks on 2
// threads left one thread waiting for the last). Blocks only regroup whole columns, each summed in
// the same order in any block, so the results do not change.
constexpr int64_t kMaxBalancedTasksPerThread = 8;

inline int64_t balanced_blocks(int64_t blocks, int64_t tasks_per_block, int64_t max_blocks,
                               int64_t threads) {
  while (blocks * tasks_per_block % threads != 0 &&
         blocks * tasks_per_block < kMaxBalancedTasksPerThread * threads && blocks < max_blocks) {
    ++blocks;
  }
  return blocks;
}

// How the tasks of a GEMM over `rows` rows cut them when its columns make only `column_tasks`
// tasks and `wanted` are wanted: into blocks of whole kMR panels, at most max_rows rows each.
// Splitting only regroups whole rows, so the sums do not change.
struct RowBlocks {
  int64_t block, count;  // rows per block (the last may have fewer), blocks
};

inline RowBlocks split_rows(int64_t rows, int64_t column_tasks, int64_t wanted, int64_t max_rows) {
  int64_t splits = std::clamp<int64_t>(ceil_div(wanted, column_tasks), 1, ceil_div(rows, kMR));
  splits = std::max(splits, ceil_div(rows, max_rows));
  const int64_t block = round_up(ceil_div(rows, splits), kMR);
  return {block, ceil_div(rows, block)};
}

// Block b of `blocks` blocks of whole kNR-column panels shared out evenly over n columns (panels
// of them): its first column and its column count.
inline std::pair<int64_t, int64_t> panel_block(int64_t b, int64_t blocks, int64_t panels,
                                               int64_t n) {
  const int64_t first = b * panels / blocks * kNR;
  return {first, std::min(n, (b + 1) * panels / blocks * kNR) - first};
}

// Depth blocks of equal size, at most max_block, rather than a short last one.
inline int64_t block_depth_of(int64_t depth, int64_t max_block = kKC) {
  const int64_t blocks = std::max<int64_t>(ceil_div(depth, max_block), 1);
  return ceil_div(depth, blocks);
}

// a[m x depth], row-major with row stride lda, read in place by the micro-kernel, kMR rows at a
// time: packing it per block costs more than it saves when few columns share the block, and
// packing it once per call doubles the weight traffic of a small batch. The rows of a
// last partial panel are copied once into a zero-padded block so that no read passes the matrix.
class GemmA {
 public:
  GemmA(const float* data, int64_t m, int64_t depth, int64_t lda)
      : data_(data), depth_(depth), lda_(lda), full_rows_(m / kMR * kMR) {
    if (full_rows_ < m) {
      tail_ = std::make_unique<Workspace<float>>(kMR * depth, /*zeroed=*/true);
      for (int64_t i = full_rows_; i < m; ++i) {
        std::copy_n(data + i * lda, depth, tail_->data() + (i - full_rows_) * depth);
      }
    }
  }

  int64_t depth() const { return depth_; }
  // The panel of rows [i0, i0 + kMR) from column k0, and its row stride.
  const float* panel(int64_t i0, int64_t k0) const {
    return i0 < full_rows_ ? data_ + i0 * lda_ + k0 : tail_->data() + k0;
  }
  int64_t panel_stride(int64_t i0) const { return i0 < full_rows_ ? lda_ : depth_; }

 private:
  const float* data_;
  int64_t depth_, lda_, full_rows_;
  std::unique_ptr<Workspace<float>> tail_;
};

// Where packers put b(k, j) of a depth block of kc rows: panel j / kNR, row k, lane j % kNR.
inline int64_t packed_b_offset(int64_t k, int64_t j, int64_t kc) {
  return (j / kNR) * kc * kNR + k * kNR + j % kNR;
}

// Elements of the B buffer a call with n columns needs.
inline int64_t packed_b_elements(int64_t n) { return round_up(n, kNR) * kKC; }

// Floats of the scratch tiles (kMR x 2 kNR each) of a packed_gemm call over `rows` rows and n
// columns: one per row panel and pair of B panels.
inline int64_t packed_gemm_scratch_elements(int64_t rows, int64_t n) {
  return ceil_div(rows, kMR) * ceil_div(n, 2 * kNR) * kMR * 2 * kNR;
}

// Rows [row_begin, row_end) (row_begin a multiple of kMR) and n columns of c = start + a * b,
// start being c itself when `accumulate`, else row_start[i] per row, or zero. Column j of c starts
// at columns[j] and its rows are ldc apart, so a block of columns may span several images.
// pack_b(k0, kc, buffer) writes b's rows [k0, k0 + kc) for these n columns at packed_b_offset,
// zero past n, into b_buffer (a Workspace of packed_b_elements(n)).
//
// Each depth block after the first is summed from zero into a local tile and then added to the
// output (blocked sums): no output is one running total over the whole depth, whose rounding
// error would grow with it (a 512-channel 3x3 layer's input gradient sums 4608 products).
//
// A tile that does not lie whole and side by side in c (a last partial row panel, columns split
// between images) is summed in its own scratch tile (tile_scratch, packed_gemm_scratch_elements),
// kept across the depth blocks and stored once: each output is then start + the products in
// order, as in a tile summed in place, and small images do not pay a scalar store per depth
// block.
// c[i * ldc + j] += block[i * ld_block + j] for i < rows, j < cols.
inline void add_tile(const float* block, int64_t ld_block, int64_t rows, int64_t cols, float* c,
                     int64_t ldc) {
  for (int64_t i = 0; i < rows; ++i) {
    FASTCONV_NO_OVERLAP
    for (int64_t j = 0; j < cols; ++j) c[i * ldc + j] += block[i * ld_block + j];
  }
}

template <typename PackB>
void packed_gemm(const GemmKernels& kernels, const GemmA& a, int64_t row_begin, int64_t row_end,
                 int64_t n, PackB&& pack_b, float* b_buffer, float* const* columns, int64_t ldc,
                 const float* row_start, bool accumulate, float* tile_scratch) {
  const int64_t n_panels = ceil_div(n, kNR);
  const int64_t row_panels = ceil_div(row_end - row_begin, kMR);
  const int64_t block_depth = block_depth_of(a.depth());
  alignas(64) float block[kMR * 2 * kNR];  // a depth block's tile, before it is added
  for (int64_t k0 = 0; k0 < a.depth(); k0 += block_depth) {
    const int64_t kc = std::min(block_depth, a.depth() - k0);
    pack_b(k0, kc, b_buffer);
    const bool first_block = k0 == 0, last_block = k0 + kc == a.depth();
    // Two panels at a time (the 12x32 tile), the last alone when their count is odd.
    for (int64_t jp = 0; jp < n_panels; jp += 2) {
      const bool wide = jp + 1 < n_panels;
      const int64_t width = wide ? 2 * kNR : kNR;
      const int64_t cols = std::min(width, n - jp * kNR);
      float* const* tile_columns = columns + jp * kNR;
      const float* b = b_buffer + jp * kc * kNR;
      // A tile whose columns lie side by side in c (not split between images).
      const bool contiguous =
          cols == width && tile_columns[width - 1] == tile_columns[0] + width - 1;
      for (int64_t i0 = row_begin; i0 < row_end; i0 += kMR) {
        const float* a_panel = a.panel(i0, k0);
        const int64_t lda = a.panel_stride(i0);
        const int64_t rows = std::min(kMR, row_end - i0);
        if (rows == kMR && contiguous) {
          float* c_tile = tile_columns[0] + i0 * ldc;
          if (first_block) {
            const float* start = (accumulate || row_start == nullptr) ? nullptr : row_start + i0;
            kernels.run(wide, rows, kc, a_panel, lda, b, kc * kNR, c_tile, ldc, start, accumulate);
          } else {
            kernels.run(wide, rows, kc, a_panel, lda, b, kc * kNR, block, width, nullptr, false);
            add_tile(block, width, rows, width, c_tile, ldc);
          }
          continue;
        }
        float* scratch =
            tile_scratch + ((i0 - row_begin) / kMR + jp / 2 * row_panels) * kMR * 2 * kNR;
        if (first_block) {
          // The tile's start (c, or row_start, or zero; zero in the rows and columns past c).
          std::fill_n(scratch, kMR * width, 0.f);
          for (int64_t i = 0; i < rows; ++i) {
            for (int64_t j = 0; j < cols; ++j) {
              scratch[i * width + j] = accumulate ? tile_columns[j][i0 * ldc + i * ldc]
                  : row_start != nullptr          ? row_start[i0 + i]
                                                  : 0.f;
            }
          }
          kernels.run(wide, rows, kc, a_panel, lda, b, kc * kNR, scratch, width, nullptr,
                      /*accumulate=*/true);
        } else {
          kernels.run(wide, rows, kc, a_panel, lda, b, kc * kNR, block, width, nullptr, false);
          add_tile(block, width, rows, width, scratch, width);
        }
        if (last_block) {
          for (int64_t j = 0; j < cols; ++j) {
            float* column = tile_columns[j] + i0 * ldc;
            for (int64_t i = 0; i < rows; ++i) column[i * ldc] = scratch[i * width + j];
          }
        }
      }
    }
  }
}

// grad_output as B panels of 16 output channels, per group, over the pixels of the whole batch
// (image after image): panel q of group gr holds gy[n][gr * K + 16 q + j][p] at
// packed[((gr * panels + q) * batch + n) * P * 16 + p * 16 + j], zero past K; k_padded = 16 panels.
// The weight gradients of the packed and Winograd paths read it (pack_grad_output.cpp).
void pack_grad_output(const Conv2dGeometry& g, const float* gy, int64_t k_padded, float* packed);

}  // namespace fastconv::cpu
