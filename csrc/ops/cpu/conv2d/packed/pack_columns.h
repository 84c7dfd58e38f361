// im2col for the packed float GEMM (packed_gemm.h): the columns of one group written straight into
// the packed-B panel order, a depth block and a block of output pixels at a time, so that the
// column matrix never exists whole (pack_columns, for the forward), and the column matrix's rows
// as plain runs (column_row, the A operand of the weight gradient).
#pragma once

#include <algorithm>

#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "ops/cpu/common.h"
#include "ops/cpu/conv2d/packed/packed_gemm.h"
#include "ops/cpu/conv2d/phase_planes.h"
#include "ops/cpu/isa.h"
#include "ops/cpu/microkernels/f32_gather.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"
#include "ops/geometry.h"

namespace fastconv::cpu {

// Copies n floats, n <= kNR, without a library call: with small images most stretches are a few
// pixels long, and a memcpy call per stretch cost more than the GEMM. Two fixed-size moves,
// overlapping where n is not a power of two.
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
    height_ = ceil_div(g.in_h, phases_h_), width_ = ceil_div(g.in_w, phases_w_);
    split_ = std::make_unique<Workspace<float>>(g.batch * g.in_channels * phases_h_ * phases_w_ *
                                                height_ * width_);
    float* out_data = split_->data();
    parallel_for(0, g.batch * g.in_channels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t channel = begin; channel < end; ++channel) {
        split_channel(g, x + channel * g.in_plane(),
                      out_data + channel * phases_h_ * phases_w_ * height_ * width_);
      }
    });
    data_ = out_data;
  }

  static bool worth_splitting(const Conv2dGeometry& g) {
    return g.is_strided() && g.stride_h <= kMaxSplitStride && g.stride_w <= kMaxSplitStride &&
        reads_every_phase(g.kernel_h, g.dilation_h, g.pad_h, g.stride_h) &&
        reads_every_phase(g.kernel_w, g.dilation_w, g.pad_w, g.stride_w);
  }

  // Floats a split takes (zero when the input is read as it is).
  static int64_t split_elements(const Conv2dGeometry& g) {
    return worth_splitting(g) ? g.batch * g.in_channels * g.stride_h * g.stride_w *
            ceil_div(g.in_h, g.stride_h) * ceil_div(g.in_w, g.stride_w)
                              : 0;
  }

  // Where tap (kh, kw) of input channel c reads: output pixel (oh, ow) of image n reads row
  // oh * stride_h() + row_offset, column ow * stride_w() + col_offset of `plane` + n *
  // image_size().
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

  // One channel's phase planes, plane (ph, pw) holding x[i * s_h + ph][j * s_w + pw].
  void split_channel(const Conv2dGeometry& g, const float* in, float* out) const {
    for (int64_t ph = 0; ph < phases_h_; ++ph) {
      for (int64_t pw = 0; pw < phases_w_; ++pw) {
        fill_phase_plane(in, g.in_h, g.in_w, ph, pw, phases_h_, phases_w_, height_, width_, width_,
                         out + (ph * phases_w_ + pw) * height_ * width_);
      }
    }
  }
  static int64_t floor_mod(int64_t a, int64_t m) { return ((a % m) + m) % m; }

  const Conv2dGeometry& g_;
  const float* data_;
  int64_t height_, width_, phases_h_, phases_w_;
  std::unique_ptr<Workspace<float>> split_;
};

static_assert(kGatherLanes == kNR, "a gather fills one packed-B panel");

// Where a block of output pixels reads each tap, for pack_columns: per tap and 16-pixel panel,
// the offset of each pixel's input value from the tap's plane of the block's first image, the
// lanes that read inside the image (the others, padding and the columns past the block, are
// zero), and whether the 16 lie side by side (one vector copy instead of a gather). The same for
// every input channel, so it is built once per block and serves the whole depth.
class TapOffsets {
 public:
  TapOffsets(const InputPlanes& input, const Conv2dGeometry& g) : input_(input), g_(g) {}

