// The 12x16 float GEMM micro-kernel in plain C++, which the compiler vectorizes for the baseline
// ISA: used where AVX2+FMA is missing or switched off, and the reference the vector builds are
// tested against.
#include "ops/cpu/microkernels/f32_gemm.h"

namespace fastconv::cpu {

void f32_gemm_12x16_portable(int64_t rows, int64_t depth, const float* a, int64_t lda,
                             const float* b, float* tile, int64_t ldc, const float* row_start,
                             bool accumulate) {
  float acc[kMR][kNR];
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < kNR; ++j) {
      acc[i][j] = accumulate ? tile[i * ldc + j] : (row_start ? row_start[i] : 0.f);
    }
  }
  for (int64_t k = 0; k < depth; ++k, b += kNR) {
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < kNR; ++j) {
        acc[i][j] += a[i * lda + k] * b[j];
      }
    }
  }
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < kNR; ++j) {
      tile[i * ldc + j] = acc[i][j];
    }
  }
}

}  // namespace fastconv::cpu
