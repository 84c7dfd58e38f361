// The geometry of each op's call, as the frontends' checks (shape_checks.h) derive it: plain
// structs with no torch types, so that the kernels that take them need no torch headers.
#pragma once

#include <array>
#include <cstdint>

namespace fastconv {

struct Conv2dGeometry {
  int64_t batch, in_channels, in_h, in_w;
  int64_t out_channels, kernel_h, kernel_w, out_h, out_w;
  int64_t stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups;

  int64_t in_channels_per_group() const { return in_channels / groups; }
  int64_t out_channels_per_group() const { return out_channels / groups; }
  int64_t in_plane() const { return in_h * in_w; }
  int64_t out_plane() const { return out_h * out_w; }
  // Rows of one group's im2col matrix: one per (input channel, kernel row, kernel column).
  int64_t column_rows() const { return in_channels_per_group() * kernel_h * kernel_w; }
  bool is_strided() const { return stride_h > 1 || stride_w > 1; }
  // A 1x1, stride-1, unpadded convolution can use the image itself as its column matrix.
  bool is_pointwise() const {
    return kernel_h == 1 && kernel_w == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 &&
        pad_w == 0;
  }
};

// conv_transpose2d(input, weight) is the input gradient of the conv2d whose output has input's
// shape: `conv` is that conv2d (its input has the transposed convolution's output shape, its
// weight is `weight` as it is). Where output_padding reaches stride (allowed below dilation), that
// conv2d's output is taller or wider than `input` by extra_h / extra_w zero rows / columns.
// `conv` is filled in only where the result is non-empty.
struct ConvTranspose2dGeometry {
  std::array<int64_t, 4> output_size;
  Conv2dGeometry conv;
  int64_t extra_h, extra_w;
  bool cast_bias;  // torch's slow CPU kernel takes a bias of another dtype and casts it
};

struct Pool2dGeometry {
  int64_t batch, channels, in_h, in_w, out_h, out_w;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;

  int64_t in_plane() const { return in_h * in_w; }
  int64_t out_plane() const { return out_h * out_w; }
};

// Average pooling: Pool2dGeometry without dilation (1), and how windows are divided.
struct AvgPool2dGeometry : Pool2dGeometry {
  bool count_include_pad;
  int64_t divisor_override;  // 0: none (torch refuses 0 as a divisor)
};

struct Unpool2dGeometry {
  int64_t batch, channels, in_h, in_w, out_h, out_w;
};

}  // namespace fastconv
