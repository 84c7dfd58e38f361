// Dot products of whole rows: a tile of up to 3 rows of A against up to 4 rows of B, both read in
// place along the depth (the pointwise weight gradient's grad_output and input planes,
// conv2d/pointwise/). Where both operands run along the depth, packing either into GEMM panels
// would cost a pass over it; here every vector load feeds 3 or 4 FMAs. Builds, one per file:
// f32_dot_3x4_{portable,avx2}.cpp; pick one with FASTCONV_SELECT_ISA(f32_dot_3x4) (isa.h).
//
// Each sum has one order whatever the tile's size: 8 lanes, lane l summing the products at
// d = l, l + 8, ... of the depth's whole octets, one after another; the lanes added pairwise
// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)); then the products of the last depth % 8
// floats, one after another, added to that. The AVX2 build rounds each product and sum once (FMA).
#pragma once

#include <cstdint>

#include "ops/cpu/isa.h"

namespace fastconv::cpu {

constexpr int64_t kDotRowsA = 3;
constexpr int64_t kDotRowsB = 4;

// sums[i * ld_sums + j] += sum over d < depth of a[i * lda + d] * b[j * ldb + d], for i < rows_a
// (1..kDotRowsA) and j < rows_b (1..kDotRowsB). Reads no row past rows_a / rows_b.
using DotKernel = void (*)(int64_t rows_a, int64_t rows_b, int64_t depth, const float* a,
                           int64_t lda, const float* b, int64_t ldb, float* sums, int64_t ld_sums);

void f32_dot_3x4_portable(int64_t rows_a, int64_t rows_b, int64_t depth, const float* a,
                          int64_t lda, const float* b, int64_t ldb, float* sums, int64_t ld_sums);
#if FASTCONV_X86
void f32_dot_3x4_avx2(int64_t rows_a, int64_t rows_b, int64_t depth, const float* a, int64_t lda,
                      const float* b, int64_t ldb, float* sums, int64_t ld_sums);
#endif

}  // namespace fastconv::cpu
