// The register-blocked inner kernel of the packed float GEMM (../packed_gemm.h): one tile of up to
// kMR x kNR outputs from kMR rows of A and a packed panel of B. Builds, one per file:
// f32_gemm_12x16_portable.cpp, f32_gemm_12x16_avx2.cpp and f32_gemm_12x16_avx512.cpp; pick one
// with FASTCONV_SELECT_ISA_AVX512(f32_gemm_12x16) (../isa.h).
//
// All builds add every output's products in the same order, one k after another, each with one
// rounding (an FMA) in the AVX2 and AVX-512 builds: those two give bitwise the same results.
#pragma once

#include <cstdint>

#include "../isa.h"

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

void f32_gemm_12x16_portable(int64_t rows, int64_t depth, const float* a, int64_t lda,
                             const float* b, float* tile, int64_t ldc, const float* row_start,
                             bool accumulate);
#if FASTCONV_X86
void f32_gemm_12x16_avx2(int64_t rows, int64_t depth, const float* a, int64_t lda,
                         const float* b, float* tile, int64_t ldc, const float* row_start,
                         bool accumulate);
void f32_gemm_12x16_avx512(int64_t rows, int64_t depth, const float* a, int64_t lda,
                           const float* b, float* tile, int64_t ldc, const float* row_start,
                           bool accumulate);
#endif

} // namespace fastconv::cpu
