// The 2x9 weight-gradient micro-kernel for AVX-512F: 18 zmm sums, two grad_output vectors and
// one input vector per tap and 16 pixels (with three output channels, 27 sums, gcc spills sums to
// the stack inside the loop).
#include "ops/cpu/microkernels/f32_conv.h"

namespace fastconv::cpu {

#if FASTCONV_X86
FASTCONV_AVX512 void f32_conv_weight_2x9_avx512(const ConvWeightTile& t) {
  constexpr int kRows = static_cast<int>(kWeightTileChannels);
  constexpr int kTaps = static_cast<int>(kWeightTileTaps);
  __m512 sums[kRows][kTaps];
  for (int r = 0; r < kRows; ++r) {
    for (int tap = 0; tap < kTaps; ++tap) {
      sums[r][tap] = _mm512_loadu_ps(t.sums + (r * kTaps + tap) * kConvTileLanes);
    }
  }
  int64_t offsets[kTaps];
  for (int tap = 0; tap < kTaps; ++tap) offsets[tap] = t.tap_offsets[tap];
  // Images and vectors as one loop, stepping to the next image's rows where an image ends: with
  // a loop per image, gcc kept the sums on the stack between images (ResNeXt's 14x14 planes
  // are 14 vectors each) and stored and reloaded them every image.
  const float* gy_image = t.grad_output;
  const float* in_image = t.input;
  int64_t v = 0;
  for (int64_t step = 0; step < t.images * t.vectors; ++step) {
    const float* gy = gy_image + v * kConvTileLanes;
    const float* in = in_image + v * kConvTileLanes;
    const __mmask16 lanes = t.lanes[v];
    __m512 g[kRows];
    for (int r = 0; r < kRows; ++r) {
      g[r] = _mm512_maskz_loadu_ps(lanes, gy + r * t.grad_output_stride);
    }
    for (int tap = 0; tap < kTaps; ++tap) {
      __m512 x = _mm512_maskz_loadu_ps(lanes, in + offsets[tap]);
      // One load per tap: folded into each of the three FMAs instead (as gcc does with 31
      // registers live), the unaligned loads split across cache lines and bound the loop.
      asm("" : "+v"(x));
      for (int r = 0; r < kRows; ++r) sums[r][tap] = _mm512_fmadd_ps(g[r], x, sums[r][tap]);
    }
    if (++v == t.vectors) {
      v = 0;
      gy_image += t.grad_output_image_stride;
      in_image += t.input_image_stride;
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int tap = 0; tap < kTaps; ++tap) {
      _mm512_storeu_ps(t.sums + (r * kTaps + tap) * kConvTileLanes, sums[r][tap]);
    }
  }
}
#endif

}  // namespace fastconv::cpu
