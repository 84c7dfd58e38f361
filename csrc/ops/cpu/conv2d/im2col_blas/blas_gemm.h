// Row-major GEMM on raw memory through ATen, which hands it to the BLAS torch was built with
// (MKL, OpenBLAS, oneDNN for reduced precision). ATen's cpublas entry points are not exported
// from libtorch, so the operands are wrapped as strided tensors instead: no copy is made as long
// as each matrix has unit stride along one dimension, which all of ours do.
#pragma once

#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>

#include <algorithm>

#include "ops/cpu/common.h"
#include "ops/cpu/parallel.h"

// MKL's thread count for the calling thread alone (0: back to the global one), which libtorch
// exports where torch links MKL (its x86 builds); a weak reference, null where it does not.
extern "C" int MKL_Set_Num_Threads_Local(int) __attribute__((weak));

namespace fastconv::cpu {

// A matrix of `rows` x `cols` stored row-major with row stride `ld`; `transposed` reads the
// stored matrix as its transpose (then `rows` x `cols` is the shape after transposing).
template <typename T>
struct Matrix {
  const T* data;
  int64_t rows, cols, ld;
  bool transposed = false;

  at::Tensor view() const {
    const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
    auto* p = const_cast<T*>(data);
    return transposed ? at::from_blob(p, {rows, cols}, {1, ld}, options)
                      : at::from_blob(p, {rows, cols}, {ld, 1}, options);
  }

  // Rows [row, row + count) and columns [col, col + cols_count) of the matrix as read.
  Matrix block(int64_t row, int64_t count, int64_t col, int64_t cols_count) const {
    const T* start = transposed ? data + col * ld + row : data + row * ld + col;
    return {start, count, cols_count, ld, transposed};
  }
};

template <typename T>
Matrix<T> transposed(Matrix<T> m) {
  m.transposed = true;
  return m;
}

// BLAS on the calling thread alone while it lives (MKL; other BLAS libraries keep their own
// threads). MKL splits a GEMM's work, the sums included, differently for each thread count, and
// runs it on one thread inside a parallel region but on all of them outside one.
class SerialBlas {
 public:
  SerialBlas() : previous_(MKL_Set_Num_Threads_Local ? MKL_Set_Num_Threads_Local(1) : 0) {}
  ~SerialBlas() {
    if (MKL_Set_Num_Threads_Local) MKL_Set_Num_Threads_Local(previous_);
  }
  SerialBlas(const SerialBlas&) = delete;
  SerialBlas& operator=(const SerialBlas&) = delete;

 private:
  int previous_;
};

// c = a * b, or c += a * b when `accumulate`, by one BLAS call on the calling thread. c is
// rows(a) x cols(b), row-major with stride ldc.
template <typename T>
void serial_gemm(const Matrix<T>& a, const Matrix<T>& b, T* c, int64_t ldc, bool accumulate) {
  // Plain buffers inside a kernel: no autograd to record, so skip its dispatch layer.
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const SerialBlas serial;
  const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  auto out = at::from_blob(c, {a.rows, b.cols}, {ldc, 1}, options);
  if (accumulate) {
    out.addmm_(a.view(), b.view());
  } else {
    at::mm_out(out, a.view(), b.view());
  }
}

// The blocks of gemm(): c in tiles of at most kGemmRows x kGemmCols, one task each, and the depth
// in blocks of kGemmDepth, each summed from zero by BLAS and then added to the tile, so that no
// output is one running total over a long reduction (a 1x1 layer's input gradient sums 256 to
// 2048 products). All fixed by the shape: the same BLAS calls, hence the same sums, at every
// thread count.
constexpr int64_t kGemmRows = 128;
constexpr int64_t kGemmCols = 512;
constexpr int64_t kGemmDepth = 128;
// A GEMM of fewer tiles (DenseNet's 1x1 layers at 7x7: 128 x 992 x 392, one tile) would leave
// threads idle: unless its caller runs it on one thread (`spread` false: one image of a batch
// whose images share out the threads), its tiles are halved, columns first, down to kGemmMinTiles
// tiles or to tiles of kGemmMinTileProducts multiply-adds, whichever comes first. kGemmMinTiles
// serves up to 8 threads and, being a constant, keeps the tiles (and sums) the same at every
// thread count.
constexpr int64_t kGemmMinTiles = 8;
constexpr int64_t kGemmMinTileCols = 64;
constexpr int64_t kGemmMinTileRows = 32;
constexpr int64_t kGemmMinTileProducts = 1 << 20;

struct GemmTiles {
  int64_t rows, cols, row_tiles, col_tiles;

