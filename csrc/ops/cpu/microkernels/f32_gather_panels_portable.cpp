// The panel gather of f32_gather.h in plain C++: where AVX2 is missing or switched off.
#include "ops/cpu/microkernels/f32_gather.h"

#include <cstring>

namespace fastconv::cpu {

void f32_gather_panels_portable(const float* base, const int64_t* offsets, const uint16_t* masks,
                                const uint8_t* consecutive, int64_t panels, float* out,
                                int64_t out_stride) {
  for (int64_t p = 0; p < panels; ++p, offsets += kGatherLanes, out += out_stride) {
    if (consecutive[p]) {
      std::memcpy(out, base + offsets[0], kGatherLanes * sizeof(float));
      continue;
    }
    for (int64_t j = 0; j < kGatherLanes; ++j) {
      out[j] = (masks[p] >> j & 1) != 0 ? base[offsets[j]] : 0.f;
    }
  }
}

}  // namespace fastconv::cpu
