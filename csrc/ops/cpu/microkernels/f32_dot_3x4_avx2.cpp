// The row dot-product kernel (f32_dot.h) for AVX2+FMA: 3 x 4 ymm accumulators, the 4 B vectors of
// a depth octet and one A vector fill the 16 registers; 7 loads per 12 FMAs.
#include "ops/cpu/microkernels/f32_dot.h"

#include <cmath>

namespace fastconv::cpu {

#if FASTCONV_X86
namespace {

// The lanes of four accumulators summed pairwise as f32_dot.h orders them: element j of the
// result is accumulator j's ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
FASTCONV_AVX2_INLINE __m128 lane_sums(__m256 s0, __m256 s1, __m256 s2, __m256 s3) {
  // hadd(s0, s1) = [s0 l0+l1, s0 l2+l3, s1 l0+l1, s1 l2+l3 | the same of lanes 4..7].
  const __m256 pairs = _mm256_hadd_ps(_mm256_hadd_ps(s0, s1), _mm256_hadd_ps(s2, s3));
  return _mm_add_ps(_mm256_castps256_ps128(pairs), _mm256_extractf128_ps(pairs, 1));
}

template <int RowsA, int RowsB>
FASTCONV_AVX2_INLINE void dot_tile(int64_t depth, const float* a, int64_t lda, const float* b,
                                   int64_t ldb, float* sums, int64_t ld_sums) {
  __m256 acc[RowsA][4];
  for (int i = 0; i < RowsA; ++i) {
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm256_setzero_ps();
  }
  const int64_t octets = depth / 8 * 8;
  for (int64_t d = 0; d < octets; d += 8) {
    __m256 bv[RowsB];
    for (int j = 0; j < RowsB; ++j) bv[j] = _mm256_loadu_ps(b + j * ldb + d);
    for (int i = 0; i < RowsA; ++i) {
      const __m256 av = _mm256_loadu_ps(a + i * lda + d);
      for (int j = 0; j < RowsB; ++j) acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < RowsA; ++i) {
    alignas(16) float row[4];
    _mm_store_ps(row, lane_sums(acc[i][0], acc[i][1], acc[i][2], acc[i][3]));
    for (int j = 0; j < RowsB; ++j) {
      const float* x = a + i * lda;
      const float* y = b + j * ldb;
      float sum = row[j];
      for (int64_t d = octets; d < depth; ++d) sum = std::fma(x[d], y[d], sum);
      sums[i * ld_sums + j] += sum;
    }
  }
}

template <int RowsA>
FASTCONV_AVX2_INLINE void dot_rows(int64_t rows_b, int64_t depth, const float* a, int64_t lda,
                                   const float* b, int64_t ldb, float* sums, int64_t ld_sums) {
  switch (rows_b) {
    case 4:
      return dot_tile<RowsA, 4>(depth, a, lda, b, ldb, sums, ld_sums);
    case 3:
      return dot_tile<RowsA, 3>(depth, a, lda, b, ldb, sums, ld_sums);
    case 2:
      return dot_tile<RowsA, 2>(depth, a, lda, b, ldb, sums, ld_sums);
    default:
      return dot_tile<RowsA, 1>(depth, a, lda, b, ldb, sums, ld_sums);
  }
}

}  // namespace

FASTCONV_AVX2 void f32_dot_3x4_avx2(int64_t rows_a, int64_t rows_b, int64_t depth, const float* a,
                                    int64_t lda, const float* b, int64_t ldb, float* sums,
                                    int64_t ld_sums) {
  switch (rows_a) {
    case 3:
      return dot_rows<3>(rows_b, depth, a, lda, b, ldb, sums, ld_sums);
    case 2:
      return dot_rows<2>(rows_b, depth, a, lda, b, ldb, sums, ld_sums);
    default:
      return dot_rows<1>(rows_b, depth, a, lda, b, ldb, sums, ld_sums);
  }
}
#endif

}  // namespace fastconv::cpu