  GemmTiles(int64_t m, int64_t n, int64_t depth, bool spread)
      : rows(std::clamp<int64_t>(m, 1, kGemmRows)), cols(std::clamp<int64_t>(n, 1, kGemmCols)) {
    count(m, n);
    if (m == 0 || n == 0 || !spread) return;
    const int64_t products_per_output = std::max<int64_t>(depth, 1);
    while (row_tiles * col_tiles < kGemmMinTiles &&
           rows * cols * products_per_output >= 2 * kGemmMinTileProducts) {
      if (cols >= 2 * kGemmMinTileCols) {
        cols = round_up(ceil_div(cols, 2), 16);
      } else if (rows >= 2 * kGemmMinTileRows) {
        rows = round_up(ceil_div(rows, 2), 8);
      } else {
        break;
      }
      count(m, n);
    }
    // The same number of tiles, evened out.
    rows = ceil_div(m, row_tiles), cols = ceil_div(n, col_tiles);
  }

 private:
  void count(int64_t m, int64_t n) { row_tiles = ceil_div(m, rows), col_tiles = ceil_div(n, cols); }
};

// A bias gemm() adds to c: values[i] to row i of c (per_row) or to column i.
template <typename T>
struct GemmBias {
  const T* values = nullptr;
  bool per_row = true;
};

// c[rows x cols] (stride ldc) += the bias of its rows or columns.
template <typename T>
void add_bias(T* c, int64_t rows, int64_t cols, int64_t ldc, const T* values, bool per_row) {
  for (int64_t r = 0; r < rows; ++r) {
    T* c_row = c + r * ldc;
    if (per_row) {
      const T v = values[r];
      for (int64_t j = 0; j < cols; ++j) c_row[j] += v;
    } else {
      for (int64_t j = 0; j < cols; ++j) c_row[j] += values[j];
    }
  }
}

// c = a * b (+ bias), or c += a * b when `accumulate` (c is rows(a) x cols(b), row-major with
// stride ldc): the tiles over the threads, each BLAS call on its own thread. The bias is added to
// each tile after its last depth block, while the tile is in cache: a pass of its own over c (or
// c filled with it, then summed into) costs a memory-bound layer a third of its time.
//
// depth_block may be longer than kGemmDepth where the depth is a whole batch's pixels (a weight
// gradient): 128-deep blocks would make thousands of BLAS calls of a few microseconds' work each.
template <typename T>
void gemm(const Matrix<T>& a, const Matrix<T>& b, T* c, int64_t ldc, bool accumulate,
          bool spread = true, GemmBias<T> bias = {}, int64_t depth_block = kGemmDepth) {
  const GemmTiles tiles(a.rows, b.cols, a.cols, spread);
  parallel_for(0, tiles.row_tiles * tiles.col_tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t row = (tile / tiles.col_tiles) * tiles.rows;
      const int64_t col = (tile % tiles.col_tiles) * tiles.cols;
      const int64_t rows = std::min(tiles.rows, a.rows - row);
      const int64_t cols = std::min(tiles.cols, b.cols - col);
      T* c_tile = c + row * ldc + col;
      // (An empty depth still makes one call, which writes the zeros of c = a * b.)
      for (int64_t depth = 0; depth == 0 || depth < a.cols; depth += depth_block) {
        const int64_t part = std::min(depth_block, a.cols - depth);
        serial_gemm(a.block(row, rows, depth, part), b.block(depth, part, col, cols), c_tile, ldc,
                    accumulate || depth > 0);
      }
      if (bias.values != nullptr) {
        add_bias(c_tile, rows, cols, ldc, bias.values + (bias.per_row ? row : col), bias.per_row);
      }
    }
  });
}

}  // namespace fastconv::cpu
