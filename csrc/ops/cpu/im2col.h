// im2col and its inverse for one group of one image, on a band of output rows; and im2col packed
// for packed_gemm.h, straight or transposed.
//
// Column matrix layout (row-major): one row per (channel, kernel row, kernel column), one column
// per output pixel of the band [oh_begin, oh_end). Working on bands keeps the workspace bounded
// however large the image is.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../shape_checks.h"
#include "packed_gemm.h"

namespace fastconv::cpu {

template <typename T>
void im2col(const T* image, int64_t channels, const Conv2dGeometry& g, int64_t oh_begin,
            int64_t oh_end, T* columns) {
  const int64_t band = (oh_end - oh_begin) * g.out_w;
  const int64_t rows = channels * g.kernel_h * g.kernel_w;
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(band, 1)),
                   [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t kw = row % g.kernel_w;
      const int64_t kh = (row / g.kernel_w) % g.kernel_h;
      const T* plane = image + (row / (g.kernel_w * g.kernel_h)) * g.in_plane();
      T* out = columns + row * band;
      for (int64_t oh = oh_begin; oh < oh_end; ++oh, out += g.out_w) {
        const int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
        if (ih < 0 || ih >= g.in_h) {
          std::fill_n(out, g.out_w, T(0));
          continue;
        }
        const T* in_row = plane + ih * g.in_w;
        const int64_t iw0 = kw * g.dilation_w - g.pad_w;
        if (g.stride_w == 1 && iw0 >= 0 && iw0 + g.out_w <= g.in_w) {
          std::copy_n(in_row + iw0, g.out_w, out);  // the whole row lies inside the image
          continue;
        }
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const int64_t iw = iw0 + ow * g.stride_w;
          out[ow] = (iw >= 0 && iw < g.in_w) ? in_row[iw] : T(0);
        }
      }
    }
  });
}

// Adds to `image` (channels x in_h x in_w) every column entry of the band that was read from each
// pixel. Each pixel gathers its own sum, so no two threads write the same element.
template <typename T>
void col2im_gather(const T* columns, int64_t channels, const Conv2dGeometry& g, int64_t oh_begin,
                   int64_t oh_end, T* image) {
  using acc_t = at::opmath_type<T>;
  const int64_t band = (oh_end - oh_begin) * g.out_w;
  // Input rows read by output rows [oh_begin, oh_end).
  const int64_t ih_begin = std::max<int64_t>(0, oh_begin * g.stride_h - g.pad_h);
  const int64_t ih_end = std::min<int64_t>(
      g.in_h, (oh_end - 1) * g.stride_h - g.pad_h + (g.kernel_h - 1) * g.dilation_h + 1);
  at::parallel_for(0, channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const T* channel_columns = columns + c * g.kernel_h * g.kernel_w * band;
      for (int64_t ih = ih_begin; ih < ih_end; ++ih) {
        for (int64_t iw = 0; iw < g.in_w; ++iw) {
          acc_t sum = 0;
          for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
            const int64_t th = ih + g.pad_h - kh * g.dilation_h;
            if (th < 0 || th % g.stride_h != 0) continue;
            const int64_t oh = th / g.stride_h;
            if (oh < oh_begin || oh >= oh_end) continue;
            const T* row = channel_columns + kh * g.kernel_w * band + (oh - oh_begin) * g.out_w;
            for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
              const int64_t tw = iw + g.pad_w - kw * g.dilation_w;
              if (tw < 0 || tw % g.stride_w != 0) continue;
              const int64_t ow = tw / g.stride_w;
              if (ow >= g.out_w) continue;
              sum += static_cast<acc_t>(row[kw * band + ow]);
            }
          }
          T& pixel = image[(c * g.in_h + ih) * g.in_w + iw];
          pixel = static_cast<T>(static_cast<acc_t>(pixel) + sum);
        }
      }
    }
  });
}

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

