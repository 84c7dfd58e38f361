// float32 3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray,
// 2016): each 2x2 block of outputs takes 16 multiplications per (input, output) channel pair
// instead of 36, as 16 GEMMs, one per point of the 4x4 transform, on our micro-kernel.
//
// Its transforms use only 0, +-1 and +-1/2, so its rounding error stays close to the direct
// sum's (tests/test_winograd.py holds it to 4x torch's own float32 error against float64).
// fastconv.backends.winograd.enabled = False turns it off (conv2d_path.h).
//
// NCHW contiguous tensors. Every output is summed in a fixed order by one task whatever the
// thread count.
#pragma once

#include <cstdint>

#include "ops/geometry.h"

namespace fastconv::cpu {

// The distance in floats, at least n, between the blocks of the 16 transform points that a
// transform writes or reads point by point: an odd number of cache lines, so that the 16 points
// fall in 16 different L1 sets (at a multiple of 4 KiB they would all fall in one, and a transform
// writing a few floats per point at a time would miss L1 at every store).
inline int64_t point_stride_for(int64_t n) { return ((n + 15) / 16 | 1) * 16; }

// True for the convolutions this kernel computes: 3x3, stride 1, dilation 1, one group (any
// padding).
bool winograd_supported(const Conv2dGeometry& g);

// y = conv2d(x, w) + bias (bias may be null); a dilated layer (winograd_dilated_supported) on its
// phase planes.
void winograd_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                      float* y);

// gw = the weight gradient (winograd_weight_backward.cpp).
void winograd_weight_backward(const Conv2dGeometry& g, const float* x, const float* gy, float* gw);

// Peak workspace bytes of winograd_forward with `threads` threads.
int64_t winograd_forward_workspace_bytes(const Conv2dGeometry& g, int64_t threads);

// Dilated 3x3 stride-1 convolutions (one group, up to 64 phases) as dense ones on d_h x d_w
// phase planes of the padded input (winograd_dilated.cpp): the dense geometry they run as
// (batch N x d_h x d_w), the forward and its workspace, which winograd_forward and its workspace
// figure hand over to. conv2d_path.cpp weighs the dense geometry as it would weigh a dense layer.
bool winograd_dilated_supported(const Conv2dGeometry& g);
Conv2dGeometry dilated_phases_geometry(const Conv2dGeometry& g);
void winograd_dilated_forward(const Conv2dGeometry& g, const float* x, const float* w,
                              const float* bias, float* y);
int64_t winograd_dilated_forward_workspace_bytes(const Conv2dGeometry& g, int64_t threads);

}  // namespace fastconv::cpu
