// The 8x48 direct-convolution micro-kernel in plain C++, which the compiler vectorizes for the
// baseline ISA: used where AVX2+FMA is missing or switched off.
#include "ops/cpu/microkernels/f32_conv.h"

namespace fastconv::cpu {

void f32_conv_8x48_portable(const ConvTile& t, const ConvTileStores& stores) {
  constexpr int64_t kPixels = kConvTileVectors * kConvTileLanes;
  const int64_t pixels = stores.vectors * kConvTileLanes;
  float acc[kConvTileChannels][kPixels];
  for (int64_t m = 0; m < kConvTileChannels; ++m) {
    for (int64_t p = 0; p < pixels; ++p) acc[m][p] = t.start != nullptr ? t.start[m] : 0.f;
  }
  const float* w = t.weights;
  for (int64_t c = 0; c < t.channels; ++c) {
    for (int64_t tap = 0; tap < t.taps; ++tap, w += kConvTileChannels) {
      const float* in = t.input + c * t.channel_stride + t.tap_offsets[tap];
      for (int64_t m = 0; m < kConvTileChannels; ++m) {
        for (int64_t p = 0; p < pixels; ++p) acc[m][p] += w[m] * in[p];
      }
    }
  }
  for (int64_t m = 0; m < t.rows; ++m) {
    float* out = t.output + m * t.output_channel_stride;
    for (int64_t j = 0; j < stores.vectors; ++j) {
      for (int64_t r = 0; r < stores.runs[j]; ++r) {
        for (int64_t l = 0; l < kConvTileLanes; ++l) {
          if (stores.mask[j][r] >> l & 1u) {
            const float sum = acc[m][j * kConvTileLanes + l];
            float& stored = out[stores.offset[j][r] + l];
            stored = t.accumulate ? stored + sum : sum;
          }
        }
      }
    }
  }
}

}  // namespace fastconv::cpu
