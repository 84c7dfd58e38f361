// The AVX2 builds of the float32 max_pool2d forward (max_pool2d_vector.h).
//
// NCHW: each output row splits into border columns (windows that reach into the padding or past
// the edge), done one by one by the generic loop, and interior columns, done 8 at a time in AVX2
// registers (column stride 1 or 2; a narrow interior gets one masked block, a wide one ends with a
// block overlapping the previous). Window rows outside the input are skipped, so top and bottom
// padding cost nothing; taps are combined as a tree (see combine()).
// channels_last: a band of output pixels per task, a pixel's channels 8 at a time in AVX2
// registers (up to 32 channels per sweep over the window; more, tap by tap through the output),
// the last partial group masked.
// Both keep torch's indices exactly: torch's scan order (rows, then columns), its tie rule
// (pool_windows.h), the first tap inside the input starting the scan, and the flat h*W+w index
// held in int32 lanes (the caller sends larger planes to the generic loops), widened to int64 when
// stored.
#include <vector>

#include "ops/cpu/common.h"
#include "ops/cpu/pool/max_pool2d_generic.h"
#include "ops/cpu/pool/max_pool2d_vector.h"

namespace fastconv::cpu {

#if FASTCONV_X86
namespace {

// The output columns whose windows lie wholly inside the input.
OutputRange interior_columns(const Pool2dGeometry& g) {
  return outputs_inside(-g.pad_w, (g.kernel_w - 1) * g.dilation_w - g.pad_w, g.stride_w, g.in_w,
                        g.out_w);
}

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
    const __m256i hi = _mm256_cmpgt_epi32(_mm256_add_epi32(last, _mm256_set1_epi32(1)),
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

// Stores the first n (< 8) lanes of values and of the indices (lo: lanes 0-3, hi: 4-7), piece by
// piece: masked stores are microcoded and slow on AMD, and memcpy of a variable size is a call.
FASTCONV_AVX2_INLINE void store_first(int n, __m256 values, __m256i lo, __m256i hi, float* y,
                                      int64_t* indices) {
  __m128 v = _mm256_castps256_ps128(values);
  long long* s = reinterpret_cast<long long*>(indices);
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

FASTCONV_AVX2_INLINE __m256 replaces_max_mask(__m256 value, __m256 best) {
  return _mm256_or_ps(_mm256_cmp_ps(value, best, _CMP_GT_OQ),
                      _mm256_cmp_ps(value, value, _CMP_UNORD_Q));
}

// A running maximum of 8 lanes and its indices.
struct Best {
  __m256 value;
  __m256i index;
};

// torch's scan is a reduction with an associative rule: of two partial results, the later one (in
// window order) wins when it is larger or NaN. So taps may be combined as a tree, provided the
// earlier one is always on the left; this shortens the dependency chains.
FASTCONV_AVX2_INLINE Best combine(const Best& earlier, const Best& later) {
  const __m256 take = replaces_max_mask(later.value, earlier.value);
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
FASTCONV_AVX2_INLINE Best row_maximum(const Pool2dGeometry& g, const float* row, int32_t row_index,
                                      const BlockMasks& masks, __m256i lanes) {
  const int64_t dw = g.dilation_w;
  if constexpr (KW == 2) {
    return combine(tap<S, kPartial>(row, row_index, 0, masks, lanes),
                   tap<S, kPartial>(row, row_index, dw, masks, lanes));
  } else if constexpr (KW == 3) {
    const Best first = tap<S, kPartial>(row, row_index, 0, masks, lanes);
    return combine(first,
                   combine(tap<S, kPartial>(row, row_index, dw, masks, lanes),
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
// all interior columns. A partial block loads its taps masked (kMaskLoads) only where whole
// vectors would read past the input tensor: masked loads are microcoded on AMD, and the lanes past
// n, which whole loads fill from the next row, are never stored.
template <int S, int KW, bool kPartial, bool kMaskLoads = kPartial>
FASTCONV_AVX2_INLINE void pool_block_nchw(const Pool2dGeometry& g, const float* x, WindowTaps rows,
                                          int64_t ow0, int n, float* y, int64_t* indices) {
  const BlockMasks masks = kMaskLoads ? block_masks<S>(n) : BlockMasks{};
  const __m256i lanes = lane_offsets<S>();
  const int64_t col0 = ow0 * S - g.pad_w, W = g.in_w;
#define FASTCONV_ROW(ih)                                                                        \
  row_maximum<S, KW, kMaskLoads>(g, x + (ih) * W + col0, static_cast<int32_t>((ih) * W + col0), \
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
    value =
        _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(value), _MM_SHUFFLE(3, 1, 2, 0)));
    index = _mm256_permute4x64_epi64(index, _MM_SHUFFLE(3, 1, 2, 0));
  }
  const __m256i index_lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(index));
  const __m256i index_hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(index, 1));
  if constexpr (kPartial) {
    store_first(n, value, index_lo, index_hi, y + ow0, indices + ow0);
  } else {
    _mm256_storeu_ps(y + ow0, value);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(indices + ow0), index_lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(indices + ow0 + 4), index_hi);
  }
}

template <int S, int KW>
FASTCONV_AVX2 void pool_planes_nchw_avx2(const Pool2dGeometry& g, const float* input, float* output,
                                         int64_t* indices, int64_t begin, int64_t end) {
  const OutputRange interior = interior_columns(g);
  const int64_t width = interior.end - interior.begin;
  // A narrow interior's taps as whole vectors: the farthest element read past a window row's first
  // interior column, and the input's end, which no load may pass.
  const int64_t block_reach = (g.kernel_w - 1) * g.dilation_w + 8 * S;
  const float* input_end = input + g.batch * g.channels * g.in_plane();
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
      if (interior.begin > 0) {
        pool_row_generic(g, x, oh, 0, interior.begin, y_plane, s_plane);
      }
      if (width < 8) {
        const int n = static_cast<int>(width);
        const int64_t last_row_end = (rows.end - 1) * g.in_w + interior.begin * S - g.pad_w;
        if (block_reach <= input_end - (x + last_row_end)) {
          pool_block_nchw<S, KW, true, false>(g, x, rows, interior.begin, n, y, s);
        } else {
          pool_block_nchw<S, KW, true>(g, x, rows, interior.begin, n, y, s);
        }
      } else {
        int64_t ow = interior.begin;
        for (; ow + 8 <= interior.end; ow += 8) {
          pool_block_nchw<S, KW, false>(g, x, rows, ow, 8, y, s);
        }
        if (ow < interior.end) {  // the last 8 interior columns, again in part: same results
          pool_block_nchw<S, KW, false>(g, x, rows, interior.end - 8, 8, y, s);
        }
      }
      if (interior.end < g.out_w) {
        pool_row_generic(g, x, oh, interior.end, g.out_w, y_plane, s_plane);
      }
    }
  }
}

// ----------------------------------------------------------- AVX2 forward, channels_last, float

struct Tap {
  int64_t offset;  // of the pixel in the image, in elements (pixel * C)
  int32_t index;   // its index, h * W + w
};

// K vectors of 8 channels (the last one masked when kMasked) of one output pixel.
template <int K, bool kMasked>
FASTCONV_AVX2_INLINE void pool_channels_cl(const float* x, const Tap* taps, int64_t num_taps,
                                           int32_t first_index, __m256i mask, int tail, float* y,
                                           int64_t* indices) {
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
      const __m256 value =
          kMasked ? _mm256_maskload_ps(p + 8 * k, mask) : _mm256_loadu_ps(p + 8 * k);
      const __m256 take = replaces_max_mask(value, best[k]);
      best[k] = _mm256_blendv_ps(best[k], value, take);
      best_index[k] =
          _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(best_index[k]), index, take));
    }
  }
  for (int k = 0; k < K; ++k) {
    const __m256i lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(best_index[k]));
    const __m256i hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(best_index[k], 1));
    long long* s = reinterpret_cast<long long*>(indices + 8 * k);
    if (kMasked) {
      store_first(tail, best[k], lo, hi, y + 8 * k, indices + 8 * k);
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
// output itself, indices in a per-thread int32 buffer widened at the end. C a multiple of 8.
FASTCONV_AVX2_INLINE void pool_pixel_cl_tap_major(const float* x, const Tap* taps, int64_t num_taps,
                                                  int64_t C, float* y, int32_t* best_index,
                                                  int64_t* indices) {
  for (int64_t c = 0; c < C; c += 8) {
    _mm256_storeu_ps(y + c, _mm256_loadu_ps(x + taps[0].offset + c));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(best_index + c),
                        _mm256_set1_epi32(taps[0].index));
  }
  for (int64_t t = 1; t < num_taps; ++t) {
    const float* p = x + taps[t].offset;
    const __m256 index = _mm256_castsi256_ps(_mm256_set1_epi32(taps[t].index));
    for (int64_t c = 0; c < C; c += 8) {
      const __m256 value = _mm256_loadu_ps(p + c);
      const __m256 best = _mm256_loadu_ps(y + c);
      const __m256 take = replaces_max_mask(value, best);
      _mm256_storeu_ps(y + c, _mm256_blendv_ps(best, value, take));
      float* bi = reinterpret_cast<float*>(best_index + c);
      _mm256_storeu_ps(bi, _mm256_blendv_ps(_mm256_loadu_ps(bi), index, take));
    }
  }
  for (int64_t c = 0; c < C; c += 8) {
    const __m256i i = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(best_index + c));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(indices + c),
                        _mm256_cvtepi32_epi64(_mm256_castsi256_si128(i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(indices + c + 4),
                        _mm256_cvtepi32_epi64(_mm256_extracti128_si256(i, 1)));
  }
}

