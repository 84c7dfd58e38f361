// Small helpers shared by the CPU kernels: integer blocking arithmetic, parallel grains and the
// range of outputs whose taps stay inside a row. No torch headers.
#pragma once

#include <algorithm>
#include <cstdint>

#if defined(__GNUC__) || defined(__clang__)
#define FASTCONV_ALWAYS_INLINE __attribute__((always_inline)) inline
#define FASTCONV_NOINLINE __attribute__((noinline))
#define FASTCONV_LIKELY(x) __builtin_expect(!!(x), 1)
#else
#define FASTCONV_ALWAYS_INLINE inline
#define FASTCONV_NOINLINE
#define FASTCONV_LIKELY(x) (x)
#endif

namespace fastconv::cpu {

// a / b rounded up, for a >= 0 and b > 0; no intermediate sum, so it cannot overflow.
constexpr int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0); }

// value rounded up to a multiple of `multiple`.
constexpr int64_t round_up(int64_t value, int64_t multiple) {
  return ceil_div(value, multiple) * multiple;
}

// The grain of a parallel loop whose items cost `per_item` units each: at least `minimum` units
// per task, so that a small call runs on the calling thread (starting the thread team costs
// microseconds, more than a small layer's whole work).
constexpr int64_t kMinFloatsPerTask = 16 * 1024;
constexpr int64_t kMinMultiplyAddsPerTask = 256 * 1024;
constexpr int64_t kMinPoolElementsPerTask = 32 * 1024;  // input elements a pooling task reads

inline int64_t grain_for(int64_t per_item, int64_t minimum) {
  return std::max<int64_t>(1, minimum / std::max<int64_t>(per_item, 1));
}

// The outputs [begin, end) of a row of `outputs` whose tap at input position o * stride + offset
// lies inside a row of `width` inputs (begin == end where none does).
struct OutputRange {
  int64_t begin, end;
};

FASTCONV_ALWAYS_INLINE OutputRange taps_inside(int64_t offset, int64_t stride, int64_t width,
                                               int64_t outputs) {
  if (stride == 1) {  // no division
    const int64_t begin = std::clamp<int64_t>(-offset, 0, outputs);
    return {begin, std::clamp<int64_t>(width - offset, begin, outputs)};
  }
  const int64_t begin = std::min(outputs, offset >= 0 ? 0 : ceil_div(-offset, stride));
  const int64_t last = width - 1 - offset;  // the largest o * stride that stays inside
  const int64_t end = last < 0 ? begin : std::clamp<int64_t>(last / stride + 1, begin, outputs);
  return {begin, end};
}

// The outputs whose taps, from offset `first` to offset `last` (first <= last), all lie inside the
// row: the interior that a kernel may run without bounds checks.
FASTCONV_ALWAYS_INLINE OutputRange outputs_inside(int64_t first, int64_t last, int64_t stride,
                                                  int64_t width, int64_t outputs) {
  const int64_t begin = taps_inside(first, stride, width, outputs).begin;
  return {begin, std::max(begin, taps_inside(last, stride, width, outputs).end)};
}

}  // namespace fastconv::cpu
