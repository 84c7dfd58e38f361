// im2col for the packed float GEMM (packed_gemm.h): the columns of one group written straight into
// the packed-B panel order, a depth block and a block of output pixels at a time, so that the
// column matrix never exists whole. Straight for the forward, transposed for the weight gradient.
#pragma once

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "../shape_checks.h"
#include "im2col_bands.h"
#include "packed_gemm.h"

namespace fastconv::cpu {

// A stretch of a block's output pixels that lies in one output row of one image and in one B
// panel: `length` pixels from (image, oh, ow), which are the block's columns from `column` on.
struct PixelRun {
  int64_t image, oh, ow, length, column;
};

// The runs of pixels [first, first + count) of the batch's output pixels, numbered image by image
// and row by row (so that small images can share a GEMM).
inline std::vector<PixelRun> pixel_runs(const Conv2dGeometry& g, int64_t first, int64_t count) {
  std::vector<PixelRun> runs;
  for (int64_t column = 0; column < count;) {
    const int64_t q = first + column;
    const int64_t p = q % g.out_plane(), ow = p % g.out_w;
    const int64_t length = std::min({g.out_w - ow, count - column, kNR - column % kNR});
    runs.push_back({q / g.out_plane(), p / g.out_w, ow, length, column});
    column += length;
  }
  return runs;
}

// Copies / zeroes n floats, n <= kNR (a run never passes its panel), without a library call:
// with small images most runs are a few pixels long, and a memcpy or memset call per run cost more
// than the GEMM. Two fixed-size moves, overlapping where n is not a power of two.
inline void copy_run(float* out, const float* in, int64_t n) {
  if (n >= 8) {
    std::memcpy(out, in, 8 * sizeof(float));
    std::memcpy(out + n - 8, in + n - 8, 8 * sizeof(float));
  } else if (n >= 4) {
    std::memcpy(out, in, 4 * sizeof(float));
    std::memcpy(out + n - 4, in + n - 4, 4 * sizeof(float));
  } else {
    if (n > 0) out[0] = in[0];
    if (n > 1) out[1] = in[1];
    if (n > 2) out[2] = in[2];
  }
}

inline void zero_run(float* out, int64_t n) {
  static constexpr float kZeros[8] = {};
  if (n >= 8) {
    std::memcpy(out, kZeros, 8 * sizeof(float));
    std::memcpy(out + n - 8, kZeros, 8 * sizeof(float));
  } else if (n >= 4) {
    std::memcpy(out, kZeros, 4 * sizeof(float));
    std::memcpy(out + n - 4, kZeros, 4 * sizeof(float));
  } else {
    if (n > 0) out[0] = 0.f;
    if (n > 1) out[1] = 0.f;
    if (n > 2) out[2] = 0.f;
  }
}

// im2col straight into the packed-B order of packed_gemm.h: rows [k0, k0 + kc) of one group's
// column matrix (`group_input` is the group's first channel of image 0), for the output pixels
// that `runs` cover, `count` in all; the columns that pad the last panel are zero. The columns
// never exist as a matrix, only a cache-sized block of them at a time.
inline void pack_columns(const float* group_input, const Conv2dGeometry& g,
                         const std::vector<PixelRun>& runs, int64_t count, int64_t k0, int64_t kc,
                         float* packed) {
  const int64_t taps = g.kernel_h * g.kernel_w;
  const int64_t image_size = g.in_channels * g.in_plane();
  // The row's (channel, kernel row, kernel column), stepped rather than divided out per row: a
  // 64-bit division costs tens of cycles, which at small images outweighed the packing itself.
  int64_t c = k0 / taps, kh = (k0 / g.kernel_w) % g.kernel_h, kw = k0 % g.kernel_w;
  for (int64_t k = 0; k < kc; ++k, kw = kw + 1 < g.kernel_w ? kw + 1 : 0) {
    if (k > 0 && kw == 0 && ++kh == g.kernel_h) {
      kh = 0;
      ++c;
    }
    const float* channel = group_input + c * g.in_plane();
    for (const PixelRun& run : runs) {
      const float* plane = channel + run.image * image_size;
      float* out = packed + packed_b_offset(k, run.column, kc);
      const int64_t ih = run.oh * g.stride_h - g.pad_h + kh * g.dilation_h;
      if (ih < 0 || ih >= g.in_h) {
        zero_run(out, run.length);
        continue;
      }
      const float* in_row = plane + ih * g.in_w;
      const int64_t iw0 = run.ow * g.stride_w - g.pad_w + kw * g.dilation_w;
      if (g.stride_w == 1 && iw0 >= 0 && iw0 + run.length <= g.in_w) {
        // Inside the image: a copy, of constant size for a whole panel (two vector moves).
        if (run.length == kNR) {
          std::memcpy(out, in_row + iw0, kNR * sizeof(float));
        } else {
          copy_run(out, in_row + iw0, run.length);
        }
        continue;
      }
      // Taps [inside_begin, inside_end) of the run lie inside the row; those before and after
      // read the padding. Three plain loops rather than a test per element: at small images
      // (LeNet, 8x8 planes) most runs touch a border, and that test cost more than the GEMM.
      const auto [inside_begin, inside_end] = taps_inside(iw0, g.stride_w, g.in_w, run.length);
      zero_run(out, inside_begin);
      if (g.stride_w == 1) {
        copy_run(out + inside_begin, in_row + iw0 + inside_begin, inside_end - inside_begin);
      } else {
        for (int64_t t = inside_begin; t < inside_end; ++t) {
          out[t] = in_row[iw0 + t * g.stride_w];
        }
      }
      zero_run(out + inside_end, run.length - inside_end);
    }
    for (int64_t column = count; column % kNR != 0; ++column) {
      packed[packed_b_offset(k, column, kc)] = 0.f;
    }
  }
}

// Row `row` of one group's column matrix (one (channel, kernel row, kernel column)) at output
// pixels [p0, p0 + n) of one image (`group_image` is the group's first channel), contiguous in
// `out`, zero where the window reads padding: the weight gradient's A operand, a copy of input
// row stretches at stride 1.
inline void column_row(const float* group_image, const Conv2dGeometry& g, int64_t row, int64_t p0,
                       int64_t n, float* out) {
  const int64_t taps = g.kernel_h * g.kernel_w;
  const int64_t kh = (row / g.kernel_w) % g.kernel_h, kw = row % g.kernel_w;
  const float* plane = group_image + (row / taps) * g.in_plane();
  int64_t oh = p0 / g.out_w, ow = p0 % g.out_w;
  for (int64_t t = 0; t < n;) {  // one stretch of an output row at a time
    const int64_t length = std::min(n - t, g.out_w - ow);
    float* stretch = out + t;
    const int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
    if (ih < 0 || ih >= g.in_h) {
      std::fill_n(stretch, length, 0.f);
    } else {
      const float* in_row = plane + ih * g.in_w;
      const int64_t iw0 = ow * g.stride_w - g.pad_w + kw * g.dilation_w;
      const auto [begin, end] = taps_inside(iw0, g.stride_w, g.in_w, length);
      std::fill_n(stretch, begin, 0.f);
      if (g.stride_w == 1) {
        if (end - begin <= kNR) {
          copy_run(stretch + begin, in_row + iw0 + begin, end - begin);
        } else {
          std::memcpy(stretch + begin, in_row + iw0 + begin, (end - begin) * sizeof(float));
        }
      } else {
        for (int64_t u = begin; u < end; ++u) stretch[u] = in_row[iw0 + u * g.stride_w];
      }
      std::fill_n(stretch + end, length - end, 0.f);
    }
    t += length;
    ow = 0;
    ++oh;
  }
}

} // namespace fastconv::cpu
