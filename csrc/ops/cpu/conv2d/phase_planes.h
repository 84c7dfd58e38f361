// Input planes copied into the layout a kernel reads at stride 1 and without bounds checks: the
// one builder (fill_phase_plane) behind the packed path's phase planes (packed/pack_columns.h),
// the direct path's zero-padded phase planes (DirectPlanes, below), which the depthwise path
// (depthwise/depthwise.cpp) fills one channel at a time, and its zero-padded plane.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/cpu/common.h"
#include "ops/geometry.h"

namespace fastconv::cpu {

// A rows x cols plane (row stride ld) cut from an in_h x in_w input plane:
// out[i * ld + j] = in[i * stride_h + row0][j * stride_w + col0], zero where that lies outside
// the input. With a stride, each phase (row0, col0 modulo the stride) is a plane of its own.
// Without write_zeros, only the values inside the input are written: the caller's plane holds
// zeros everywhere else already (zeroed once, then refilled plane after plane).
FASTCONV_ALWAYS_INLINE void fill_phase_plane(const float* in, int64_t in_h, int64_t in_w,
                                             int64_t row0, int64_t col0, int64_t stride_h,
                                             int64_t stride_w, int64_t rows, int64_t cols,
                                             int64_t ld, float* out, bool write_zeros = true) {
  // Plane columns [begin, end) read inside the input.
  const auto [begin, end] = taps_inside(col0, stride_w, in_w, cols);
  for (int64_t i = 0; i < rows; ++i) {
    float* row = out + i * ld;
    const int64_t ih = i * stride_h + row0;
    if (ih < 0 || ih >= in_h) {
      if (write_zeros) std::fill_n(row, cols, 0.f);
      continue;
    }
    const float* source = in + ih * in_w + (col0 + begin * stride_w);
    if (write_zeros) std::fill_n(row, begin, 0.f);
    if (stride_w == 1) {  // short rows: an inlined copy, not a call to memcpy per row
      std::copy_n(source, end - begin, row + begin);
    } else if (stride_w == 2) {  // a constant stride, which the compiler vectorizes
      for (int64_t j = 0; j < end - begin; ++j) row[begin + j] = source[2 * j];
    } else {
      for (int64_t j = 0; j < end - begin; ++j) row[begin + j] = source[j * stride_w];
    }
    if (write_zeros) std::fill_n(row + end, cols - end, 0.f);
  }
}

// The largest stride the direct kernels' phase planes take (DirectPlanes, below).
constexpr int64_t kMaxDirectStride = 4;

// The residues of kernel_offset * dilation modulo stride that one axis's taps read: each gets a
// phase plane, the others are never copied (a dilated or 1x1 strided kernel reads only some).
struct AxisPhases {
  int64_t count = 0;
  int64_t index_of[kMaxDirectStride];  // residue -> phase, or -1
  int64_t residue[kMaxDirectStride];   // phase -> residue
  int64_t halo = 0;                    // the largest tap offset in phase rows / columns

  AxisPhases(int64_t kernel, int64_t dilation, int64_t stride);
};

// The direct kernels' planes (direct/): each input channel copied once into stride_h x stride_w
// zero-padded phase planes (one for stride 1) on a grid of output pixels, so that tap t of output
// pixel q reads plane[q + tap_offsets[t]] for every pixel.
// Output pixel (oh, ow) is grid pixel q = oh * grid_w + ow; the grid's last cols.halo columns lie
// outside the output (computed and dropped by the forward, zero grad_output for the weight
// gradient). Plane (phase_h, phase_w) of an input channel has plane_rows x grid_w values: row i
// column j holds x[i * stride_h + residue_h - pad_h][j * stride_w + residue_w - pad_w], zero
// outside the image.
struct DirectPlanes {
  AxisPhases rows, cols;
  int64_t grid_w, plane_rows;
  int64_t channel_stride;  // floats of one input channel's planes
  // Floats of the whole batch's planes and a zero tail: the kernels read up to kTailPixels and a
  // row's halo past the last plane (for pixels they drop).
  int64_t elements;
  std::vector<int64_t> tap_offsets;  // per tap (kernel row, kernel column)

  static constexpr int64_t kTailPixels = 64;

  explicit DirectPlanes(const Conv2dGeometry& g);

  // Fills `planes` (elements floats) from the input x, all images and channels.
  void fill(const Conv2dGeometry& g, const float* x, float* planes) const;
  // Fills one input channel's planes (channel_stride floats) from its in_h x in_w plane; every
  // value is written.
  void fill_channel(const Conv2dGeometry& g, const float* in, float* planes) const;
  // Floats past a channel's planes that the kernels read (for pixels they drop): a zero tail.
  int64_t tail() const { return kTailPixels + cols.halo; }
};

}  // namespace fastconv::cpu