// im2col straight into the packed-B order of packed_gemm.h: rows [k0, k0 + kc) of one group's
// column matrix (`group_input` is the group's first channel of image 0), for the output pixels
// that `runs` cover, `count` in all; the columns that pad the last panel are zero. The columns
// never exist as a matrix, only a cache-sized block of them at a time.
inline void pack_columns(const float* group_input, const Conv2dGeometry& g,
                         const std::vector<PixelRun>& runs, int64_t count, int64_t k0, int64_t kc,
                         float* packed) {
  const int64_t taps = g.kernel_h * g.kernel_w;
  const int64_t image_size = g.in_channels * g.in_plane();
  for (int64_t k = 0; k < kc; ++k) {
    const int64_t row = k0 + k;
    const int64_t kh = (row / g.kernel_w) % g.kernel_h, kw = row % g.kernel_w;
    const float* channel = group_input + (row / taps) * g.in_plane();
    for (const PixelRun& run : runs) {
      const float* plane = channel + run.image * image_size;
      float* out = packed + packed_b_offset(k, run.column, kc);
      const int64_t ih = run.oh * g.stride_h - g.pad_h + kh * g.dilation_h;
      if (ih < 0 || ih >= g.in_h) {
        std::fill_n(out, run.length, 0.f);
        continue;
      }
      const float* in_row = plane + ih * g.in_w;
      const int64_t iw0 = run.ow * g.stride_w - g.pad_w + kw * g.dilation_w;
      if (g.stride_w == 1 && iw0 >= 0 && iw0 + run.length <= g.in_w) {
        // Inside the image: a copy, of constant size for a whole panel (two vector moves).
        if (run.length == kNR) {
          std::memcpy(out, in_row + iw0, kNR * sizeof(float));
        } else {
          std::memcpy(out, in_row + iw0, run.length * sizeof(float));
        }
        continue;
      }
      if (iw0 >= 0 && iw0 + (run.length - 1) * g.stride_w < g.in_w) {
        for (int64_t t = 0; t < run.length; ++t) {
          out[t] = in_row[iw0 + t * g.stride_w];
        }
        continue;
      }
      for (int64_t t = 0; t < run.length; ++t) {
        const int64_t iw = iw0 + t * g.stride_w;
        out[t] = (iw >= 0 && iw < g.in_w) ? in_row[iw] : 0.f;
      }
    }
    for (int64_t column = count; column % kNR != 0; ++column) {
      packed[packed_b_offset(k, column, kc)] = 0.f;
    }
  }
}

// The transpose of pack_columns, for the weight gradient: b(k, j) = column-matrix row j0 + j at
// output pixel p0 + k of one image, for pixels [p0, p0 + kc) and `count` rows from j0, in
// packed-B order (packed_gemm.h); the columns that pad the last panel are zero.
inline void pack_columns_transposed(const float* group_image, const Conv2dGeometry& g, int64_t p0,
                                    int64_t kc, int64_t j0, int64_t count, float* packed) {
  const int64_t taps = g.kernel_h * g.kernel_w;
  for (int64_t j = 0; j < count; ++j) {
    const int64_t row = j0 + j;
    const int64_t kh = (row / g.kernel_w) % g.kernel_h, kw = row % g.kernel_w;
    const float* plane = group_image + (row / taps) * g.in_plane();
    float* out = packed + packed_b_offset(0, j, kc);
    for (int64_t k = 0; k < kc;) {  // one stretch of an output row at a time
      const int64_t p = p0 + k, oh = p / g.out_w, ow = p % g.out_w;
      const int64_t length = std::min(g.out_w - ow, kc - k);
      const int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
      if (ih < 0 || ih >= g.in_h) {
        for (int64_t t = 0; t < length; ++t) out[(k + t) * kNR] = 0.f;
      } else {
        const float* in_row = plane + ih * g.in_w;
        const int64_t iw0 = ow * g.stride_w - g.pad_w + kw * g.dilation_w;
        for (int64_t t = 0; t < length; ++t) {
          const int64_t iw = iw0 + t * g.stride_w;
          out[(k + t) * kNR] = (iw >= 0 && iw < g.in_w) ? in_row[iw] : 0.f;
        }
      }
      k += length;
    }
  }
  for (int64_t j = count; j % kNR != 0; ++j) {
    float* out = packed + packed_b_offset(0, j, kc);
    for (int64_t k = 0; k < kc; ++k) out[k * kNR] = 0.f;
  }
}

} // namespace fastconv::cpu
