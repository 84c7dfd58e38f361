// CPU kernels of max_pool2d_with_indices and its backward.
//
// Forward, NCHW: a plane per task. Each output row splits into border columns (windows that reach
// into the padding or past the edge), done one by one, and interior columns, done 8 at a time in
// AVX2 registers (float32, column stride 1 or 2; a narrow interior gets one masked block, a wide
// one ends with a block overlapping the previous). Window rows outside the input are skipped, so
// top and bottom padding cost nothing; taps are combined as a tree (see combine()).
// Forward, channels_last: a band of output pixels per task, a pixel's channels 8 at a time in
// AVX2 registers (up to 32 channels per sweep over the window; more, tap by tap through the
// output), the last partial group masked.
// Both vector paths keep torch's switches exactly: torch's scan order (rows, then columns), a tap
// wins when `value > max || isnan(value)` (ties keep the first index, the last NaN wins), the
// first tap inside the input starts the scan, and the flat h*W+w index is held in int32 lanes
// (planes of up to 2^31 - 1 elements; larger ones take the generic path), widened to int64 when
// stored.
// The vector paths run where cpu_uses_avx2() (cpu_capability.h) and are compiled per function
// (__attribute__((target))), so the library still loads and runs on CPUs without AVX2; everything
// else takes the generic loops, which define the semantics.
//
// Backward: each output's gradient is added at its switch; every input element's sum runs in
// output order whatever the split into tasks (deterministic). Disjoint windows (VGG's 2x2/2) in
// float32 with AVX2 go as a vectorized gather (NCHW: 16 columns at a time; channels_last: 8
// channels at a time): each element written once, no zeroing pass. Otherwise a scatter that
// zeroes a band of rows just ahead of the windows that reach them, so both stay in the cache.
// Parallel over planes (NCHW) or images (channels_last; with fewer images than threads, bands of
// an image's rows). Half types add up in float and round once (NCHW; channels_last goes through
// NCHW). Switches that the forward would not give (outside their window) are still honoured: the
// fast paths detect them and the plane or image is redone by the plain scatter.
#include <ATen/Dispatch.h>
#include <ATen/NumericUtils.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <tuple>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FASTCONV_POOL_X86 1
#include <immintrin.h>
#define FASTCONV_AVX2 __attribute__((target("avx2,fma")))
// Helpers of the vector paths, inlined into their (AVX2) callers whatever gcc's size heuristics
// say: out of line, every __m256 argument and result goes through memory.
#define FASTCONV_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline
#else
#define FASTCONV_POOL_X86 0
#endif

#include "../shape_checks.h"
#include "cpu_capability.h"

namespace fastconv::cpu {
namespace {

// Taps of output position `o` along one dimension that fall inside the input: the first one
// (begin) and a bound (end); taps are begin, begin + dilation, ... < end.
struct WindowTaps {
  int64_t begin, end;
};

inline WindowTaps window_taps(int64_t o, int64_t stride, int64_t pad, int64_t kernel,
                              int64_t dilation, int64_t size) {
  int64_t begin = o * stride - pad;
  const int64_t end = std::min(begin + (kernel - 1) * dilation + 1, size);
  while (begin < 0) {  // a step or two: padding is at most half the kernel
    begin += dilation;
  }
  return {begin, end};
}

template <typename acc_t>
constexpr acc_t lowest_value() {
  return std::numeric_limits<acc_t>::has_infinity ? -std::numeric_limits<acc_t>::infinity()
                                                  : std::numeric_limits<acc_t>::lowest();
}

// torch's rule: a larger value or a NaN takes the switch, so ties keep the first index in window
// order (row by row) and the last NaN wins.
template <typename scalar_t, typename acc_t>
inline bool takes_switch(scalar_t value, acc_t best) {
  return static_cast<acc_t>(value) > best || at::_isnan(value);
}

// The vector paths hold in-plane indices in int32 lanes.
bool vector_path_available(const Pool2dGeometry& g) {
  return FASTCONV_POOL_X86 && cpu_uses_avx2() &&
      g.in_plane() <= std::numeric_limits<int32_t>::max();
}

// Tasks of at least about this many input elements: smaller ones cost more to hand out than they
// take to run.
constexpr int64_t kGrainElements = 32768;

// ------------------------------------------------------------------------------- generic forward

// One output of one plane: the window's maximum and its switch, torch's scan.
template <typename scalar_t>
inline void pool_one(const Pool2dGeometry& g, const scalar_t* x, WindowTaps rows, int64_t ow,
                     scalar_t* y, int64_t* switches) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto cols = window_taps(ow, g.stride_w, g.pad_w, g.kernel_w, g.dilation_w, g.in_w);
  acc_t best = lowest_value<acc_t>();
  int64_t best_index = rows.begin * g.in_w + cols.begin;
  for (int64_t ih = rows.begin; ih < rows.end; ih += g.dilation_h) {
    for (int64_t iw = cols.begin; iw < cols.end; iw += g.dilation_w) {
      const scalar_t value = x[ih * g.in_w + iw];
      if (takes_switch(value, best)) {
        best = static_cast<acc_t>(value);
        best_index = ih * g.in_w + iw;
      }
    }
  }
  *y = static_cast<scalar_t>(best);
  *switches = best_index;
}

// Always inlined, so that in the AVX2 paths it is compiled for AVX2 too: called from there out of
// line, each call cost as much as a vector block of 8 outputs (ymm state around the call).
template <typename scalar_t>
C10_ALWAYS_INLINE void pool_row_generic(const Pool2dGeometry& g, const scalar_t* x, int64_t oh,
                                        int64_t ow_begin, int64_t ow_end, scalar_t* y,
                                        int64_t* switches) {
  const auto rows = window_taps(oh, g.stride_h, g.pad_h, g.kernel_h, g.dilation_h, g.in_h);
  for (int64_t ow = ow_begin; ow < ow_end; ++ow) {
    pool_one(g, x, rows, ow, y + oh * g.out_w + ow, switches + oh * g.out_w + ow);
  }
}

// Interior output columns [lo, hi): every tap of their windows lies inside the row.
struct Interior {
  int64_t lo, hi;
};

Interior interior_columns(const Pool2dGeometry& g) {
  const int64_t lo = (g.pad_w + g.stride_w - 1) / g.stride_w;
  const int64_t last = g.in_w - 1 + g.pad_w - (g.kernel_w - 1) * g.dilation_w;
  const int64_t hi = last < 0 ? 0 : std::min(g.out_w, last / g.stride_w + 1);
  return {lo, std::max(lo, hi)};
}

#if FASTCONV_POOL_X86

// --------------------------------------------------------------------- AVX2 forward, NCHW, float

// Lane l of a block holds output column perm[l] of the block: [0..7] for stride 1, and for
// stride 2 the order one shuffle of two overlapping loads gives, [0, 1, 4, 5, 2, 3, 6, 7]; the
// block is put in order once, before it is stored.
template <int S>
FASTCONV_AVX2_INLINE __m256i lane_offsets() {
  if constexpr (S == 1) {
    return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  } else {
    return _mm256_setr_epi32(0, 2, 8, 10, 4, 6, 12, 14);
  }
}

// Load masks of a partial block of n outputs (reads no element past the last needed one).
struct BlockMasks {
  __m256i lo, hi;
};

template <int S>
FASTCONV_AVX2_INLINE BlockMasks block_masks(int n) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  if constexpr (S == 1) {
    return {_mm256_cmpgt_epi32(_mm256_set1_epi32(n), iota), _mm256_setzero_si256()};
  } else {
    // Elements p[0 .. 2n-2] are needed: p[e] from the first load, p[7 + e] from the second.
    const __m256i last = _mm256_set1_epi32(2 * n - 2);
    const __m256i lo = _mm256_cmpgt_epi32(_mm256_add_epi32(last, _mm256_set1_epi32(1)), iota);
    const __m256i hi = _mm256_cmpgt_epi32(
        _mm256_add_epi32(last, _mm256_set1_epi32(1)),
        _mm256_add_epi32(iota, _mm256_set1_epi32(7)));
    return {lo, hi};
  }
}

