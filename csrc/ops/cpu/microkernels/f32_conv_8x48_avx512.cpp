// The 8x48 direct-convolution micro-kernel for AVX-512F: 8 x 3 zmm accumulators, three input
// vectors and one broadcast weight per output channel, tap and input channel.
#include "ops/cpu/microkernels/f32_conv.h"

namespace fastconv::cpu {

#if FASTCONV_X86
namespace {

template <int kVectors>
FASTCONV_AVX512_INLINE void tile_8xv(const ConvTile& t, const ConvTileStores& stores) {
  constexpr int kRows = static_cast<int>(kConvTileChannels);
  __m512 acc[kRows][kVectors];
  for (int m = 0; m < kRows; ++m) {
    const __m512 start = t.start != nullptr ? _mm512_set1_ps(t.start[m]) : _mm512_setzero_ps();
    for (int j = 0; j < kVectors; ++j) acc[m][j] = start;
  }
  const float* w = t.weights;
  const int64_t* offsets = t.tap_offsets;
  for (int64_t c = 0; c < t.channels; ++c) {
    const float* plane = t.input + c * t.channel_stride;
    for (int64_t tap = 0; tap < t.taps; ++tap, w += kRows) {
      const float* in = plane + offsets[tap];
      __m512 v[kVectors];
      for (int j = 0; j < kVectors; ++j) v[j] = _mm512_loadu_ps(in + j * kConvTileLanes);
      for (int m = 0; m < kRows; ++m) {
        const __m512 wm = _mm512_set1_ps(w[m]);
        for (int j = 0; j < kVectors; ++j) acc[m][j] = _mm512_fmadd_ps(wm, v[j], acc[m][j]);
      }
    }
  }
  for (int m = 0; m < kRows && m < t.rows; ++m) {
    float* out = t.output + m * t.output_channel_stride;
    for (int j = 0; j < kVectors; ++j) {
      for (int64_t r = 0; r < stores.runs[j]; ++r) {
        const auto keep = static_cast<__mmask16>(stores.mask[j][r]);
        float* target = out + stores.offset[j][r];
        const __m512 sum = t.accumulate
            ? _mm512_add_ps(_mm512_maskz_loadu_ps(keep, target), acc[m][j])
            : acc[m][j];
        _mm512_mask_storeu_ps(target, keep, sum);
      }
    }
  }
}

}  // namespace

FASTCONV_AVX512 void f32_conv_8x48_avx512(const ConvTile& tile, const ConvTileStores& stores) {
  switch (stores.vectors) {
    case 3:
      tile_8xv<3>(tile, stores);
      return;
    case 2:
      tile_8xv<2>(tile, stores);
      return;
    default:
      tile_8xv<1>(tile, stores);
      return;
  }
}
#endif

}  // namespace fastconv::cpu
