// Direct float32 kernels for convolutions whose groups have one input channel each (depthwise,
// with any channel multiplier). Each output channel is a small stencil over one input plane, so
// a GEMM would have one row of depth kh*kw: im2col-GEMM is the wrong tool here.
//
// All tensors are NCHW contiguous. Every output element is summed in a fixed order by one thread,
// so the results do not depend on the thread count.
#pragma once

#include "ops/geometry.h"

namespace fastconv::cpu {

// True where these kernels apply: one input channel per group, at most 64 kernel taps, and a
// zero-padded plane not much larger than the input and output planes.
bool depthwise_supported(const Conv2dGeometry& g);

// Workspace bytes per thread of depthwise_forward (a zero-padded input plane and a plane of
// padded-width output rows).
int64_t depthwise_forward_workspace_bytes(const Conv2dGeometry& g);

// y = conv2d(x, w) + bias (bias may be null), for depthwise_supported.
void depthwise_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                       float* y);

// gx = the input gradient, written whole (gx need not be zeroed).
void depthwise_input_backward(const Conv2dGeometry& g, const float* gy, const float* w, float* gx);

// gw = the weight gradient, written whole.
void depthwise_weight_backward(const Conv2dGeometry& g, const float* x, const float* gy, float* gw);

// The same three passes on channels_last (NHWC) tensors, for layers of one output channel per
// group (depthwise_channels_last.cpp); gx is written whole.
bool channels_last_depthwise_supported(const Conv2dGeometry& g);
void channels_last_depthwise_forward(const Conv2dGeometry& g, const float* x, const float* w,
                                     const float* bias, float* y);
void channels_last_depthwise_input_backward(const Conv2dGeometry& g, const float* gy,
                                            const float* w, float* gx);
void channels_last_depthwise_weight_backward(const Conv2dGeometry& g, const float* x,
                                             const float* gy, float* gw);

}  // namespace fastconv::cpu