FASTCONV_AVX2 void pool_pixels_cl_avx2(const Pool2dGeometry& g, const float* input, float* output,
                                       int64_t* indices, int64_t begin, int64_t end) {
  const int64_t C = g.channels;
  // At most min(kernel, input) taps per dimension lie inside the input.
  std::vector<Tap> taps(std::min(g.kernel_h, g.in_h) * std::min(g.kernel_w, g.in_w));
  const bool tap_major = C > 32 && C % 8 == 0;
  std::vector<int32_t> index_buffer(tap_major ? C : 0);
  const __m256i tail_mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(C % 8)),
                                               _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  for (int64_t position = begin; position < end; ++position) {
    const auto [n, rows, cols] = pixel_window(g, position);
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

}  // namespace

void pool_planes_nchw_f32_avx2(const Pool2dGeometry& g, const float* input, float* output,
                               int64_t* indices, int64_t begin, int64_t end) {
  // Column stride and window width as template arguments: the common ones fully unrolled.
  using Planes = void (*)(const Pool2dGeometry&, const float*, float*, int64_t*, int64_t, int64_t);
  Planes planes = nullptr;
  if (g.stride_w == 1) {
    planes = g.kernel_w == 2 ? pool_planes_nchw_avx2<1, 2>
        : g.kernel_w == 3    ? pool_planes_nchw_avx2<1, 3>
                             : pool_planes_nchw_avx2<1, 0>;
  } else if (g.stride_w == 2) {
    planes = g.kernel_w == 2 ? pool_planes_nchw_avx2<2, 2>
        : g.kernel_w == 3    ? pool_planes_nchw_avx2<2, 3>
                             : pool_planes_nchw_avx2<2, 0>;
  }
  if (planes == nullptr) {
    pool_planes_nchw_f32_portable(g, input, output, indices, begin, end);
    return;
  }
  planes(g, input, output, indices, begin, end);
}

void pool_pixels_cl_f32_avx2(const Pool2dGeometry& g, const float* input, float* output,
                             int64_t* indices, int64_t begin, int64_t end) {
  pool_pixels_cl_avx2(g, input, output, indices, begin, end);
}
#endif

}  // namespace fastconv::cpu
