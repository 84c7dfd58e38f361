// im2col for the packed float GEMM (packed_gemm.h): the columns of one group written straight into
// the packed-B panel order, a depth block and a block of output pixels at a time, so that the
// column matrix never exists whole. Straight for the forward, transposed for the weight gradient.
#pragma once

#include <algorithm>
#include <ATen/Parallel.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "../shape_checks.h"
#include "isa.h"
#include "im2col_bands.h"
#include "packed_gemm.h"
#include "workspace.h"

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

// The input as the packers read it. A convolution with stride 2 to 4 first has its input split
// into stride_h x stride_w phase planes per channel, plane (ph, pw) holding x[i * s_h + ph]
// [j * s_w + pw] (zero past the image): every column row then reads a plane at stride 1, as
// contiguous copies, where the strided rows were gathered element by element (that cost the
// stride-2 layers half as much again as their GEMM). Larger strides read the input as it is:
// their planes would hold mostly padding.
class InputPlanes {
 public:
  InputPlanes(const Conv2dGeometry& g, const float* x) : g_(g) {
    if (!worth_splitting(g)) {
      data_ = x, height_ = g.in_h, width_ = g.in_w, phases_h_ = phases_w_ = 1;
      return;
    }
    phases_h_ = g.stride_h, phases_w_ = g.stride_w;
    height_ = (g.in_h + phases_h_ - 1) / phases_h_, width_ = (g.in_w + phases_w_ - 1) / phases_w_;
    split_ = std::make_unique<Workspace<float>>(g.batch * g.in_channels * phases_h_ * phases_w_ *
                                                height_ * width_);
    float* out_data = split_->data();
    at::parallel_for(0, g.batch * g.in_channels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t channel = begin; channel < end; ++channel) {
        split_channel(g, x + channel * g.in_plane(),
                      out_data + channel * phases_h_ * phases_w_ * height_ * width_);
      }
    });
    data_ = out_data;
  }

  static bool worth_splitting(const Conv2dGeometry& g) {
    return (g.stride_h > 1 || g.stride_w > 1) && g.stride_h <= kMaxSplitStride &&
        g.stride_w <= kMaxSplitStride &&
        reads_every_phase(g.kernel_h, g.dilation_h, g.pad_h, g.stride_h) &&
        reads_every_phase(g.kernel_w, g.dilation_w, g.pad_w, g.stride_w);
  }

  // Floats a split takes (zero when the input is read as it is).
  static int64_t split_elements(const Conv2dGeometry& g) {
    return worth_splitting(g) ? g.batch * g.in_channels * g.stride_h * g.stride_w *
            ((g.in_h + g.stride_h - 1) / g.stride_h) * ((g.in_w + g.stride_w - 1) / g.stride_w)
                              : 0;
  }

  // Where tap (kh, kw) of input channel c reads: output pixel (oh, ow) of image n reads row
  // oh * stride_h() + row_offset, column ow * stride_w() + col_offset of `plane` + n * image_size().
  struct Tap {
    const float* plane;
    int64_t row_offset, col_offset;
  };
  Tap tap(int64_t c, int64_t kh, int64_t kw) const {
    const int64_t dh = kh * g_.dilation_h - g_.pad_h, dw = kw * g_.dilation_w - g_.pad_w;
    const int64_t ph = floor_mod(dh, phases_h_), pw = floor_mod(dw, phases_w_);
    return {data_ + ((c * phases_h_ + ph) * phases_w_ + pw) * height_ * width_,
            (dh - ph) / phases_h_, (dw - pw) / phases_w_};
  }
  int64_t image_size() const { return g_.in_channels * phases_h_ * phases_w_ * height_ * width_; }
  int64_t height() const { return height_; }
  int64_t width() const { return width_; }
  // The step of a plane's row and column per output row and column: 1 once split.
  int64_t stride_h() const { return g_.stride_h / phases_h_; }
  int64_t stride_w() const { return g_.stride_w / phases_w_; }

 private:
  static constexpr int64_t kMaxSplitStride = 4;

  // Whether the taps of one axis read every phase of its stride: a pointwise or dilated strided
  // convolution reads only some, and copying the others would be wasted.
  static bool reads_every_phase(int64_t kernel, int64_t dilation, int64_t pad, int64_t stride) {
    uint32_t phases = 0;  // stride <= kMaxSplitStride bits
    for (int64_t k = 0; k < kernel && k < stride * stride; ++k) {
      phases |= 1u << ((k * dilation - pad) % stride + stride) % stride;
    }
    return phases == (1u << stride) - 1;
  }

  // One channel's planes: each input row is dealt out, column by column, to the rows of its
  // phase; the rows and columns past the image are zero.
  void split_channel(const Conv2dGeometry& g, const float* in, float* out) const {
    const int64_t plane = height_ * width_;
    std::fill_n(out, phases_h_ * phases_w_ * plane, 0.f);
    for (int64_t ih = 0; ih < g.in_h; ++ih) {
      const float* in_row = in + ih * g.in_w;
      float* row = out + (ih % phases_h_) * phases_w_ * plane + (ih / phases_h_) * width_;
      if (phases_w_ == 2) {
        float* even = row;
        float* odd = row + plane;
        const int64_t pairs = g.in_w / 2;
        FASTCONV_NO_OVERLAP
        for (int64_t j = 0; j < pairs; ++j) {
          even[j] = in_row[2 * j];
          odd[j] = in_row[2 * j + 1];
        }
        if (g.in_w % 2 != 0) even[pairs] = in_row[g.in_w - 1];
        continue;
      }
      for (int64_t iw = 0; iw < g.in_w; ++iw) {
        row[(iw % phases_w_) * plane + iw / phases_w_] = in_row[iw];
      }
    }
  }
  static int64_t floor_mod(int64_t a, int64_t m) { return ((a % m) + m) % m; }

  const Conv2dGeometry& g_;
  const float* data_;
  int64_t height_, width_, phases_h_, phases_w_;
  std::unique_ptr<Workspace<float>> split_;
};

