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

// A pointwise layer of channels_last tensors (channels_last_pointwise.cpp): the forward as one
// GEMM over all the batch's pixels, y = x * w^T, the input gradient gx = gy * w and the weight
// gradient gw = gy^T * x.
bool channels_last_pointwise_supported(const Conv2dGeometry& g, c10::ScalarType dtype);
void channels_last_pointwise_forward(const Conv2dGeometry& g, const at::Tensor& x,
                                     const at::Tensor& w, const at::Tensor& bias, at::Tensor& y);
void channels_last_pointwise_input_backward(const Conv2dGeometry& g, const at::Tensor& gy,
                                            const at::Tensor& w, at::Tensor& gx);
void channels_last_pointwise_weight_backward(const Conv2dGeometry& g, const at::Tensor& x,
                                             const at::Tensor& gy, at::Tensor& gw);

}  // namespace fastconv::cpu
