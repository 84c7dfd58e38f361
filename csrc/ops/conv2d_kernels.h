// The conv2d kernels each backend provides (cpu/conv2d_kernel.cpp, cuda/conv2d_kernel.cu). The
// frontend (conv2d.cpp) has checked the arguments, made the tensors NCHW contiguous, on one device
// and of one dtype, allocated the result and handled empty and zero-channel cases; each kernel
// writes its result whole.
#pragma once

#include <ATen/core/Tensor.h>

#include "ops/shape_checks.h"

#define FASTCONV_DECLARE_CONV2D_KERNELS                                                           \
  /* y = conv2d(x, w) + bias; bias may be undefined. */                                           \
  void conv2d_forward(const Conv2dGeometry& g, const at::Tensor& x, const at::Tensor& w,          \
                      const at::Tensor& bias, at::Tensor& y);                                     \
  /* gx = the transposed convolution of gy with w. */                                             \
  void conv2d_input_backward(const Conv2dGeometry& g, const at::Tensor& gy, const at::Tensor& w,  \
                             at::Tensor& gx);                                                     \
  /* gw = gy correlated with x, summed over the batch. */                                         \
  void conv2d_weight_backward(const Conv2dGeometry& g, const at::Tensor& x, const at::Tensor& gy, \
                              at::Tensor& gw);

namespace fastconv {
namespace cpu {
FASTCONV_DECLARE_CONV2D_KERNELS
}  // namespace cpu
namespace cuda {
FASTCONV_DECLARE_CONV2D_KERNELS
}  // namespace cuda
}  // namespace fastconv
