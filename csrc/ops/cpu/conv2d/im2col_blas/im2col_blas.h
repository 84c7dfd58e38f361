// conv2d passes by im2col bands and ATen's BLAS, any floating dtype (im2col_blas.cpp).
// NCHW contiguous tensors; every output is written whole.
#pragma once

#include <ATen/core/Tensor.h>

#include "ops/geometry.h"

namespace fastconv::cpu {

// y = conv2d(x, w) + bias (bias may be undefined).
void im2col_blas_forward(const Conv2dGeometry& g, const at::Tensor& x, const at::Tensor& w,
                         const at::Tensor& bias, at::Tensor& y);

// Peak workspace bytes of im2col_blas_forward with `threads` threads.
int64_t im2col_blas_forward_workspace_bytes(const Conv2dGeometry& g, int64_t element_size,
                                            int64_t threads);

void im2col_blas_input_backward(const Conv2dGeometry& g, const at::Tensor& gy, const at::Tensor& w,
                                at::Tensor& gx);

void im2col_blas_weight_backward(const Conv2dGeometry& g, const at::Tensor& x, const at::Tensor& gy,
                                 at::Tensor& gw);

}  // namespace fastconv::cpu