// The 8 inputs p[0], p[S], ..., p[7S], in lane order (see lane_offsets).
template <int S, bool kPartial>
FASTCONV_AVX2_INLINE __m256 load_taps(const float* p, const BlockMasks& masks) {
  if constexpr (S == 1) {
    return kPartial ? _mm256_maskload_ps(p, masks.lo) : _mm256_loadu_ps(p);
  } else {
    const __m256 a = kPartial ? _mm256_maskload_ps(p, masks.lo) : _mm256_loadu_ps(p);
    const __m256 b = kPartial ? _mm256_maskload_ps(p + 7, masks.hi) : _mm256_loadu_ps(p + 7);
    return _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 2, 0));
  }
}

// Stores the first n (< 8) lanes of values and of the switches (lo: lanes 0-3, hi: 4-7), piece by
// piece: masked stores are microcoded and slow on AMD, and memcpy of a variable size is a call.
FASTCONV_AVX2_INLINE void store_first(int n, __m256 values, __m256i lo, __m256i hi, float* y,
                                      int64_t* switches) {
  __m128 v = _mm256_castps256_ps128(values);
  long long* s = reinterpret_cast<long long*>(switches);
  if (n & 4) {
    _mm_storeu_ps(y, v);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(s), lo);
    v = _mm256_extractf128_ps(values, 1);
    lo = hi;
    y += 4;
    s += 4;
  }
  __m128i s2 = _mm256_castsi256_si128(lo);
  if (n & 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(y), v);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(s), s2);
    v = _mm_movehl_ps(v, v);
    s2 = _mm256_extracti128_si256(lo, 1);
    y += 2;
    s += 2;
  }
  if (n & 1) {
    _mm_store_ss(y, v);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(s), s2);
  }
}

FASTCONV_AVX2_INLINE __m256 takes_switch_mask(__m256 value, __m256 best) {
  return _mm256_or_ps(_mm256_cmp_ps(value, best, _CMP_GT_OQ),
                      _mm256_cmp_ps(value, value, _CMP_UNORD_Q));
}

// A running maximum of 8 lanes and its switches.
struct Best {
  __m256 value;
  __m256i index;
};

// torch's scan is a reduction with an associative rule: of two partial results, the later one (in
// window order) wins when it is larger or NaN. So taps may be combined as a tree, provided the
// earlier one is always on the left; this shortens the dependency chains.
FASTCONV_AVX2_INLINE Best combine(const Best& earlier, const Best& later) {
  const __m256 take = takes_switch_mask(later.value, earlier.value);
  return {_mm256_blendv_ps(earlier.value, later.value, take),
          _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(earlier.index),
                                               _mm256_castsi256_ps(later.index), take))};
}

template <int S, bool kPartial>
FASTCONV_AVX2_INLINE Best tap(const float* row, int32_t row_index, int64_t offset,
                              const BlockMasks& masks, __m256i lanes) {
  return {load_taps<S, kPartial>(row + offset, masks),
          _mm256_add_epi32(_mm256_set1_epi32(row_index + static_cast<int32_t>(offset)), lanes)};
}

// The taps of one window row: KW of them (KW = 0: g.kernel_w, one after the other).
template <int S, int KW, bool kPartial>
FASTCONV_AVX2_INLINE Best row_maximum(const Pool2dGeometry& g, const float* row,
                                      int32_t row_index, const BlockMasks& masks,
                                      __m256i lanes) {
  const int64_t dw = g.dilation_w;
  if constexpr (KW == 2) {
    return combine(tap<S, kPartial>(row, row_index, 0, masks, lanes),
                   tap<S, kPartial>(row, row_index, dw, masks, lanes));
  } else if constexpr (KW == 3) {
    const Best first = tap<S, kPartial>(row, row_index, 0, masks, lanes);
    return combine(first, combine(tap<S, kPartial>(row, row_index, dw, masks, lanes),
                                  tap<S, kPartial>(row, row_index, 2 * dw, masks, lanes)));
  } else {
    Best best = tap<S, kPartial>(row, row_index, 0, masks, lanes);
    for (int64_t t = 1; t < g.kernel_w; ++t) {
      best = combine(best, tap<S, kPartial>(row, row_index, t * dw, masks, lanes));
    }
    return best;
  }
}