// im2col straight into the packed-B order of packed_gemm.h: rows [k0, k0 + kc) of the column
// matrix of the group whose first input channel is `first_channel`, for the output pixels that
// `runs` cover, `count` in all; the columns that pad the last panel are zero. The columns never
// exist as a matrix, only a cache-sized block of them at a time.
inline void pack_columns(const InputPlanes& input, int64_t first_channel, const Conv2dGeometry& g,
                         const std::vector<PixelRun>& runs, int64_t count, int64_t k0, int64_t kc,
                         float* packed) {
  const int64_t taps = g.kernel_h * g.kernel_w;
  const int64_t stride_h = input.stride_h(), stride_w = input.stride_w();
  // The row's (channel, kernel row, kernel column), stepped rather than divided out per row: a
  // 64-bit division costs tens of cycles, which at small images outweighed the packing itself.
  int64_t c = k0 / taps, kh = (k0 / g.kernel_w) % g.kernel_h, kw = k0 % g.kernel_w;
  for (int64_t k = 0; k < kc; ++k, kw = kw + 1 < g.kernel_w ? kw + 1 : 0) {
    if (k > 0 && kw == 0 && ++kh == g.kernel_h) {
      kh = 0;
      ++c;
    }
    const auto tap = input.tap(first_channel + c, kh, kw);
    for (const PixelRun& run : runs) {
      float* out = packed + packed_b_offset(k, run.column, kc);
      const int64_t ih = run.oh * stride_h + tap.row_offset;
      if (ih < 0 || ih >= input.height()) {
        zero_run(out, run.length);
        continue;
      }
      const float* in_row = tap.plane + run.image * input.image_size() + ih * input.width();
      const int64_t iw0 = run.ow * stride_w + tap.col_offset;
      if (stride_w == 1 && iw0 >= 0 && iw0 + run.length <= input.width()) {
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
      const auto [inside_begin, inside_end] =
          taps_inside(iw0, stride_w, input.width(), run.length);
      zero_run(out, inside_begin);
      if (stride_w == 1) {
        copy_run(out + inside_begin, in_row + iw0 + inside_begin, inside_end - inside_begin);
      } else {
        for (int64_t t = inside_begin; t < inside_end; ++t) {
          out[t] = in_row[iw0 + t * stride_w];
        }
      }
      zero_run(out + inside_end, run.length - inside_end);
    }
    for (int64_t column = count; column % kNR != 0; ++column) {
      packed[packed_b_offset(k, column, kc)] = 0.f;
    }
  }
}

// Row `row` (one (channel, kernel row, kernel column)) of the column matrix of the group whose
// first input channel is `first_channel`, at output pixels [p0, p0 + n) of image `image`,
// contiguous in `out`, zero where the window reads padding: the weight gradient's A operand,
// copies of input row stretches.
inline void column_row(const InputPlanes& input, int64_t first_channel, const Conv2dGeometry& g,
                       int64_t image, int64_t row, int64_t p0, int64_t n, float* out) {
  const int64_t taps = g.kernel_h * g.kernel_w;
  const auto tap = input.tap(first_channel + row / taps, (row / g.kernel_w) % g.kernel_h,
                             row % g.kernel_w);
  const float* plane = tap.plane + image * input.image_size();
  const int64_t stride_h = input.stride_h(), stride_w = input.stride_w();
  int64_t oh = p0 / g.out_w, ow = p0 % g.out_w;
  for (int64_t t = 0; t < n;) {  // one stretch of an output row at a time
    const int64_t length = std::min(n - t, g.out_w - ow);
    float* stretch = out + t;
    const int64_t ih = oh * stride_h + tap.row_offset;
    if (ih < 0 || ih >= input.height()) {
      std::fill_n(stretch, length, 0.f);
    } else {
      const float* in_row = plane + ih * input.width();
      const int64_t iw0 = ow * stride_w + tap.col_offset;
      const auto [begin, end] = taps_inside(iw0, stride_w, input.width(), length);
      std::fill_n(stretch, begin, 0.f);
      if (stride_w == 1) {
        if (end - begin <= kNR) {
          copy_run(stretch + begin, in_row + iw0 + begin, end - begin);
        } else {
          std::memcpy(stretch + begin, in_row + iw0 + begin, (end - begin) * sizeof(float));
        }
      } else {
        for (int64_t u = begin; u < end; ++u) stretch[u] = in_row[iw0 + u * stride_w];
      }
      std::fill_n(stretch + end, length - end, 0.f);
    }
    t += length;
    ow = 0;
    ++oh;
  }
}

} // namespace fastconv::cpu
