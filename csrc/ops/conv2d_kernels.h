// The conv2d kernels each backend provides (cpu/conv2d_kernel.cpp, cuda/conv2d_kernel.cu). The
// frontend (conv2d.cpp) has checked the arguments, made the tensors NCHW contiguous, on one device
// and of one dtype, allocated the result and handled empty and zero-channel cases; each kernel
// writes its result whole.
#pragma once

#include <ATen/core/Tensor.h>

#include "ops/cpu/conv2d/conv2d_path.h"
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

// CPU only: kernels that take channels_last tensors as they are, with no layout conversion
// (cpu/conv2d/conv2d_kernel.cpp): pointwise layers as GEMMs over the pixels, float32 depthwise
// layers of one output channel per group. The frontend calls a pass's kernel with channels_last
// tensors (x or gy, and y, gx or x) where channels_last_supported holds for each of them.
bool channels_last_supported(const Conv2dGeometry& g, const at::Tensor& t);
// The path those kernels record (for the tests' hooks): depthwise_channels_last, or im2col_blas
// for the pointwise GEMMs.
Conv2dPath channels_last_path(const Conv2dGeometry& g, const at::Tensor& t);
void channels_last_forward(const Conv2dGeometry& g, const at::Tensor& x, const at::Tensor& w,
                           const at::Tensor& bias, at::Tensor& y);
void channels_last_input_backward(const Conv2dGeometry& g, const at::Tensor& gy,
                                  const at::Tensor& w, at::Tensor& gx);
void channels_last_weight_backward(const Conv2dGeometry& g, const at::Tensor& x,
                                   const at::Tensor& gy, at::Tensor& gw);
}  // namespace cpu
namespace cuda {
FASTCONV_DECLARE_CONV2D_KERNELS
}  // namespace cuda
}  // namespace fastconv
