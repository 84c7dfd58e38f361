// The float32 weight gradient of a pointwise (1x1, stride 1, unpadded) convolution as dot
// products of whole planes (pointwise_weight_backward.cpp). NCHW contiguous tensors.
#pragma once

#include <cstdint>

#include "ops/geometry.h"

namespace fastconv::cpu {

// gw[k][c] = sum over images and pixels of gy[n][k][p] * x[n][c][p], group by group; g must be
// pointwise (Conv2dGeometry::is_pointwise).
void pointwise_weight_backward(const Conv2dGeometry& g, const float* x, const float* gy, float* gw);

}  // namespace fastconv::cpu
