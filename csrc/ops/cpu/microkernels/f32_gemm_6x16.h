// The register-blocked inner kernel of the packed float GEMM (../packed_gemm.h): one tile of
// kMR x kNR outputs from kMR rows of A and a packed panel of B. Builds, one per file:
// f32_gemm_6x16_portable.cpp and f32_gemm_6x16_avx2.cpp; pick one with
// FASTCONV_SELECT_ISA(f32_gemm_6x16) (../isa.h).
#pragma once

#include <cstdint>

#include "../isa.h"

namespace fastconv::cpu {

// 6 x 16 keeps 12 AVX2 accumulators plus two B vectors and one broadcast A value in the 16 ymm
// registers, the shape BLIS and oneDNN use on AVX2 machines.
constexpr int64_t kMR = 6;
constexpr int64_t kNR = 16;

// tile[kMR x kNR] (row stride ldc) = start + a * b, where a is kMR x depth, row-major with row
// stride lda (the weights, read in place), and b is a packed panel, depth x kNR (b[k * kNR + j],
// 32-byte aligned); start is the tile itself when `accumulate`, else row_start[i] (e.g. a bias)
// per row, or zero when row_start is null.
using MicroKernel = void (*)(int64_t depth, const float* a, int64_t lda, const float* b,
                             float* tile, int64_t ldc, const float* row_start, bool accumulate);

void f32_gemm_6x16_portable(int64_t depth, const float* a, int64_t lda, const float* b,
                            float* tile, int64_t ldc, const float* row_start, bool accumulate);
#if FASTCONV_X86
void f32_gemm_6x16_avx2(int64_t depth, const float* a, int64_t lda, const float* b, float* tile,
                        int64_t ldc, const float* row_start, bool accumulate);
#endif

} // namespace fastconv::cpu
