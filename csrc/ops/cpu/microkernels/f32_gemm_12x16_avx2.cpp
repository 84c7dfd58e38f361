// The 12x16 float GEMM micro-kernel for AVX2+FMA, as two 6x16 halves: 12 accumulators, two B
// vectors and one broadcast A value fill the 16 ymm registers, one FMA per accumulator and depth
// step. A tile of at most 6 rows computes one half only.
#include "ops/cpu/microkernels/f32_gemm.h"

namespace fastconv::cpu {

#if FASTCONV_X86
namespace {

FASTCONV_AVX2_INLINE void tile_6x16(int64_t depth, const float* a, int64_t lda, const float* b,
                                    float* tile, int64_t ldc, const float* row_start,
                                    bool accumulate) {
  __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
  if (accumulate) {
    c00 = _mm256_loadu_ps(tile + 0 * ldc), c01 = _mm256_loadu_ps(tile + 0 * ldc + 8);
    c10 = _mm256_loadu_ps(tile + 1 * ldc), c11 = _mm256_loadu_ps(tile + 1 * ldc + 8);
    c20 = _mm256_loadu_ps(tile + 2 * ldc), c21 = _mm256_loadu_ps(tile + 2 * ldc + 8);
    c30 = _mm256_loadu_ps(tile + 3 * ldc), c31 = _mm256_loadu_ps(tile + 3 * ldc + 8);
    c40 = _mm256_loadu_ps(tile + 4 * ldc), c41 = _mm256_loadu_ps(tile + 4 * ldc + 8);
    c50 = _mm256_loadu_ps(tile + 5 * ldc), c51 = _mm256_loadu_ps(tile + 5 * ldc + 8);
  } else if (row_start != nullptr) {
    c00 = c01 = _mm256_set1_ps(row_start[0]);
    c10 = c11 = _mm256_set1_ps(row_start[1]);
    c20 = c21 = _mm256_set1_ps(row_start[2]);
    c30 = c31 = _mm256_set1_ps(row_start[3]);
    c40 = c41 = _mm256_set1_ps(row_start[4]);
    c50 = c51 = _mm256_set1_ps(row_start[5]);
  } else {
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
  }
  // One pointer per row of a, so that every broadcast is a plain load.
  const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda, *a4 = a + 4 * lda,
              *a5 = a + 5 * lda;
  for (int64_t k = 0; k < depth; ++k, b += kNR) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 ai = _mm256_broadcast_ss(a0 + k);
    c00 = _mm256_fmadd_ps(ai, b0, c00), c01 = _mm256_fmadd_ps(ai, b1, c01);
    ai = _mm256_broadcast_ss(a1 + k);
    c10 = _mm256_fmadd_ps(ai, b0, c10), c11 = _mm256_fmadd_ps(ai, b1, c11);
    ai = _mm256_broadcast_ss(a2 + k);
    c20 = _mm256_fmadd_ps(ai, b0, c20), c21 = _mm256_fmadd_ps(ai, b1, c21);
    ai = _mm256_broadcast_ss(a3 + k);
    c30 = _mm256_fmadd_ps(ai, b0, c30), c31 = _mm256_fmadd_ps(ai, b1, c31);
    ai = _mm256_broadcast_ss(a4 + k);
    c40 = _mm256_fmadd_ps(ai, b0, c40), c41 = _mm256_fmadd_ps(ai, b1, c41);
    ai = _mm256_broadcast_ss(a5 + k);
    c50 = _mm256_fmadd_ps(ai, b0, c50), c51 = _mm256_fmadd_ps(ai, b1, c51);
  }
  _mm256_storeu_ps(tile + 0 * ldc, c00), _mm256_storeu_ps(tile + 0 * ldc + 8, c01);
  _mm256_storeu_ps(tile + 1 * ldc, c10), _mm256_storeu_ps(tile + 1 * ldc + 8, c11);
  _mm256_storeu_ps(tile + 2 * ldc, c20), _mm256_storeu_ps(tile + 2 * ldc + 8, c21);
  _mm256_storeu_ps(tile + 3 * ldc, c30), _mm256_storeu_ps(tile + 3 * ldc + 8, c31);
  _mm256_storeu_ps(tile + 4 * ldc, c40), _mm256_storeu_ps(tile + 4 * ldc + 8, c41);
  _mm256_storeu_ps(tile + 5 * ldc, c50), _mm256_storeu_ps(tile + 5 * ldc + 8, c51);
}

}  // namespace

FASTCONV_AVX2 void f32_gemm_12x16_avx2(int64_t rows, int64_t depth, const float* a, int64_t lda,
                                       const float* b, float* tile, int64_t ldc,
                                       const float* row_start, bool accumulate) {
  tile_6x16(depth, a, lda, b, tile, ldc, row_start, accumulate);
  if (rows > 6) {
    tile_6x16(depth, a + 6 * lda, lda, b, tile + 6 * ldc, ldc,
              row_start != nullptr ? row_start + 6 : nullptr, accumulate);
  }
}
#endif

}  // namespace fastconv::cpu