  // The pixels [first, first + count) of the batch's output pixels (image after image, so that a
  // block may span small images). A task of the same block (another block of weight rows) keeps
  // the offsets it has.
  void assign(int64_t first, int64_t count) {
    if (first == first_ && count == count_) return;
    first_ = first, count_ = count;
    const int64_t taps = g_.kernel_h * g_.kernel_w;
    panels_ = ceil_div(count, kNR);
    first_image_ = first / g_.out_plane();
    offsets_.assign(taps * panels_ * kNR, 0);
    masks_.assign(taps * panels_, 0);
    consecutive_.assign(taps * panels_, 0);
    // Each pixel's image (relative to the first), output row and column: divided out once.
    pixel_.resize(count);
    for (int64_t j = 0; j < count; ++j) {
      const int64_t q = first + j, p = q % g_.out_plane();
      pixel_[j] = {q / g_.out_plane() - first_image_, p / g_.out_w, p % g_.out_w};
    }
    for (int64_t kh = 0; kh < g_.kernel_h; ++kh) {
      for (int64_t kw = 0; kw < g_.kernel_w; ++kw) {
        const auto tap = input_.tap(0, kh, kw);
        const int64_t t = kh * g_.kernel_w + kw;
        for (int64_t j = 0; j < count; ++j) {
          const int64_t ih = pixel_[j].oh * input_.stride_h() + tap.row_offset;
          const int64_t iw = pixel_[j].ow * input_.stride_w() + tap.col_offset;
          if (ih < 0 || ih >= input_.height() || iw < 0 || iw >= input_.width()) continue;
          const int64_t panel = t * panels_ + j / kNR;
          offsets_[panel * kNR + j % kNR] =
              pixel_[j].image * input_.image_size() + ih * input_.width() + iw;
          masks_[panel] |= static_cast<uint16_t>(1u << (j % kNR));
        }
        for (int64_t panel = t * panels_; panel < (t + 1) * panels_; ++panel) {
          const int64_t* lanes = &offsets_[panel * kNR];
          bool side_by_side = masks_[panel] == 0xFFFF;
          for (int64_t j = 1; j < kNR && side_by_side; ++j) {
            side_by_side = lanes[j] == lanes[0] + j;
          }
          consecutive_[panel] = side_by_side;
        }
      }
    }
  }

  int64_t panels() const { return panels_; }
  int64_t first_image() const { return first_image_; }
  const int64_t* offsets(int64_t tap) const { return &offsets_[tap * panels_ * kNR]; }
  const uint16_t* masks(int64_t tap) const { return &masks_[tap * panels_]; }
  const uint8_t* consecutive(int64_t tap) const { return &consecutive_[tap * panels_]; }

 private:
  struct Pixel {
    int64_t image, oh, ow;
  };
  const InputPlanes& input_;
  const Conv2dGeometry& g_;
  int64_t first_ = -1, count_ = -1, panels_ = 0, first_image_ = 0;
  std::vector<int64_t> offsets_;
  std::vector<uint16_t> masks_;
  std::vector<uint8_t> consecutive_;
  std::vector<Pixel> pixel_;
};

// im2col straight into the packed-B order of packed_gemm.h: rows [k0, k0 + kc) of the column
// matrix of the group whose first input channel is `first_channel`, for the block of output
// pixels `taps` was assigned; the columns that pad the last panel are zero. The columns never
// exist as a matrix, only a cache-sized block of them at a time.
inline void pack_columns(const InputPlanes& input, int64_t first_channel, const Conv2dGeometry& g,
                         const TapOffsets& taps, GatherPanels gather, int64_t k0, int64_t kc,
                         float* packed) {
  const int64_t tap_count = g.kernel_h * g.kernel_w;
  // The row's (channel, kernel row, kernel column), stepped rather than divided out per row: a
  // 64-bit division costs tens of cycles, which at small images outweighed the packing itself.
  int64_t c = k0 / tap_count, kh = (k0 / g.kernel_w) % g.kernel_h, kw = k0 % g.kernel_w;
  for (int64_t k = 0; k < kc; ++k, kw = kw + 1 < g.kernel_w ? kw + 1 : 0) {
    if (k > 0 && kw == 0 && ++kh == g.kernel_h) {
      kh = 0;
      ++c;
    }
    const float* base =
        input.tap(first_channel + c, kh, kw).plane + taps.first_image() * input.image_size();
    const int64_t t = kh * g.kernel_w + kw;
    gather(base, taps.offsets(t), taps.masks(t), taps.consecutive(t), taps.panels(),
           packed + k * kNR, kc * kNR);
  }
}

// Row `row` (one (channel, kernel row, kernel column)) of the column matrix of the group whose
// first input channel is `first_channel`, at output pixels [p0, p0 + n) of image `image`,
// contiguous in `out`, zero where the window reads padding: the weight gradient's A operand,
// copies of input row stretches.
inline void column_row(const InputPlanes& input, int64_t first_channel, const Conv2dGeometry& g,
                       int64_t image, int64_t row, int64_t p0, int64_t n, float* out) {
  const int64_t taps = g.kernel_h * g.kernel_w;
  const auto tap =
      input.tap(first_channel + row / taps, (row / g.kernel_w) % g.kernel_h, row % g.kernel_w);
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

}  // namespace fastconv::cpu
