// The 12x32 tile where AVX-512 is missing or switched off: two 12x16 calls, one per panel. AVX2's
// 16 ymm registers hold no wider tile than 6x16 (two of them make its 12x16), so there is nothing
// to gain from a kernel of its own, and the results are the 12x16 builds', bitwise.
#include "ops/cpu/microkernels/f32_gemm.h"

namespace fastconv::cpu {

void f32_gemm_12x32_portable(int64_t rows, int64_t depth, const float* a, int64_t lda,
                             const float* b, int64_t b_panel_stride, float* tile, int64_t ldc,
                             const float* row_start, bool accumulate) {
  f32_gemm_12x16_portable(rows, depth, a, lda, b, tile, ldc, row_start, accumulate);
  f32_gemm_12x16_portable(rows, depth, a, lda, b + b_panel_stride, tile + kNR, ldc, row_start,
                          accumulate);
}

#if FASTCONV_X86
void f32_gemm_12x32_avx2(int64_t rows, int64_t depth, const float* a, int64_t lda, const float* b,
                         int64_t b_panel_stride, float* tile, int64_t ldc, const float* row_start,
                         bool accumulate) {
  f32_gemm_12x16_avx2(rows, depth, a, lda, b, tile, ldc, row_start, accumulate);
  f32_gemm_12x16_avx2(rows, depth, a, lda, b + b_panel_stride, tile + kNR, ldc, row_start,
                      accumulate);
}
#endif

}  // namespace fastconv::cpu
