// The 12x32 float GEMM micro-kernel for AVX-512F: two zmm accumulators per row, two B vectors (one
// from each panel) and one broadcast A value per row and depth step, shared by both FMAs. Tiles of
// at most 4 or 8 rows run a shorter build of the same loop.
#include "ops/cpu/microkernels/f32_gemm.h"

namespace fastconv::cpu {

#if FASTCONV_X86
namespace {

template <int kRows>
FASTCONV_AVX512_INLINE void tile_rows_x32(int64_t depth, const float* a, int64_t lda,
                                          const float* b0, const float* b1, float* tile,
                                          int64_t ldc, const float* row_start, bool accumulate) {
  __m512 left[kRows], right[kRows];
  for (int i = 0; i < kRows; ++i) {
    if (accumulate) {
      left[i] = _mm512_loadu_ps(tile + i * ldc);
      right[i] = _mm512_loadu_ps(tile + i * ldc + kNR);
    } else {
      left[i] = right[i] =
          row_start != nullptr ? _mm512_set1_ps(row_start[i]) : _mm512_setzero_ps();
    }
  }
  for (int64_t k = 0; k < depth; ++k, b0 += kNR, b1 += kNR) {
    const __m512 b0k = _mm512_load_ps(b0), b1k = _mm512_load_ps(b1);
    for (int i = 0; i < kRows; ++i) {
      const __m512 aik = _mm512_set1_ps(a[i * lda + k]);
      left[i] = _mm512_fmadd_ps(aik, b0k, left[i]);
      right[i] = _mm512_fmadd_ps(aik, b1k, right[i]);
    }
  }
  for (int i = 0; i < kRows; ++i) {
    _mm512_storeu_ps(tile + i * ldc, left[i]);
    _mm512_storeu_ps(tile + i * ldc + kNR, right[i]);
  }
}

}  // namespace

FASTCONV_AVX512 void f32_gemm_12x32_avx512(int64_t rows, int64_t depth, const float* a, int64_t lda,
                                           const float* b, int64_t b_panel_stride, float* tile,
                                           int64_t ldc, const float* row_start, bool accumulate) {
  const float* b1 = b + b_panel_stride;
  if (rows > 8) {
    tile_rows_x32<12>(depth, a, lda, b, b1, tile, ldc, row_start, accumulate);
  } else if (rows > 4) {
    tile_rows_x32<8>(depth, a, lda, b, b1, tile, ldc, row_start, accumulate);
  } else {
    tile_rows_x32<4>(depth, a, lda, b, b1, tile, ldc, row_start, accumulate);
  }
}
#endif

}  // namespace fastconv::cpu