// Outputs [ow0, ow0 + n) of one output row whose window rows are `rows` (n = 8 unless kPartial),
// all interior columns.
template <int S, int KW, bool kPartial>
FASTCONV_AVX2_INLINE void pool_block_nchw(const Pool2dGeometry& g, const float* x,
                                          WindowTaps rows, int64_t ow0, int n, float* y,
                                          int64_t* switches) {
  const BlockMasks masks = kPartial ? block_masks<S>(n) : BlockMasks{};
  const __m256i lanes = lane_offsets<S>();
  const int64_t col0 = ow0 * S - g.pad_w, W = g.in_w;
#define FASTCONV_ROW(ih) \
  row_maximum<S, KW, kPartial>(g, x + (ih) * W + col0, static_cast<int32_t>((ih) * W + col0), \
                               masks, lanes)
  Best best = FASTCONV_ROW(rows.begin);
  int64_t ih = rows.begin + g.dilation_h;
  for (; ih + g.dilation_h < rows.end; ih += 2 * g.dilation_h) {  // two rows at a time
    best = combine(best, combine(FASTCONV_ROW(ih), FASTCONV_ROW(ih + g.dilation_h)));
  }
  if (ih < rows.end) {
    best = combine(best, FASTCONV_ROW(ih));
  }
#undef FASTCONV_ROW
  __m256 value = best.value;
  __m256i index = best.index;
  if constexpr (S == 2) {  // lanes back in column order
    value = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(value), _MM_SHUFFLE(3, 1, 2, 0)));
    index = _mm256_permute4x64_epi64(index, _MM_SHUFFLE(3, 1, 2, 0));
  }
  const __m256i index_lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(index));
  const __m256i index_hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(index, 1));
  if constexpr (kPartial) {
    store_first(n, value, index_lo, index_hi, y + ow0, switches + ow0);
  } else {
    _mm256_storeu_ps(y + ow0, value);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(switches + ow0), index_lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(switches + ow0 + 4), index_hi);
  }
}

template <int S, int KW>
FASTCONV_AVX2 void pool_planes_nchw_avx2(const Pool2dGeometry& g, const float* input,
                                         float* output, int64_t* indices, int64_t begin,
                                         int64_t end) {
  const Interior interior = interior_columns(g);
  const int64_t width = interior.hi - interior.lo;
  for (int64_t plane = begin; plane < end; ++plane) {
    const float* x = input + plane * g.in_plane();
    float* y_plane = output + plane * g.out_plane();
    int64_t* s_plane = indices + plane * g.out_plane();
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      const auto rows = window_taps(oh, g.stride_h, g.pad_h, g.kernel_h, g.dilation_h, g.in_h);
      {  // the input rows that the next output row adds, ahead of time
        const int64_t first = std::max(rows.end, rows.begin + g.stride_h);
        const int64_t last = std::min(g.in_h, rows.end + g.stride_h);
        const float* end_ptr = x + last * g.in_w;
        for (const float* p = x + first * g.in_w; p < end_ptr; p += 16) {
          _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0);
        }
      }
      if (rows.begin >= rows.end || width == 0) {  // no row inside the input, or no interior
        pool_row_generic(g, x, oh, 0, g.out_w, y_plane, s_plane);
        continue;
      }
      float* y = y_plane + oh * g.out_w;
      int64_t* s = s_plane + oh * g.out_w;
      if (interior.lo > 0) {
        pool_row_generic(g, x, oh, 0, interior.lo, y_plane, s_plane);
      }
      if (width < 8) {
        pool_block_nchw<S, KW, true>(g, x, rows, interior.lo, static_cast<int>(width), y, s);
      } else {
        int64_t ow = interior.lo;
        for (; ow + 8 <= interior.hi; ow += 8) {
          pool_block_nchw<S, KW, false>(g, x, rows, ow, 8, y, s);
        }
        if (ow < interior.hi) {  // the last 8 interior columns, again in part: same results
          pool_block_nchw<S, KW, false>(g, x, rows, interior.hi - 8, 8, y, s);
        }
      }
      if (interior.hi < g.out_w) {
        pool_row_generic(g, x, oh, interior.hi, g.out_w, y_plane, s_plane);
      }
    }
  }
}

// ----------------------------------------------------------- AVX2 forward, channels_last, float

struct Tap {
  int64_t offset;  // of the pixel in the image, in elements (pixel * C)
  int32_t index;   // its switch, h * W + w
};

// K vectors of 8 channels (the last one masked when kMasked) of one output pixel.
template <int K, bool kMasked>
FASTCONV_AVX2_INLINE void pool_channels_cl(const float* x, const Tap* taps, int64_t num_taps,
                                           int32_t first_index, __m256i mask, int tail, float* y,
                                           int64_t* switches) {
  __m256 best[K];
  __m256i best_index[K];
  for (int k = 0; k < K; ++k) {
    best[k] = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    best_index[k] = _mm256_set1_epi32(first_index);
  }
  for (int64_t t = 0; t < num_taps; ++t) {
    const float* p = x + taps[t].offset;
    const __m256 index = _mm256_castsi256_ps(_mm256_set1_epi32(taps[t].index));
    for (int k = 0; k < K; ++k) {
      const __m256 value = kMasked ? _mm256_maskload_ps(p + 8 * k, mask) : _mm256_loadu_ps(p + 8 * k);
      const __m256 take = takes_switch_mask(value, best[k]);
      best[k] = _mm256_blendv_ps(best[k], value, take);
      best_index[k] =
          _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(best_index[k]), index, take));
    }
  }
  for (int k = 0; k < K; ++k) {
    const __m256i lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(best_index[k]));
    const __m256i hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(best_index[k], 1));
    long long* s = reinterpret_cast<long long*>(switches + 8 * k);
    if (kMasked) {
      store_first(tail, best[k], lo, hi, y + 8 * k, switches + 8 * k);
    } else {
      _mm256_storeu_ps(y + 8 * k, best[k]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(s), lo);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(s + 4), hi);
    }
  }
}

// All channels of one output pixel, taps outermost, so that each tap pixel is read once, in one
// sweep (the channel groups of pool_channels_cl visit every tap once per group: a pattern the
// hardware prefetchers follow poorly once the input is beyond the cache): running maxima in the
// output itself, switches in a per-thread int32 buffer widened at the end. C a multiple of 8.
FASTCONV_AVX2_INLINE void pool_pixel_cl_tap_major(const float* x, const Tap* taps, int64_t num_taps,
                                                  int64_t C, float* y, int32_t* best_index,
                                                  int64_t* switches) {
  for (int64_t c = 0; c < C; c += 8) {
    _mm256_storeu_ps(y + c, _mm256_loadu_ps(x + taps[0].offset + c));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(best_index + c), _mm256_set1_epi32(taps[0].index));
  }
  for (int64_t t = 1; t < num_taps; ++t) {
    const float* p = x + taps[t].offset;
    const __m256 index = _mm256_castsi256_ps(_mm256_set1_epi32(taps[t].index));
    for (int64_t c = 0; c < C; c += 8) {
      const __m256 value = _mm256_loadu_ps(p + c);
      const __m256 best = _mm256_loadu_ps(y + c);
      const __m256 take = takes_switch_mask(value, best);
      _mm256_storeu_ps(y + c, _mm256_blendv_ps(best, value, take));
      float* bi = reinterpret_cast<float*>(best_index + c);
      _mm256_storeu_ps(bi, _mm256_blendv_ps(_mm256_loadu_ps(bi), index, take));
    }
  }
  for (int64_t c = 0; c < C; c += 8) {
    const __m256i i = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(best_index + c));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(switches + c),
                        _mm256_cvtepi32_epi64(_mm256_castsi256_si128(i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(switches + c + 4),
                        _mm256_cvtepi32_epi64(_mm256_extracti128_si256(i, 1)));
  }
}

