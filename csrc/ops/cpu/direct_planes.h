// The zero-padded input planes the direct kernels read (direct_conv2d.cpp, direct_weight_
// backward.cpp): each input channel copied once into stride_h x stride_w phase planes (one for
// stride 1) on a grid of output pixels, so that tap t of output pixel q reads plane[q +
// tap_offsets[t]] for every pixel and the kernels need no bounds checks and no im2col.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../shape_checks.h"

namespace fastconv::cpu {

constexpr int64_t kMaxDirectStride = 4;

// The grain of the direct kernels' parallel loops: at least this many floats copied, or
// multiply-adds, per task, so that a small convolution runs on the calling thread (starting the
// thread team costs microseconds, more than a 16-channel 8x8 layer's whole work).
constexpr int64_t kMinFloatsPerTask = 16 * 1024;
constexpr int64_t kMinMultiplyAddsPerTask = 256 * 1024;

inline int64_t grain_for(int64_t per_item, int64_t minimum) {
  return std::max<int64_t>(1, minimum / std::max<int64_t>(per_item, 1));
}

// The residues of kernel_offset * dilation modulo stride that one axis's taps read: each gets a
// phase plane, the others are never copied (a dilated or 1x1 strided kernel reads only some).
struct AxisPhases {
  int64_t count = 0;
  int64_t index_of[kMaxDirectStride];  // residue -> phase, or -1
  int64_t residue[kMaxDirectStride];   // phase -> residue
  int64_t halo = 0;                    // the largest tap offset in phase rows / columns

  AxisPhases(int64_t kernel, int64_t dilation, int64_t stride);
};

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
};

} // namespace fastconv::cpu
