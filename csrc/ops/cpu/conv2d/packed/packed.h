// float32 conv2d passes on our packed GEMM (packed_forward.cpp, packed_weight_backward.cpp). NCHW
// contiguous tensors; every output is written whole.
#pragma once

#include <cstdint>

#include "ops/geometry.h"

namespace fastconv::cpu {

// y = conv2d(x, w) + bias (bias may be null).
void packed_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y);

// Peak workspace bytes of packed_forward with `threads` threads.
int64_t packed_forward_workspace_bytes(const Conv2dGeometry& g, int64_t threads);

// gw = the weight gradient.
void packed_weight_backward(const Conv2dGeometry& g, const float* x, const float* gy, float* gw);

}  // namespace fastconv::cpu
