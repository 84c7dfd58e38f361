// A direct float32 convolution for layers whose GEMMs are narrow: grouped convolutions with a few
// channels per group (ResNeXt's 3x3: 4 to 32) and layers with few output channels. Packing
// im2col columns for such a GEMM costs as much as the multiply (each copied value feeds one or
// two vectors of FMAs), so this path packs nothing: the input is copied once into zero-padded
// planes (phase_planes.h; phase planes for strides up to 4) and the 8x48 micro-kernel
// (microkernels/f32_conv.h) reads every tap from them in place.
//
// All tensors are NCHW contiguous. Each output is summed in a fixed order (input channel, tap),
// in blocks of input channels that continue from the stored partial sums, so the results do not
// depend on the thread count.
#pragma once

#include <cstdint>

#include "ops/cpu/conv2d/phase_planes.h"
#include "ops/geometry.h"

namespace fastconv::cpu {

// True where the kernels apply: strides up to kMaxDirectStride (each stride phase a plane of
// its own); any kernel size and grouping; padding and dilation while the planes stay of the order
// of the input and output planes.
bool direct_supported(const Conv2dGeometry& g);

// Peak workspace bytes of direct_forward (whatever the thread count).
int64_t direct_forward_workspace_bytes(const Conv2dGeometry& g);

// y = conv2d(x, w) + bias (bias may be null), written whole.
void direct_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y);

// gw = the weight gradient, written whole (direct_weight_backward.cpp): per weight, the sum over
// images and pixels in a fixed order, whatever the thread count.
void direct_weight_backward(const Conv2dGeometry& g, const float* x, const float* gy, float* gw);

}  // namespace fastconv::cpu
