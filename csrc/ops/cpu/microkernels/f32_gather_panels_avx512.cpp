// The panel gather of f32_gather.h for AVX-512F: two 8-lane gathers (64-bit offsets) per panel,
// the lanes off the mask left zero and never read.
#include "ops/cpu/microkernels/f32_gather.h"

namespace fastconv::cpu {

#if FASTCONV_X86
FASTCONV_AVX512 void f32_gather_panels_avx512(const float* base, const int64_t* offsets,
                                              const uint16_t* masks, const uint8_t* consecutive,
                                              int64_t panels, float* out, int64_t out_stride) {
  for (int64_t p = 0; p < panels; ++p, offsets += kGatherLanes, out += out_stride) {
    if (consecutive[p]) {
      _mm512_store_ps(out, _mm512_loadu_ps(base + offsets[0]));
      continue;
    }
    const __mmask8 low = static_cast<__mmask8>(masks[p]),
                   high = static_cast<__mmask8>(masks[p] >> 8);
    const __m512i low_index = _mm512_loadu_si512(offsets),
                  high_index = _mm512_loadu_si512(offsets + 8);
    _mm256_store_ps(out, _mm512_mask_i64gather_ps(_mm256_setzero_ps(), low, low_index, base, 4));
    _mm256_store_ps(out + 8,
                    _mm512_mask_i64gather_ps(_mm256_setzero_ps(), high, high_index, base, 4));
  }
}
#endif

}  // namespace fastconv::cpu