FASTCONV_AVX2 void pool_pixels_cl_avx2(const Pool2dGeometry& g, const float* input, float* output,
                                       int64_t* indices, int64_t begin, int64_t end) {
  const int64_t C = g.channels;
  std::vector<Tap> taps(g.kernel_h * g.kernel_w);
  const bool tap_major = C > 32 && C % 8 == 0;
  std::vector<int32_t> index_buffer(tap_major ? C : 0);
  const __m256i tail_mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(C % 8)),
                                               _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  for (int64_t position = begin; position < end; ++position) {
    const int64_t n = position / g.out_plane();
    const int64_t oh = (position / g.out_w) % g.out_h;
    const int64_t ow = position % g.out_w;
    const auto rows = window_taps(oh, g.stride_h, g.pad_h, g.kernel_h, g.dilation_h, g.in_h);
    const auto cols = window_taps(ow, g.stride_w, g.pad_w, g.kernel_w, g.dilation_w, g.in_w);
    int64_t num_taps = 0;
    for (int64_t ih = rows.begin; ih < rows.end; ih += g.dilation_h) {
      for (int64_t iw = cols.begin; iw < cols.end; iw += g.dilation_w) {
        taps[num_taps++] = {(ih * g.in_w + iw) * C, static_cast<int32_t>(ih * g.in_w + iw)};
      }
    }
    // A window with no tap inside the input: -inf at the first tap's position, as torch (that
    // position may lie outside the plane; int64 here).
    if (num_taps == 0) {
      std::fill_n(output + position * C, C, -std::numeric_limits<float>::infinity());
      std::fill_n(indices + position * C, C, rows.begin * g.in_w + cols.begin);
      continue;
    }
    const float* x = input + n * g.in_plane() * C;
    float* y = output + position * C;
    int64_t* s = indices + position * C;
    const int32_t first = taps[0].index;
    if (tap_major) {
      pool_pixel_cl_tap_major(x, taps.data(), num_taps, C, y, index_buffer.data(), s);
      continue;
    }
    int64_t c = 0;
    for (; c + 32 <= C; c += 32) {
      pool_channels_cl<4, false>(x + c, taps.data(), num_taps, first, tail_mask, 0, y + c, s + c);
    }
    for (; c + 8 <= C; c += 8) {
      pool_channels_cl<1, false>(x + c, taps.data(), num_taps, first, tail_mask, 0, y + c, s + c);
    }
    if (c < C) {
      pool_channels_cl<1, true>(x + c, taps.data(), num_taps, first, tail_mask,
                                static_cast<int>(C - c), y + c, s + c);
    }
  }
}

#endif  // FASTCONV_POOL_X86

// ------------------------------------------------------------------------------ forward drivers

template <typename scalar_t>
void max_pool2d_nchw(const Pool2dGeometry& g, const scalar_t* input, scalar_t* output,
                     int64_t* indices) {
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, g.in_plane()));
#if FASTCONV_POOL_X86
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (vector_path_available(g) && (g.stride_w == 1 || g.stride_w == 2)) {
      at::parallel_for(0, g.batch * g.channels, grain, [&](int64_t begin, int64_t end) {
        auto pool = g.stride_w == 1
            ? (g.kernel_w == 2 ? pool_planes_nchw_avx2<1, 2>
               : g.kernel_w == 3 ? pool_planes_nchw_avx2<1, 3> : pool_planes_nchw_avx2<1, 0>)
            : (g.kernel_w == 2 ? pool_planes_nchw_avx2<2, 2>
               : g.kernel_w == 3 ? pool_planes_nchw_avx2<2, 3> : pool_planes_nchw_avx2<2, 0>);
        pool(g, input, output, indices, begin, end);
      });
      return;
    }
  }
#endif
  at::parallel_for(0, g.batch * g.channels, grain, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const scalar_t* x = input + plane * g.in_plane();
      scalar_t* y = output + plane * g.out_plane();
      int64_t* switches = indices + plane * g.out_plane();
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        pool_row_generic(g, x, oh, 0, g.out_w, y, switches);
      }
    }
  });
}

template <typename scalar_t>
void max_pool2d_channels_last(const Pool2dGeometry& g, const scalar_t* input, scalar_t* output,
                              int64_t* indices) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t C = g.channels;
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, C * 4));
#if FASTCONV_POOL_X86
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (vector_path_available(g)) {
      at::parallel_for(0, g.batch * g.out_plane(), grain, [&](int64_t begin, int64_t end) {
        pool_pixels_cl_avx2(g, input, output, indices, begin, end);
      });
      return;
    }
  }
