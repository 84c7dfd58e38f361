// The 12x16 float GEMM micro-kernel for AVX-512F: one zmm accumulator per row, one B vector and
// one broadcast A value per row and depth step. Tiles of at most 4 or 8 rows (the last panel of a
// matrix whose rows are not a multiple of 12) run a shorter build of the same loop.
#include "ops/cpu/microkernels/f32_gemm.h"

namespace fastconv::cpu {

#if FASTCONV_X86
namespace {

template <int kRows>
FASTCONV_AVX512_INLINE void tile_rows_x16(int64_t depth, const float* a, int64_t lda,
                                          const float* b, float* tile, int64_t ldc,
                                          const float* row_start, bool accumulate) {
  __m512 acc[kRows];
  for (int i = 0; i < kRows; ++i) {
    acc[i] = accumulate
        ? _mm512_loadu_ps(tile + i * ldc)
        : (row_start != nullptr ? _mm512_set1_ps(row_start[i]) : _mm512_setzero_ps());
  }
  for (int64_t k = 0; k < depth; ++k, b += kNR) {
    const __m512 bk = _mm512_load_ps(b);
    for (int i = 0; i < kRows; ++i) {
      acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i * lda + k]), bk, acc[i]);
    }
  }
  for (int i = 0; i < kRows; ++i) _mm512_storeu_ps(tile + i * ldc, acc[i]);
}

}  // namespace

FASTCONV_AVX512 void f32_gemm_12x16_avx512(int64_t rows, int64_t depth, const float* a, int64_t lda,
                                           const float* b, float* tile, int64_t ldc,
                                           const float* row_start, bool accumulate) {
  if (rows > 8) {
    tile_rows_x16<12>(depth, a, lda, b, tile, ldc, row_start, accumulate);
  } else if (rows > 4) {
    tile_rows_x16<8>(depth, a, lda, b, tile, ldc, row_start, accumulate);
  } else {
    tile_rows_x16<4>(depth, a, lda, b, tile, ldc, row_start, accumulate);
  }
}
#endif

}  // namespace fastconv::cpu
