// float32 conv2d passes on our packed GEMM (conv2d_packed.cpp). NCHW contiguous tensors; every
// output is written whole.
#pragma once

#include <cstdint>

#include "../shape_checks.h"

namespace fastconv::cpu {

// y = conv2d(x, w) + bias (bias may be null).
void packed_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y);

// Peak workspace bytes of packed_forward with `threads` threads.
int64_t packed_forward_workspace_bytes(const Conv2dGeometry& g, int64_t threads);

// grad_output as packed-B panels of 16 output channels, per group, over the pixels of the whole
// batch (image after image): panel q of group gr holds gy[n][gr * K + 16 q + j][p] at
// packed[((gr * panels + q) * batch + n) * P * 16 + p * 16 + j], zero past K; k_padded = 16 panels.
void pack_grad_output(const Conv2dGeometry& g, const float* gy, int64_t k_padded, float* packed);

// gw = the weight gradient.
void packed_weight_backward(const Conv2dGeometry& g, const float* x, const float* gy, float* gw);

} // namespace fastconv::cpu
