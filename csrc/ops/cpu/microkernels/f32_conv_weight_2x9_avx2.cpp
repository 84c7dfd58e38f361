// The 2x9 weight-gradient micro-kernel for AVX2+FMA. Its 16 ymm registers hold the sums of one
// output channel and 3 taps, both 8-lane halves of each (6 sums), so it runs the tile as 6 such
// pieces, each over all the vectors: every lane is summed as the AVX-512 build sums it.
#include "ops/cpu/microkernels/f32_conv.h"

namespace fastconv::cpu {

#if FASTCONV_X86
namespace {

constexpr int kTaps = static_cast<int>(kWeightTileTaps);
constexpr int kPieceTaps = 3;

// The ymm lanes whose bits are set in `bits` (8 bits).
FASTCONV_AVX2_INLINE __m256i lane_mask(int bits) {
  const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(bits), lane_bits), lane_bits);
}

FASTCONV_AVX2_INLINE void piece_1x3(const ConvWeightTile& t, int row, int tap0) {
  float* sums = t.sums + (row * kTaps + tap0) * kConvTileLanes;
  __m256 lo[kPieceTaps], hi[kPieceTaps];
  int64_t offsets[kPieceTaps];
  for (int tap = 0; tap < kPieceTaps; ++tap) {
    lo[tap] = _mm256_loadu_ps(sums + tap * kConvTileLanes);
    hi[tap] = _mm256_loadu_ps(sums + tap * kConvTileLanes + 8);
    offsets[tap] = t.tap_offsets[tap0 + tap];
  }
  for (int64_t n = 0; n < t.images; ++n) {
    const float* gy = t.grad_output + n * t.grad_output_image_stride + row * t.grad_output_stride;
    const float* in = t.input + n * t.input_image_stride;
    for (int64_t v = 0; v < t.vectors; ++v, gy += kConvTileLanes, in += kConvTileLanes) {
      const int lanes = t.lanes[v];
      const __m256i keep_lo = lane_mask(lanes & 0xff), keep_hi = lane_mask(lanes >> 8);
      const __m256 g_lo = _mm256_maskload_ps(gy, keep_lo);
      const __m256 g_hi = _mm256_maskload_ps(gy + 8, keep_hi);
      for (int tap = 0; tap < kPieceTaps; ++tap) {
        const __m256 x_lo = _mm256_maskload_ps(in + offsets[tap], keep_lo);
        const __m256 x_hi = _mm256_maskload_ps(in + offsets[tap] + 8, keep_hi);
        lo[tap] = _mm256_fmadd_ps(g_lo, x_lo, lo[tap]);
        hi[tap] = _mm256_fmadd_ps(g_hi, x_hi, hi[tap]);
      }
    }
  }
  for (int tap = 0; tap < kPieceTaps; ++tap) {
    _mm256_storeu_ps(sums + tap * kConvTileLanes, lo[tap]);
    _mm256_storeu_ps(sums + tap * kConvTileLanes + 8, hi[tap]);
  }
}

}  // namespace

FASTCONV_AVX2 void f32_conv_weight_2x9_avx2(const ConvWeightTile& t) {
  for (int row = 0; row < kWeightTileChannels; ++row) {
    for (int tap0 = 0; tap0 < kTaps; tap0 += kPieceTaps) piece_1x3(t, row, tap0);
  }
}
#endif

}  // namespace fastconv::cpu