#endif
  at::parallel_for(0, g.batch * g.out_plane(), grain, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> best(C);
    for (int64_t position = begin; position < end; ++position) {
      const int64_t n = position / g.out_plane();
      const int64_t oh = (position / g.out_w) % g.out_h;
      const int64_t ow = position % g.out_w;
      const auto rows = window_taps(oh, g.stride_h, g.pad_h, g.kernel_h, g.dilation_h, g.in_h);
      const auto cols = window_taps(ow, g.stride_w, g.pad_w, g.kernel_w, g.dilation_w, g.in_w);
      int64_t* switches = indices + position * C;
      std::fill(best.begin(), best.end(), lowest_value<acc_t>());
      std::fill_n(switches, C, rows.begin * g.in_w + cols.begin);
      for (int64_t ih = rows.begin; ih < rows.end; ih += g.dilation_h) {
        for (int64_t iw = cols.begin; iw < cols.end; iw += g.dilation_w) {
          const scalar_t* x = input + ((n * g.in_h + ih) * g.in_w + iw) * C;
          const int64_t flat = ih * g.in_w + iw;
          for (int64_t c = 0; c < C; ++c) {
            if (takes_switch(x[c], best[c])) {
              best[c] = static_cast<acc_t>(x[c]);
              switches[c] = flat;
            }
          }
        }
      }
      scalar_t* y = output + position * C;
      for (int64_t c = 0; c < C; ++c) {
        y[c] = static_cast<scalar_t>(best[c]);
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> max_pool2d_with_indices_kernel(
    const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
  const auto g = check_max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode);
  const bool channels_last = is_channels_last(input);
  const auto memory_format =
      channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  auto sizes = input.sizes().vec();
  sizes[sizes.size() - 2] = g.out_h;
  sizes[sizes.size() - 1] = g.out_w;
  auto output = at::empty(sizes, input.options().memory_format(memory_format));
  auto indices = at::empty(sizes, input.options().dtype(at::kLong).memory_format(memory_format));
  if (output.numel() == 0) {
    return {output, indices};
  }
  const auto x = input.contiguous(memory_format);
  AT_DISPATCH_ALL_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "max_pool2d", [&] {
    auto pool = channels_last ? max_pool2d_channels_last<scalar_t> : max_pool2d_nchw<scalar_t>;
    pool(g, x.const_data_ptr<scalar_t>(), output.mutable_data_ptr<scalar_t>(),
         indices.mutable_data_ptr<int64_t>());
  });
  return {output, indices};
}

// ------------------------------------------------------------------------------------ backward

// A switch outside the plane comes from a window with no tap inside the input (dilation and
// padding): it passes no gradient.
inline bool inside(int64_t index, int64_t size) {
  return static_cast<uint64_t>(index) < static_cast<uint64_t>(size);
}

// Input rows [0, end) hold every tap of the windows of output rows [0, oh].
inline int64_t rows_reached(const Pool2dGeometry& g, int64_t oh) {
  const int64_t end = oh * g.stride_h - g.pad_h + (g.kernel_h - 1) * g.dilation_h + 1;
  return std::clamp<int64_t>(end, 0, g.in_h);
}

// Zeroes n elements. glibc's memset (which gcc also makes of a zeroing loop) takes `rep stosb`
// from 2 KiB on, several times slower here (AMD Zen 3) than plain vector stores for the sizes
// this file zeroes, which sit in the L1/L2 cache.
template <typename scalar_t>
C10_ALWAYS_INLINE void zero_fill(scalar_t* p, int64_t n) {
#if FASTCONV_POOL_X86
  auto* bytes = reinterpret_cast<char*>(p);
  int64_t size = n * static_cast<int64_t>(sizeof(scalar_t));
  const __m128i zero = _mm_setzero_si128();
  for (; size >= 64; size -= 64, bytes += 64) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(bytes), zero);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(bytes + 16), zero);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(bytes + 32), zero);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(bytes + 48), zero);
  }
  for (; size >= 16; size -= 16, bytes += 16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(bytes), zero);
  }
  if (size > 0) {
    std::memset(bytes, 0, size);
  }
#else
  std::fill_n(p, n, scalar_t(0));
#endif
}

// The scatter of one plane (kChannelsLast: C = 1), or of one channels_last image (element (i, c)
// at gx[i * C + c]), restricted to the input rows [row_lo, row_hi): it goes through the output
// rows whose windows reach into them, in order, and adds the gradients whose switches fall in
// them, so that bands of one image can run in parallel and give the same sums as one pass. The
// band is zeroed as it goes, a little ahead of the windows, so that zeroing and sums stay in the
// cache. Returns false, having done part of the work, if a switch inside the plane lies outside
// the rows of its window (not one the forward gives, which another band would miss); the caller
// then redoes the image with scatter_all. Out of line: inlined into the op, its loop counters
// were spilled to the stack.
template <typename scalar_t, bool kChannelsLast>
C10_NOINLINE bool scatter_band(const Pool2dGeometry& g, const scalar_t* gy, const int64_t* s,
                               scalar_t* gx, int64_t C, int64_t row_lo, int64_t row_hi) {
  if constexpr (!kChannelsLast) {
    C = 1;
  }
  const int64_t W = g.in_w, in_plane = g.in_plane();
  // Zeroing goes ahead by at least 4 KiB at a time (fewer, longer fills).
  const int64_t ahead = std::max<int64_t>(1, 4096 / (W * C * static_cast<int64_t>(sizeof(scalar_t))));
  int64_t zeroed = row_lo;  // rows [row_lo, zeroed) are zero
  auto zero_rows_until = [&](int64_t row) {
    if (row > zeroed) {
      row = std::min(row_hi, std::max(row, zeroed + ahead));
      zero_fill(gx + zeroed * W * C, (row - zeroed) * W * C);
      zeroed = row;
    }
  };
  for (int64_t oh = 0; oh < g.out_h; ++oh) {
    const auto rows = window_taps(oh, g.stride_h, g.pad_h, g.kernel_h, g.dilation_h, g.in_h);
    const int64_t* s_row = s + oh * g.out_w * C;
    const scalar_t* gy_row = gy + oh * g.out_w * C;
    if (rows.begin >= rows.end) {  // windows with no row inside the input: switches outside
      if (row_lo == 0) {
        for (int64_t o = 0; o < g.out_w * C; ++o) {
          if (inside(s_row[o], in_plane)) {
            return false;
          }
        }
      }
      continue;
    }
    if (rows.end <= row_lo || rows.begin >= row_hi) {
      continue;
    }
    zero_rows_until(std::min(rows.end, row_hi));
    // Switches in [lo, lo + size) are this band's part of the window rows; others in the window
    // rows belong to another band, others in the plane are an error.
    const int64_t lo = std::max(rows.begin, row_lo) * W;
    const uint64_t size = static_cast<uint64_t>(std::min(rows.end, row_hi) * W - lo);
    const int64_t window_lo = rows.begin * W;
    const uint64_t window_size = static_cast<uint64_t>((rows.end - rows.begin) * W);
    for (int64_t ow = 0; ow < g.out_w; ++ow) {
      const int64_t* s_o = s_row + ow * C;
      const scalar_t* gy_o = gy_row + ow * C;
      for (int64_t c = 0; c < C; ++c) {
        const int64_t index = s_o[c];
        if (C10_LIKELY(static_cast<uint64_t>(index - lo) < size)) {
          gx[index * C + c] += gy_o[c];
        } else if (static_cast<uint64_t>(index - window_lo) >= window_size &&
                   inside(index, in_plane)) {
          return false;
        }
      }
    }
  }
  zero_rows_until(row_hi);
  return true;
}

#if FASTCONV_POOL_X86
// Backward of non-overlapping 2-wide windows (kernel_w = stride_w = 2, kernel_h = stride_h, no
// padding or dilation: VGG's pools), float32, one plane, as a gather: each input element is in at
// most one window, so its gradient is that window's when the switch points at it, else 0. Writes
// every element of the plane once, 16 at a time; no zeroing pass, no read-modify-write, no
// data-dependent branch. The sums are the scatter's (0 + g). Returns false, having written the
// plane, if some switch inside the plane points outside its window (then the scatter must redo
// it): it counts the switches that matched and those inside the plane.
//
// One block: outputs [ow, ow + 8) of row oh, input row ih = oh * kernel_h + kh, input columns
// [2 ow, 2 ow + 16). Lanes below `skip` were done by the previous block (the last block of a row
// overlaps it): written again alike, but not counted again.
struct GatherCounts {
  __m256i matched, valid;
};

