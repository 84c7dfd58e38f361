// The register-blocked inner kernel of the packed float GEMM (packed_gemm.h): one tile of
// kMR x kNR outputs from a packed panel of A and a packed panel of B.
#pragma once

#include <cstdint>

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

// The AVX2+FMA kernel where cpu_uses_avx2(), else the portable one.
MicroKernel select_microkernel();

} // namespace fastconv::cpu
