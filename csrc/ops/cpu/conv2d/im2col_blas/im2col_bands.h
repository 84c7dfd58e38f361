// im2col and its inverse (col2im, as a gather) for one group of one image, on a band of output
// rows, for any dtype: the plain path that the BLAS GEMMs of im2col_blas.cpp read.
//
// Column matrix layout (row-major): one row per (channel, kernel row, kernel column), one column
// per output pixel of the band [oh_begin, oh_end). Working on bands keeps the workspace bounded
// however large the image is.
#pragma once

#include <ATen/OpMathType.h>

#include <algorithm>

#include "ops/cpu/common.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"
#include "ops/geometry.h"

namespace fastconv::cpu {

template <typename T>
void im2col(const T* image, int64_t channels, const Conv2dGeometry& g, int64_t oh_begin,
            int64_t oh_end, T* columns) {
  const int64_t band = (oh_end - oh_begin) * g.out_w;
  const int64_t rows = channels * g.kernel_h * g.kernel_w;
  parallel_for(0, rows, grain_for(band, kMinFloatsPerTask), [&](int64_t begin, int64_t end) {
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

// col2im as a gather: image += the sum, for each input pixel, of the column entries that read it
// (output rows [oh_begin, oh_end)), added in (kernel row, kernel column) order into an
// accumulator row and then to the pixel, one channel per task: deterministic. Each input row
// takes the kernel rows that reach it (one division per row and kernel row), and each kernel
// column a stride of output columns: no division per pixel.
template <typename T>
void col2im_gather(const T* columns, int64_t channels, const Conv2dGeometry& g, int64_t oh_begin,
                   int64_t oh_end, T* image) {
  using acc_t = at::opmath_type<T>;
  const int64_t band = (oh_end - oh_begin) * g.out_w;
  // Input rows read by output rows [oh_begin, oh_end).
  const int64_t ih_begin = std::max<int64_t>(0, oh_begin * g.stride_h - g.pad_h);
  const int64_t ih_end = std::min<int64_t>(
      g.in_h, (oh_end - 1) * g.stride_h - g.pad_h + (g.kernel_h - 1) * g.dilation_h + 1);
  parallel_for(0, channels, 1, [&](int64_t begin, int64_t end) {
    const Workspace<acc_t> sums(g.in_w);
    for (int64_t c = begin; c < end; ++c) {
      const T* channel_columns = columns + c * g.kernel_h * g.kernel_w * band;
      for (int64_t ih = ih_begin; ih < ih_end; ++ih) {
        std::fill_n(sums.data(), g.in_w, acc_t(0));
        for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
          const int64_t th = ih + g.pad_h - kh * g.dilation_h;
          if (th < 0 || th % g.stride_h != 0) continue;
          const int64_t oh = th / g.stride_h;
          if (oh < oh_begin || oh >= oh_end) continue;
          const T* row = channel_columns + kh * g.kernel_w * band + (oh - oh_begin) * g.out_w;
          for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
            // Output column ow reads input column ow * stride + offset.
            const int64_t offset = kw * g.dilation_w - g.pad_w;
            const auto [ow_begin, ow_end] = taps_inside(offset, g.stride_w, g.in_w, g.out_w);
            const T* entries = row + kw * band;
            for (int64_t ow = ow_begin; ow < ow_end; ++ow) {
              sums[ow * g.stride_w + offset] += static_cast<acc_t>(entries[ow]);
            }
          }
        }
        T* pixels = image + (c * g.in_h + ih) * g.in_w;
        for (int64_t iw = 0; iw < g.in_w; ++iw) {
          pixels[iw] = static_cast<T>(static_cast<acc_t>(pixels[iw]) + sums[iw]);
        }
      }
    }
  });
}

}  // namespace fastconv::cpu