template <bool kOverlap>
FASTCONV_AVX2_INLINE void gather_block_2x2(const int64_t* s, const float* gy, float* gx,
                                           int64_t first_index, bool count_valid, int skip,
                                           __m256i plane_size, GatherCounts& counts) {
  const __m256i minus_one = _mm256_set1_epi64x(-1);
  const __m256i s_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s));
  const __m256i s_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 4));
  __m256 grad = _mm256_loadu_ps(gy);
  const __m256i expected_lo = _mm256_add_epi64(_mm256_set1_epi64x(first_index),
                                               _mm256_setr_epi64x(0, 2, 4, 6));
  const __m256i expected_hi = _mm256_add_epi64(expected_lo, _mm256_set1_epi64x(8));
  const __m256i one = _mm256_set1_epi64x(1);
  const __m256i m0_lo = _mm256_cmpeq_epi64(s_lo, expected_lo);
  const __m256i m0_hi = _mm256_cmpeq_epi64(s_hi, expected_hi);
  const __m256i m1_lo = _mm256_cmpeq_epi64(s_lo, _mm256_add_epi64(expected_lo, one));
  const __m256i m1_hi = _mm256_cmpeq_epi64(s_hi, _mm256_add_epi64(expected_hi, one));
  __m256i matched_lo = _mm256_add_epi64(m0_lo, m1_lo), matched_hi = _mm256_add_epi64(m0_hi, m1_hi);
  __m256i valid_lo = _mm256_setzero_si256(), valid_hi = _mm256_setzero_si256();
  if (count_valid) {  // 0 <= s < plane size
    valid_lo = _mm256_and_si256(_mm256_cmpgt_epi64(s_lo, minus_one), _mm256_cmpgt_epi64(plane_size, s_lo));
    valid_hi = _mm256_and_si256(_mm256_cmpgt_epi64(s_hi, minus_one), _mm256_cmpgt_epi64(plane_size, s_hi));
  }
  if constexpr (kOverlap) {
    const __m256i fresh_lo = _mm256_cmpgt_epi64(_mm256_setr_epi64x(0, 1, 2, 3), _mm256_set1_epi64x(skip - 1));
    const __m256i fresh_hi = _mm256_cmpgt_epi64(_mm256_setr_epi64x(4, 5, 6, 7), _mm256_set1_epi64x(skip - 1));
    matched_lo = _mm256_and_si256(matched_lo, fresh_lo);
    matched_hi = _mm256_and_si256(matched_hi, fresh_hi);
    valid_lo = _mm256_and_si256(valid_lo, fresh_lo);
    valid_hi = _mm256_and_si256(valid_hi, fresh_hi);
  }
  counts.matched = _mm256_sub_epi64(counts.matched, _mm256_add_epi64(matched_lo, matched_hi));
  counts.valid = _mm256_sub_epi64(counts.valid, _mm256_add_epi64(valid_lo, valid_hi));
  // Masks in lane order [0, 1, 4, 5, 2, 3, 6, 7]; the gradients put in that order too, so that
  // interleaving the two columns' values gives the 16 input columns in order.
  const __m256 m0 = _mm256_shuffle_ps(_mm256_castsi256_ps(m0_lo), _mm256_castsi256_ps(m0_hi),
                                      _MM_SHUFFLE(2, 0, 2, 0));
  const __m256 m1 = _mm256_shuffle_ps(_mm256_castsi256_ps(m1_lo), _mm256_castsi256_ps(m1_hi),
                                      _MM_SHUFFLE(2, 0, 2, 0));
  grad = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(grad), _MM_SHUFFLE(3, 1, 2, 0)));
  const __m256 zero = _mm256_setzero_ps();
  const __m256 v0 = _mm256_add_ps(_mm256_and_ps(grad, m0), zero);  // 0 + g: as the scatter
  const __m256 v1 = _mm256_add_ps(_mm256_and_ps(grad, m1), zero);
  _mm256_storeu_ps(gx, _mm256_unpacklo_ps(v0, v1));
  _mm256_storeu_ps(gx + 8, _mm256_unpackhi_ps(v0, v1));
}

// Whether gather_plane_2x2 applies: that geometry, and rows of at least 8 outputs whose two
// columns lie inside (narrower planes scatter faster).
bool gather_2x2_applies(const Pool2dGeometry& g) {
  return g.kernel_w == 2 && g.stride_w == 2 && g.kernel_h == g.stride_h && g.pad_h == 0 &&
      g.pad_w == 0 && g.dilation_h == 1 && g.dilation_w == 1 &&
      std::min(g.out_w, g.in_w / 2) >= 8;
}

FASTCONV_AVX2 bool gather_plane_2x2(const Pool2dGeometry& g, const float* gy, const int64_t* s,
                                    float* gx) {
  const int64_t W = g.in_w, H = g.in_h, KH = g.kernel_h, in_plane = g.in_plane();
  const int64_t both_inside = std::min(g.out_w, W / 2);  // outputs with both columns inside
  const int64_t full = both_inside / 8 * 8;
  const int rest = static_cast<int>(both_inside - full);
  const __m256i plane_size = _mm256_set1_epi64x(in_plane);
  GatherCounts counts{_mm256_setzero_si256(), _mm256_setzero_si256()};
  int64_t matched_tail = 0, valid_tail = 0;
  for (int64_t oh = 0; oh < g.out_h; ++oh) {
    const int64_t* s_row = s + oh * g.out_w;
    const float* gy_row = gy + oh * g.out_w;
    for (int64_t kh = 0; kh < KH && oh * KH + kh < H; ++kh) {
      const int64_t ih = oh * KH + kh;
      float* gx_row = gx + ih * W;
      for (int64_t ow = 0; ow < full; ow += 8) {
        gather_block_2x2<false>(s_row + ow, gy_row + ow, gx_row + 2 * ow, ih * W + 2 * ow,
                                kh == 0, 0, plane_size, counts);
      }
      if (rest > 0) {
        const int64_t ow = both_inside - 8;
        gather_block_2x2<true>(s_row + ow, gy_row + ow, gx_row + 2 * ow, ih * W + 2 * ow,
                               kh == 0, 8 - rest, plane_size, counts);
      }
      // The last column when the width is odd: in a window of its own (ceil mode) or in none.
      for (int64_t iw = 2 * both_inside; iw < W; ++iw) {
        const int64_t ow = iw / 2;
        float value = 0.0f;
        if (ow < g.out_w) {
          const int64_t index = s_row[ow];
          valid_tail += kh == 0 && inside(index, in_plane);
          if (index == ih * W + iw) {
            value = 0.0f + gy_row[ow];
            ++matched_tail;
          }
        }
        gx_row[iw] = value;
      }
    }
  }
  // Rows below the last window (odd height, floor mode).
  const int64_t covered = std::min(H, g.out_h * KH);
  zero_fill(gx + covered * W, (H - covered) * W);
  alignas(32) int64_t totals[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(totals), counts.matched);
  _mm256_store_si256(reinterpret_cast<__m256i*>(totals + 4), counts.valid);
  return totals[0] + totals[1] + totals[2] + totals[3] + matched_tail ==
         totals[4] + totals[5] + totals[6] + totals[7] + valid_tail;
}
#endif

