// The max_pool2d kernels each backend provides (cpu/max_pool2d_kernel.cpp,
// cuda/max_pool2d_kernel.cu). The frontend (max_pool2d.cpp) has checked the arguments, laid the
// tensors out contiguously in `layout` (Contiguous or ChannelsLast), allocated the results in that
// layout and handled empty cases. Indices are int64, each the flat h*W+w position of the maximum
// in its (n, c) plane, as torch's.
#pragma once

#include <ATen/core/Tensor.h>

#include "ops/shape_checks.h"

#define FASTCONV_DECLARE_MAX_POOL2D_KERNELS                                                      \
  /* output and indices of every window. */                                                      \
  void max_pool2d_forward(const Pool2dGeometry& g, const at::Tensor& x, at::MemoryFormat layout, \
                          at::Tensor& output, at::Tensor& indices);                              \
  /* grad_input: each output's gradient added at its index, written whole. */                    \
  void max_pool2d_backward(const Pool2dGeometry& g, const at::Tensor& grad_output,               \
                           const at::Tensor& indices, at::MemoryFormat layout,                   \
                           at::Tensor& grad_input);

namespace fastconv {
namespace cpu {
FASTCONV_DECLARE_MAX_POOL2D_KERNELS
}  // namespace cpu
namespace cuda {
FASTCONV_DECLARE_MAX_POOL2D_KERNELS
}  // namespace cuda
}  // namespace fastconv
