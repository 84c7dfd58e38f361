// The depthwise kernels' inner loops (depthwise.cpp, depthwise_input_backward.cpp): stencils of up
// to kMaxDepthwiseTaps taps and dot products, plain loops that the compiler vectorises in the
// portable and AVX2 builds of their callers (always inlined into both).
#pragma once

#include <cstdint>

#include "ops/cpu/common.h"

namespace fastconv::cpu {

constexpr int64_t kMaxDepthwiseTaps = 64;

// The sum over i < length of a[i] * b[i * stride], in 16 fixed lanes (a sum the compiler can
// vectorize, in the same order on every run). With `keep`, only the terms where keep[i] != 0:
// a dropped term adds +0 even where b[i] is inf or NaN (0 x inf would be NaN), and for finite
// values the sums are bitwise those without it (the lanes start at +0, so adding 0 changes none).
template <int kStride>
FASTCONV_ALWAYS_INLINE float dot(const float* __restrict a, const float* __restrict b,
                                 int64_t length, int64_t stride,
                                 const float* __restrict keep = nullptr) {
  const int64_t s = kStride != 0 ? kStride : stride;
  float lanes[16] = {};
  int64_t i = 0;
  if (keep != nullptr) {
    for (; i + 16 <= length; i += 16) {
      for (int64_t l = 0; l < 16; ++l) {
        const float term = a[i + l] * b[(i + l) * s];
        lanes[l] += keep[i + l] != 0.f ? term : 0.f;
      }
    }
    for (; i < length; ++i) lanes[0] += keep[i] != 0.f ? a[i] * b[i * s] : 0.f;
  } else {
    for (; i + 16 <= length; i += 16) {
      for (int64_t l = 0; l < 16; ++l) lanes[l] += a[i + l] * b[(i + l) * s];
    }
    for (; i < length; ++i) lanes[0] += a[i] * b[i * s];
  }
  float sum = 0.f;
  for (float lane : lanes) sum += lane;
  return sum;
}

// A stencil over a zero-padded input plane: out[i] = start + sum over taps t, in order, of
// weights[t] * in[i * stride + offsets[t]], for i < length. Every tap is inside the padded plane,
// so there are no bounds checks: outputs are summed 16 (or 8) at a time in registers, the last
// group overlapping the one before rather than falling back to one at a time. kStride is the
// stride when it is 1 or 2, so that the compiler vectorizes the loads, or 0 for any stride.
struct Taps {
  float weights[kMaxDepthwiseTaps];
  int64_t offsets[kMaxDepthwiseTaps];
  int64_t count;
};

template <int kStride, int kLanes>
FASTCONV_ALWAYS_INLINE void stencil_lanes(const Taps& taps, float start, int64_t stride,
                                          const float* in, float* out, int64_t i) {
  const int64_t s = kStride != 0 ? kStride : stride;
  float acc[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) acc[l] = start;
  for (int64_t t = 0; t < taps.count; ++t) {
    const float weight = taps.weights[t];
    const float* tap = in + i * s + taps.offsets[t];
    for (int64_t l = 0; l < kLanes; ++l) acc[l] += weight * tap[l * s];
  }
  for (int64_t l = 0; l < kLanes; ++l) out[i + l] = acc[l];
}

template <int kStride, int kLanes>
FASTCONV_ALWAYS_INLINE void stencil_groups(const Taps& taps, float start, int64_t stride,
                                           const float* in, float* out, int64_t length) {
  int64_t i = 0;
  for (; i + kLanes <= length; i += kLanes) {
    stencil_lanes<kStride, kLanes>(taps, start, stride, in, out, i);
  }
  if (i < length) {  // the last kLanes again, overlapping: the same values
    stencil_lanes<kStride, kLanes>(taps, start, stride, in, out, length - kLanes);
  }
}

template <int kStride>
FASTCONV_ALWAYS_INLINE void stencil(const Taps& taps, float start, int64_t stride, const float* in,
                                    float* out, int64_t length) {
  if (length >= 16) {
    stencil_groups<kStride, 16>(taps, start, stride, in, out, length);
  } else if (length >= 8) {
    stencil_groups<kStride, 8>(taps, start, stride, in, out, length);
  } else {
    for (int64_t i = 0; i < length; ++i) {
      stencil_lanes<kStride, 1>(taps, start, stride, in, out, i);
    }
  }
}

FASTCONV_ALWAYS_INLINE void any_stride_stencil(const Taps& taps, float start, int64_t stride,
                                               const float* in, float* out, int64_t length) {
  if (stride == 1) {
    stencil<1>(taps, start, 1, in, out, length);
  } else if (stride == 2) {
    stencil<2>(taps, start, 2, in, out, length);
  } else {
    stencil<0>(taps, start, stride, in, out, length);
  }
}

}  // namespace fastconv::cpu