// The plain scatter, for any switches: zero, then add each output's gradient at its switch (one
// outside the plane, from a window with no tap inside the input, passes no gradient).
template <typename scalar_t>
C10_NOINLINE void scatter_all(const Pool2dGeometry& g, const scalar_t* gy, const int64_t* s,
                              scalar_t* gx, int64_t C) {
  const int64_t in_plane = g.in_plane();
  zero_fill(gx, in_plane * C);
  for (int64_t o = 0; o < g.out_plane(); ++o) {
    for (int64_t c = 0; c < C; ++c) {
      const int64_t index = s[o * C + c];
      if (inside(index, in_plane)) {
        gx[index * C + c] += gy[o * C + c];
      }
    }
  }
}

template <typename scalar_t>
void max_pool2d_backward_nchw(const Pool2dGeometry& g, const scalar_t* grad_output,
                              const int64_t* switches, scalar_t* grad_input) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t in_plane = g.in_plane(), out_plane = g.out_plane();
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, in_plane));
#if FASTCONV_POOL_X86
  const bool gather_2x2 =
      std::is_same_v<scalar_t, float> && vector_path_available(g) && gather_2x2_applies(g);
#endif
  const bool small_plane = in_plane * static_cast<int64_t>(sizeof(scalar_t)) <= 16384;
  // A plane per task, its outputs in order: each plane's sums have a fixed order.
  at::parallel_for(0, g.batch * g.channels, grain, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same_v<acc_t, scalar_t>) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const scalar_t* gy = grad_output + plane * out_plane;
        const int64_t* s = switches + plane * out_plane;
        scalar_t* gx = grad_input + plane * in_plane;
#if FASTCONV_POOL_X86
        if constexpr (std::is_same_v<scalar_t, float>) {
          if (gather_2x2) {
            if (!gather_plane_2x2(g, gy, s, gx)) {
              scatter_all(g, gy, s, gx, 1);
            }
            continue;
          }
        }
#endif
        if (small_plane) {  // in the L1 cache: zeroing it first costs nothing more
          scatter_all(g, gy, s, gx, 1);
        } else if (!scatter_band<scalar_t, false>(g, gy, s, gx, 1, 0, g.in_h)) {
          scatter_all(g, gy, s, gx, 1);
        }
      }
    } else {  // half types add up in float and round once
      std::vector<acc_t> sums(in_plane);
      for (int64_t plane = begin; plane < end; ++plane) {
        const scalar_t* gy = grad_output + plane * out_plane;
        const int64_t* s = switches + plane * out_plane;
        std::fill(sums.begin(), sums.end(), acc_t(0));
        for (int64_t o = 0; o < out_plane; ++o) {
          if (inside(s[o], in_plane)) {
            sums[s[o]] += static_cast<acc_t>(gy[o]);
          }
        }
        std::transform(sums.begin(), sums.end(), grad_input + plane * in_plane,
                       [](acc_t v) { return static_cast<scalar_t>(v); });
      }
    }
  });
}

#if FASTCONV_POOL_X86
// Whether windows never overlap (each input element is in at most one): kernel <= stride, no
// dilation. Padding is at most half the kernel, so every window has a tap inside the input.
bool windows_disjoint(const Pool2dGeometry& g) {
  return g.kernel_h <= g.stride_h && g.kernel_w <= g.stride_w && g.dilation_h == 1 &&
      g.dilation_w == 1;
}

// The backward of disjoint windows on a channels_last float32 image, input rows [row_lo,
// row_hi), as a gather: an input pixel's gradient, channel by channel, is that of its window
// where the switch points at the pixel, else 0 (0 + g: the scatter's sums). Every element is
// written once, 8 channels at a time, in order; no zeroing pass, no read-modify-write. Counts the
// switches that matched (`matched`) and, for the windows whose first tap lies in the band, those
// inside the plane (`valid`): equal totals over an image's bands mean every switch inside the
// plane was in its window; otherwise the caller redoes the image with the scatter.
FASTCONV_AVX2 void gather_band_cl(const Pool2dGeometry& g, const float* gy, const int64_t* s,
                                  float* gx, int64_t row_lo, int64_t row_hi, int64_t& matched,
                                  int64_t& valid) {
  const int64_t C = g.channels, W = g.in_w, in_plane = g.in_plane();
  const int64_t vector_c = C / 8 * 8;
  const __m256i minus_one = _mm256_set1_epi64x(-1), plane_size = _mm256_set1_epi64x(in_plane);
  const __m256 zero = _mm256_setzero_ps();
  __m256i matched_v = _mm256_setzero_si256(), valid_v = _mm256_setzero_si256();
  int64_t matched_s = 0, valid_s = 0;
  for (int64_t ih = row_lo; ih < row_hi; ++ih) {
    const int64_t oh = (ih + g.pad_h) / g.stride_h;
    const bool row_covered = (ih + g.pad_h) % g.stride_h < g.kernel_h && oh < g.out_h;
    const bool first_row = row_covered && ih == std::max<int64_t>(0, oh * g.stride_h - g.pad_h);
    for (int64_t iw = 0; iw < W; ++iw) {
      float* x = gx + (ih * W + iw) * C;
      const int64_t ow = (iw + g.pad_w) / g.stride_w;
      if (!row_covered || (iw + g.pad_w) % g.stride_w >= g.kernel_w || ow >= g.out_w) {
        zero_fill(x, C);  // in no window
        continue;
      }
      const bool count_valid =
          first_row && iw == std::max<int64_t>(0, ow * g.stride_w - g.pad_w);
      const int64_t o = (oh * g.out_w + ow) * C;
      const int64_t* s_o = s + o;
      const float* gy_o = gy + o;
      const int64_t position = ih * W + iw;
      const __m256i expected = _mm256_set1_epi64x(position);
      for (int64_t c = 0; c < vector_c; c += 8) {
        const __m256i s_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s_o + c));
        const __m256i s_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s_o + c + 4));
        const __m256i m_lo = _mm256_cmpeq_epi64(s_lo, expected);
        const __m256i m_hi = _mm256_cmpeq_epi64(s_hi, expected);
        matched_v = _mm256_sub_epi64(matched_v, _mm256_add_epi64(m_lo, m_hi));
        if (count_valid) {
          const __m256i in_lo = _mm256_and_si256(_mm256_cmpgt_epi64(s_lo, minus_one),
                                                 _mm256_cmpgt_epi64(plane_size, s_lo));
          const __m256i in_hi = _mm256_and_si256(_mm256_cmpgt_epi64(s_hi, minus_one),
                                                 _mm256_cmpgt_epi64(plane_size, s_hi));
          valid_v = _mm256_sub_epi64(valid_v, _mm256_add_epi64(in_lo, in_hi));
        }
        // The mask in lane order [0, 1, 4, 5, 2, 3, 6, 7], put back in order.
        const __m256 mask = _mm256_castpd_ps(_mm256_permute4x64_pd(
            _mm256_castps_pd(_mm256_shuffle_ps(_mm256_castsi256_ps(m_lo), _mm256_castsi256_ps(m_hi),
                                               _MM_SHUFFLE(2, 0, 2, 0))),
            _MM_SHUFFLE(3, 1, 2, 0)));
        _mm256_storeu_ps(x + c, _mm256_add_ps(_mm256_and_ps(_mm256_loadu_ps(gy_o + c), mask), zero));
      }
      for (int64_t c = vector_c; c < C; ++c) {
        const bool hit = s_o[c] == position;
        matched_s += hit;
        valid_s += count_valid && inside(s_o[c], in_plane);
        x[c] = hit ? 0.0f + gy_o[c] : 0.0f;
      }
    }
  }
  alignas(32) int64_t totals[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(totals), matched_v);
  _mm256_store_si256(reinterpret_cast<__m256i*>(totals + 4), valid_v);
  matched = totals[0] + totals[1] + totals[2] + totals[3] + matched_s;
  valid = totals[4] + totals[5] + totals[6] + totals[7] + valid_s;
}
#endif

