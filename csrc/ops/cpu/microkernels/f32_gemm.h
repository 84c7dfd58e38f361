// The register-blocked inner kernels of the packed float GEMM (conv2d/packed/packed_gemm.h): a tile
// of up to kMR rows from kMR rows of A and one packed panel of B (12x16), or two panels at once
// (12x32). Builds, one per file, named by tile and ISA: f32_gemm_12x16_{portable,avx2,avx512}.cpp,
// f32_gemm_12x32_avx512.cpp, and f32_gemm_12x32_from_12x16.cpp (the other ISAs' 12x32, two
// 12x16 calls); pick one with FASTCONV_SELECT_ISA_AVX512(f32_gemm_12x16) or (f32_gemm_12x32)
// (isa.h).
//
// All builds add every output's products in the same order, one k after another, each with one
// rounding (an FMA) in the AVX2 and AVX-512 builds: those give bitwise the same results, whichever
// tile width computed them.
#pragma once

#include <cstdint>

#include "ops/cpu/isa.h"

namespace fastconv::cpu {

// 12 x 16 is one 16-float zmm accumulator per row: 12 of the 32 zmm registers, enough independent
// FMAs to cover their latency on two FMA units. AVX2 computes it as two 6 x 16 halves (12 ymm
// accumulators each, the shape BLIS and oneDNN use on AVX2), so the panels are the same for all.
constexpr int64_t kMR = 12;
constexpr int64_t kNR = 16;

// tile[rows x kNR] (row stride ldc) = start + a * b, where a is kMR x depth, row-major with row
// stride lda (the weights, read in place), and b is a packed panel, depth x kNR (b[k * kNR + j],
// 64-byte aligned); start is the tile itself when `accumulate`, else row_start[i] (e.g. a bias)
// per row, or zero when row_start is null. rows (1..kMR) is how many rows the caller keeps: a
// build may skip the rest or compute them too, so the tile, a and row_start must have kMR rows.
using MicroKernel = void (*)(int64_t rows, int64_t depth, const float* a, int64_t lda,
                             const float* b, float* tile, int64_t ldc, const float* row_start,
                             bool accumulate);

// tile[rows x 2 kNR] = start + a * [b0 | b1], b0 = b and b1 = b + b_panel_stride two packed
// panels, otherwise as MicroKernel. With 24 zmm accumulators each broadcast A value feeds two
// FMAs: 14 loads per 24 FMAs instead of 13 per 12.
using WideMicroKernel = void (*)(int64_t rows, int64_t depth, const float* a, int64_t lda,
                                 const float* b, int64_t b_panel_stride, float* tile, int64_t ldc,
                                 const float* row_start, bool accumulate);

void f32_gemm_12x16_portable(int64_t rows, int64_t depth, const float* a, int64_t lda,
                             const float* b, float* tile, int64_t ldc, const float* row_start,
                             bool accumulate);
void f32_gemm_12x32_portable(int64_t rows, int64_t depth, const float* a, int64_t lda,
                             const float* b, int64_t b_panel_stride, float* tile, int64_t ldc,
                             const float* row_start, bool accumulate);
#if FASTCONV_X86
void f32_gemm_12x16_avx2(int64_t rows, int64_t depth, const float* a, int64_t lda, const float* b,
                         float* tile, int64_t ldc, const float* row_start, bool accumulate);
void f32_gemm_12x16_avx512(int64_t rows, int64_t depth, const float* a, int64_t lda, const float* b,
                           float* tile, int64_t ldc, const float* row_start, bool accumulate);
void f32_gemm_12x32_avx2(int64_t rows, int64_t depth, const float* a, int64_t lda, const float* b,
                         int64_t b_panel_stride, float* tile, int64_t ldc, const float* row_start,
                         bool accumulate);
void f32_gemm_12x32_avx512(int64_t rows, int64_t depth, const float* a, int64_t lda, const float* b,
                           int64_t b_panel_stride, float* tile, int64_t ldc, const float* row_start,
                           bool accumulate);
#endif

// This CPU's builds of both tiles.
struct GemmKernels {
  MicroKernel tile_12x16;
  WideMicroKernel tile_12x32;

  // The 12x32 tile where two panels remain (`two_panels`), else the 12x16 tile of the one at b:
  // callers walk their panels two at a time, the last alone when their count is odd.
  void run(bool two_panels, int64_t rows, int64_t depth, const float* a, int64_t lda,
           const float* b, int64_t b_panel_stride, float* tile, int64_t ldc, const float* row_start,
           bool accumulate) const {
    if (two_panels) {
      tile_12x32(rows, depth, a, lda, b, b_panel_stride, tile, ldc, row_start, accumulate);
    } else {
      tile_12x16(rows, depth, a, lda, b, tile, ldc, row_start, accumulate);
    }
  }
};

inline GemmKernels select_gemm_kernels() {
  return {FASTCONV_SELECT_ISA_AVX512(f32_gemm_12x16), FASTCONV_SELECT_ISA_AVX512(f32_gemm_12x32)};
}

}  // namespace fastconv::cpu
