// The row dot-product kernel without vector intrinsics (f32_dot.h), in the same order as the
// vector builds, with separate roundings for products and sums.
#include "ops/cpu/microkernels/f32_dot.h"

namespace fastconv::cpu {

void f32_dot_3x4_portable(int64_t rows_a, int64_t rows_b, int64_t depth, const float* a,
                          int64_t lda, const float* b, int64_t ldb, float* sums, int64_t ld_sums) {
  const int64_t octets = depth / 8 * 8;
  for (int64_t i = 0; i < rows_a; ++i) {
    for (int64_t j = 0; j < rows_b; ++j) {
      const float* x = a + i * lda;
      const float* y = b + j * ldb;
      float lane[8] = {};
      for (int64_t d = 0; d < octets; d += 8) {
        for (int l = 0; l < 8; ++l) lane[l] += x[d + l] * y[d + l];
      }
      float sum =
          ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
      for (int64_t d = octets; d < depth; ++d) sum += x[d] * y[d];
      sums[i * ld_sums + j] += sum;
    }
  }
}

}  // namespace fastconv::cpu