// channels_last, float and double: a task is an image, or with fewer images than threads a band
// of an image's input rows (gather_band_cl for disjoint windows in float32, else scatter_band).
// Sums are those of one pass in output order, whatever the split: deterministic.
template <typename scalar_t>
void max_pool2d_backward_channels_last(const Pool2dGeometry& g, const scalar_t* grad_output,
                                       const int64_t* switches, scalar_t* grad_input) {
  const int64_t C = g.channels, in_plane = g.in_plane(), out_plane = g.out_plane();
  const int64_t threads = at::get_num_threads();
  const int64_t bands = g.batch >= threads ? 1 : std::min(g.in_h, (threads + g.batch - 1) / g.batch);
#if FASTCONV_POOL_X86
  const bool gather =
      std::is_same_v<scalar_t, float> && vector_path_available(g) && windows_disjoint(g);
#endif
  // Per task: the gather's counts of matched and valid switches, or scatter_band's failure as a
  // count that cannot match.
  std::vector<int64_t> matched(g.batch * bands, 0), valid(g.batch * bands, 0);
  at::parallel_for(0, g.batch * bands, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / bands, band = task % bands;
      const int64_t row_lo = g.in_h * band / bands, row_hi = g.in_h * (band + 1) / bands;
#if FASTCONV_POOL_X86
      if constexpr (std::is_same_v<scalar_t, float>) {
        if (gather) {
          gather_band_cl(g, grad_output + n * out_plane * C, switches + n * out_plane * C,
                         grad_input + n * in_plane * C, row_lo, row_hi, matched[task],
                         valid[task]);
          continue;
        }
      }
#endif
      valid[task] = !scatter_band<scalar_t, true>(
          g, grad_output + n * out_plane * C, switches + n * out_plane * C,
          grad_input + n * in_plane * C, C, row_lo, row_hi);
    }
  });
  for (int64_t n = 0; n < g.batch; ++n) {
    const auto first = static_cast<std::ptrdiff_t>(n * bands);
    if (std::accumulate(matched.begin() + first, matched.begin() + first + bands, int64_t(0)) !=
        std::accumulate(valid.begin() + first, valid.begin() + first + bands, int64_t(0))) {
      scatter_all(g, grad_output + n * out_plane * C, switches + n * out_plane * C,
                  grad_input + n * in_plane * C, C);
    }
  }
}

at::Tensor max_pool2d_with_indices_backward_kernel(
    const at::Tensor& grad_output, const at::Tensor& input, at::IntArrayRef kernel_size,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode,
    const at::Tensor& indices) {
  const auto g = check_max_pool2d_backward(grad_output, input, indices, kernel_size, stride,
                                           padding, dilation, ceil_mode);
  const bool channels_last = is_channels_last(input);
  const auto memory_format =
      channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  auto grad_input = at::empty(input.sizes(), grad_output.options().memory_format(memory_format));
  if (grad_input.numel() == 0) {
    return grad_input;
  }
  if (grad_output.numel() == 0) {
    return grad_input.zero_();
  }
  const bool native_channels_last = channels_last && (grad_output.scalar_type() == at::kFloat ||
                                                      grad_output.scalar_type() == at::kDouble);
  if (native_channels_last) {
    const auto gy = grad_output.contiguous(at::MemoryFormat::ChannelsLast);
    const auto switches = indices.contiguous(at::MemoryFormat::ChannelsLast);
    AT_DISPATCH_FLOATING_TYPES(gy.scalar_type(), "max_pool2d_backward", [&] {
      max_pool2d_backward_channels_last(g, gy.const_data_ptr<scalar_t>(),
                                        switches.const_data_ptr<int64_t>(),
                                        grad_input.mutable_data_ptr<scalar_t>());
    });
    return grad_input;
  }
  const auto gy = grad_output.contiguous();
  const auto switches = indices.contiguous();
  auto grad_nchw = channels_last ? at::empty(input.sizes(), grad_output.options()) : grad_input;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, gy.scalar_type(), "max_pool2d_backward", [&] {
    max_pool2d_backward_nchw(g, gy.const_data_ptr<scalar_t>(),
                             switches.const_data_ptr<int64_t>(),
                             grad_nchw.mutable_data_ptr<scalar_t>());
  });
  if (channels_last) {
    grad_input.copy_(grad_nchw);
  }
  return grad_input;
}

} // namespace

TORCH_LIBRARY_IMPL(fastconv, CPU, m) {
  m.impl("max_pool2d_with_indices", &max_pool2d_with_indices_kernel);
  m.impl("max_pool2d_with_indices_backward", &max_pool2d_with_indices_backward_kernel);
}

} // namespace fastconv::cpu
