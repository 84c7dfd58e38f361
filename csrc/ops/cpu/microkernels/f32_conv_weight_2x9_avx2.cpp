// The 2x9 weight-gradient micro-kernel for AVX2+FMA. Its 16 ymm registers hold the sums of both
// output channels and 3 taps, both 8-lane halves of each (12 sums), so it runs the tile as 3 such
// pieces, each over all the vectors: every lane is summed as the AVX-512 build sums it.
#include "ops/cpu/microkernels/f32_conv.h"

namespace fastconv::cpu {

#if FASTCONV_X86
namespace {

constexpr int kRows = static_cast<int>(kWeightTileChannels);
constexpr int kTaps = static_cast<int>(kWeightTileTaps);
constexpr int kPieceTaps = 3;

// The ymm lanes whose bits are set in `bits` (8 bits), as a float mask.
FASTCONV_AVX2_INLINE __m256 lane_mask(int bits) {
  const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return _mm256_castsi256_ps(
      _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(bits), lane_bits), lane_bits));
}

// Loads of a half vector: with kMasked, the input's lanes outside output pixels cleared (plain
// loads then an AND: vmaskmovps is microcoded on AMD's Zen); grad_output is zero there already.
template <bool kMasked>
FASTCONV_AVX2_INLINE __m256 load_input(const float* p, __m256 keep) {
  return kMasked ? _mm256_and_ps(_mm256_loadu_ps(p), keep) : _mm256_loadu_ps(p);
}

template <bool kMasked>
FASTCONV_AVX2_INLINE void piece_2x3(const ConvWeightTile& t, int tap0) {
  __m256 sums[kRows][kPieceTaps][2];
  int64_t offsets[kPieceTaps];
  for (int tap = 0; tap < kPieceTaps; ++tap) {
    offsets[tap] = t.tap_offsets[tap0 + tap];
    for (int r = 0; r < kRows; ++r) {
      for (int h = 0; h < 2; ++h) {
        sums[r][tap][h] =
            _mm256_loadu_ps(t.sums + (r * kTaps + tap0 + tap) * kConvTileLanes + 8 * h);
      }
    }
  }
  // Images and vectors as one loop (as the AVX-512 build, which found gcc storing the sums
  // between images otherwise).
  const float* gy_image = t.grad_output;
  const float* in_image = t.input;
  int64_t v = 0;
  for (int64_t step = 0; step < t.images * t.vectors; ++step) {
    const float* gy = gy_image + v * kConvTileLanes;
    const float* in = in_image + v * kConvTileLanes;
    const int lanes = t.lanes[v];
    for (int h = 0; h < 2; ++h) {
      const __m256 keep = kMasked ? lane_mask(lanes >> (8 * h) & 0xff) : __m256();
      const __m256 g0 = _mm256_loadu_ps(gy + 8 * h);
      const __m256 g1 = _mm256_loadu_ps(gy + t.grad_output_stride + 8 * h);
      for (int tap = 0; tap < kPieceTaps; ++tap) {
        const __m256 x = load_input<kMasked>(in + offsets[tap] + 8 * h, keep);
        sums[0][tap][h] = _mm256_fmadd_ps(g0, x, sums[0][tap][h]);
        sums[1][tap][h] = _mm256_fmadd_ps(g1, x, sums[1][tap][h]);
      }
    }
    if (++v == t.vectors) {
      v = 0;
      gy_image += t.grad_output_image_stride;
      in_image += t.input_image_stride;
    }
  }
  for (int tap = 0; tap < kPieceTaps; ++tap) {
    for (int r = 0; r < kRows; ++r) {
      for (int h = 0; h < 2; ++h) {
        _mm256_storeu_ps(t.sums + (r * kTaps + tap0 + tap) * kConvTileLanes + 8 * h,
                         sums[r][tap][h]);
      }
    }
  }
}

}  // namespace

FASTCONV_AVX2 void f32_conv_weight_2x9_avx2(const ConvWeightTile& t) {
  for (int tap0 = 0; tap0 < kTaps; tap0 += kPieceTaps) {
    if (t.finite_input) {
      piece_2x3<false>(t, tap0);
    } else {
      piece_2x3<true>(t, tap0);
    }
  }
}
#endif

}  // namespace fastconv::cpu
