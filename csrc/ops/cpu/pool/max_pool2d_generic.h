// The generic loops of max_pool2d on the CPU, for every dtype and layout: they define the
// semantics (torch's scan order and tie rule, pool_windows.h), run wherever no vector build
// applies, and are what the float32 vector builds (max_pool2d_forward_avx2.cpp,
// max_pool2d_backward_avx2.cpp) fall back to at borders and for indices they do not expect.
#pragma once

#include <ATen/OpMathType.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "ops/cpu/common.h"
#include "ops/cpu/isa.h"
#include "ops/geometry.h"
#include "ops/pool_windows.h"

namespace fastconv::cpu {

// ------------------------------------------------------------------------------------ forward

template <typename acc_t>
constexpr acc_t lowest_value() {
  return std::numeric_limits<acc_t>::has_infinity ? -std::numeric_limits<acc_t>::infinity()
                                                  : std::numeric_limits<acc_t>::lowest();
}

// ------------------------------------------------------------------------------- generic forward

// One output of one plane: the window's maximum and its index, torch's scan.
template <typename scalar_t>
FASTCONV_ALWAYS_INLINE void pool_one(const Pool2dGeometry& g, const scalar_t* x, WindowTaps rows,
                                     int64_t ow, scalar_t* y, int64_t* indices) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto cols = window_taps(ow, g.stride_w, g.pad_w, g.kernel_w, g.dilation_w, g.in_w);
  acc_t best = lowest_value<acc_t>();
  int64_t best_index = rows.begin * g.in_w + cols.begin;
  for (int64_t ih = rows.begin; ih < rows.end; ih += g.dilation_h) {
    for (int64_t iw = cols.begin; iw < cols.end; iw += g.dilation_w) {
      const scalar_t value = x[ih * g.in_w + iw];
      if (replaces_max(value, best)) {
        best = static_cast<acc_t>(value);
        best_index = ih * g.in_w + iw;
      }
    }
  }
  *y = static_cast<scalar_t>(best);
  *indices = best_index;
}

// Always inlined, so that in the AVX2 paths it is compiled for AVX2 too: called from there out of
// line, each call cost as much as a vector block of 8 outputs (ymm state around the call).
template <typename scalar_t>
FASTCONV_ALWAYS_INLINE void pool_row_generic(const Pool2dGeometry& g, const scalar_t* x, int64_t oh,
                                             int64_t ow_begin, int64_t ow_end, scalar_t* y,
                                             int64_t* indices) {
  const auto rows = window_taps(oh, g.stride_h, g.pad_h, g.kernel_h, g.dilation_h, g.in_h);
  for (int64_t ow = ow_begin; ow < ow_end; ++ow) {
    pool_one(g, x, rows, ow, y + oh * g.out_w + ow, indices + oh * g.out_w + ow);
  }
}

// Output pixel `position` of a channels_last batch (pixels numbered image by image, row by row):
// its image and the taps of its window.
struct PixelWindow {
  int64_t image;
  WindowTaps rows, cols;
};

FASTCONV_ALWAYS_INLINE PixelWindow pixel_window(const Pool2dGeometry& g, int64_t position) {
  const int64_t oh = (position / g.out_w) % g.out_h, ow = position % g.out_w;
  return {position / g.out_plane(),
          window_taps(oh, g.stride_h, g.pad_h, g.kernel_h, g.dilation_h, g.in_h),
          window_taps(ow, g.stride_w, g.pad_w, g.kernel_w, g.dilation_w, g.in_w)};
}

// ----------------------------------------------------------------------------------- backward

// An index outside the plane comes from a window with no tap inside the input (dilation and
// padding): it passes no gradient.
FASTCONV_ALWAYS_INLINE bool inside(int64_t index, int64_t size) {
  return static_cast<uint64_t>(index) < static_cast<uint64_t>(size);
}

// Zeroes n elements. glibc's memset (which gcc also makes of a zeroing loop) takes `rep stosb`
// from 2 KiB on, several times slower here (AMD Zen 3) than plain vector stores for the sizes
// this file zeroes, which sit in the L1/L2 cache.
template <typename scalar_t>
FASTCONV_ALWAYS_INLINE void zero_fill(scalar_t* p, int64_t n) {
#if FASTCONV_X86
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

// The scatter of one plane (C = 1 unless kChannelsLast), or of one channels_last image (element (i,
// c) at gx[i * C + c]), restricted to the input rows [row_lo, row_hi): it goes through the output
// rows whose windows reach into them, in order, and adds the gradients whose indices fall in
// them, so that bands of one image can run in parallel and give the same sums as one pass. The
// band is zeroed as it goes, a little ahead of the windows, so that zeroing and sums stay in the
// cache. Returns false, having done part of the work, if an index inside the plane lies outside
// the rows of its window (not one the forward gives, which another band would miss); the caller
// then redoes the image with scatter_all. Out of line: inlined into the op, its loop counters
// were spilled to the stack.
template <typename scalar_t, bool kChannelsLast>
FASTCONV_NOINLINE bool scatter_band(const Pool2dGeometry& g, const scalar_t* gy, const int64_t* s,
                                    scalar_t* gx, int64_t C, int64_t row_lo, int64_t row_hi) {
  if constexpr (!kChannelsLast) {
    C = 1;
  }
  const int64_t W = g.in_w, in_plane = g.in_plane();
  // Zeroing goes ahead by at least 4 KiB at a time (fewer, longer fills).
  const int64_t ahead =
      std::max<int64_t>(1, 4096 / (W * C * static_cast<int64_t>(sizeof(scalar_t))));
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
    if (rows.begin >= rows.end) {  // windows with no row inside the input: indices outside
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
        if (FASTCONV_LIKELY(static_cast<uint64_t>(index - lo) < size)) {
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

// The plain scatter, for any indices: zero, then add each output's gradient at its index (one
// outside the plane, from a window with no tap inside the input, passes no gradient).
template <typename scalar_t>
FASTCONV_NOINLINE void scatter_all(const Pool2dGeometry& g, const scalar_t* gy, const int64_t* s,
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

}  // namespace fastconv::cpu
