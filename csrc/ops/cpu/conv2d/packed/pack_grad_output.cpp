// grad_output packed into the packed GEMM's B panels (packed_gemm.h), for the weight gradients of
// the packed and Winograd paths.
#include <algorithm>

#include "ops/cpu/conv2d/packed/packed_gemm.h"
#include "ops/cpu/parallel.h"

namespace fastconv::cpu {

// grad_output as packed-B panels of 16 output channels, per group, over the pixels of the whole
// batch (image after image, so that a depth block may span images): panel q of a group holds
// b(n * P + p, j) = gy[n][group * K + 16 q + j][p] at (n * P + p) * 16 + j, zero past K.
void pack_grad_output(const Conv2dGeometry& g, const float* gy, int64_t k_padded, float* packed) {
  const int64_t P = g.out_plane(), K = g.out_channels_per_group();
  const int64_t panels = k_padded / kNR;
  parallel_for(0, g.batch * g.groups * panels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end; ++index) {
      const int64_t n = index % g.batch, group_panel = index / g.batch;
      const int64_t group = group_panel / panels, panel = group_panel % panels;
      const int64_t k0 = panel * kNR, lanes = std::min(kNR, K - k0);
      const float* rows = gy + (n * g.out_channels + group * K + k0) * P;
      float* out = packed + index * P * kNR;
      for (int64_t p0 = 0; p0 < P; p0 += kNR) {  // 16 x 16 blocks, read row-wise
        const int64_t pixels = std::min(kNR, P - p0);
        alignas(64) float block[kNR][kNR] = {};
        for (int64_t j = 0; j < lanes; ++j) {
          std::copy_n(rows + j * P + p0, pixels, block[j]);
        }
        for (int64_t p = 0; p < pixels; ++p) {
          for (int64_t j = 0; j < kNR; ++j) out[(p0 + p) * kNR + j] = block[j][p];
        }
      }
    }
  });
}

}  // namespace fastconv::cpu
