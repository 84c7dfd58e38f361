// The 2x9 weight-gradient micro-kernel in plain C++, which the compiler vectorizes for the
// baseline ISA: used where AVX2+FMA is missing or switched off.
#include "ops/cpu/microkernels/f32_conv.h"

namespace fastconv::cpu {

void f32_conv_weight_2x9_portable(const ConvWeightTile& t) {
  for (int64_t r = 0; r < kWeightTileChannels; ++r) {
    for (int64_t tap = 0; tap < kWeightTileTaps; ++tap) {
      float* sums = t.sums + (r * kWeightTileTaps + tap) * kConvTileLanes;
      for (int64_t n = 0; n < t.images; ++n) {
        const float* gy = t.grad_output + n * t.grad_output_image_stride + r * t.grad_output_stride;
        const float* in = t.input + n * t.input_image_stride + t.tap_offsets[tap];
        for (int64_t v = 0; v < t.vectors; ++v) {
          for (int64_t l = 0; l < kConvTileLanes; ++l) {
            if (t.lanes[v] >> l & 1u) {
              sums[l] += gy[v * kConvTileLanes + l] * in[v * kConvTileLanes + l];
            }
          }
        }
      }
    }
  }
}

}  // namespace fastconv::cpu
