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

// CPU only: a pointwise convolution of channels_last tensors as one GEMM over the pixels, with no
// layout conversion (cpu/conv2d/im2col_blas/channels_last_pointwise.cpp). The frontend calls the
// two passes with channels_last x (or gy) and y (or gx) where channels_last_pointwise_supported
// holds for that input; the weight gradient takes the NCHW kernels.
bool channels_last_pointwise_supported(const Conv2dGeometry& g, const at::Tensor& t);
void channels_last_pointwise_forward(const Conv2dGeometry& g, const at::Tensor& x,
                                     const at::Tensor& w, const at::Tensor& bias, at::Tensor& y);
void channels_last_pointwise_input_backward(const Conv2dGeometry& g, const at::Tensor& gy,
                                            const at::Tensor& w, at::Tensor& gx);
}  // namespace cpu
namespace cuda {
FASTCONV_DECLARE_CONV2D_KERNELS
}  // namespace cuda
}  // namespace fastconv
