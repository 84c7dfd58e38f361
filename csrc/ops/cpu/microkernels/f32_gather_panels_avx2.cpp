// The panel gather of f32_gather.h for AVX2: four 4-lane gathers (64-bit offsets) per panel, the
// lanes off the mask left zero and never read.
#include "ops/cpu/microkernels/f32_gather.h"

namespace fastconv::cpu {

#if FASTCONV_X86
FASTCONV_AVX2 void f32_gather_panels_avx2(const float* base, const int64_t* offsets,
                                          const uint16_t* masks, const uint8_t* consecutive,
                                          int64_t panels, float* out, int64_t out_stride) {
  const __m128i lane_bits = _mm_setr_epi32(1, 2, 4, 8);
  for (int64_t p = 0; p < panels; ++p, offsets += kGatherLanes, out += out_stride) {
    if (consecutive[p]) {
      const float* in = base + offsets[0];
      _mm256_store_ps(out, _mm256_loadu_ps(in));
      _mm256_store_ps(out + 8, _mm256_loadu_ps(in + 8));
      continue;
    }
    for (int quarter = 0; quarter < 4; ++quarter) {
      const __m128i bits = _mm_set1_epi32(masks[p] >> (4 * quarter) & 0xF);
      const __m128 mask =
          _mm_castsi128_ps(_mm_cmpeq_epi32(_mm_and_si128(bits, lane_bits), lane_bits));
      const __m256i index =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(offsets + 4 * quarter));
      _mm_store_ps(out + 4 * quarter,
                   _mm256_mask_i64gather_ps(_mm_setzero_ps(), base, index, mask, 4));
    }
  }
}
#endif

}  // namespace fastconv::cpu
