// The avg_pool2d kernels each backend provides (cpu/avg_pool2d_kernel.cpp,
// cuda/avg_pool2d_kernel.cu). The frontend (avg_pool2d.cpp) has checked the arguments, laid the
// tensors out contiguously in `layout` (Contiguous or ChannelsLast), allocated the results in that
// layout and handled empty cases. Windows and divisors: pool_windows.h (avg_window, avg_divisor).
#pragma once

#include <ATen/core/Tensor.h>

#include "ops/shape_checks.h"

#define FASTCONV_DECLARE_AVG_POOL2D_KERNELS                                                    \
  /* each output: the sum of its window's taps inside the input over the window's divisor. */  \
  void avg_pool2d_forward(const AvgPool2dGeometry& g, const at::Tensor& x,                     \
                          at::MemoryFormat layout, at::Tensor& output);                        \
  /* grad_input, written whole: a gather, each input element summing grad_output / divisor  */ \
  /* of the windows that cover it, in window order (deterministic). */                         \
  void avg_pool2d_backward(const AvgPool2dGeometry& g, const at::Tensor& grad_output,          \
                           at::MemoryFormat layout, at::Tensor& grad_input);

namespace fastconv {
namespace cpu {
FASTCONV_DECLARE_AVG_POOL2D_KERNELS
}  // namespace cpu
namespace cuda {
FASTCONV_DECLARE_AVG_POOL2D_KERNELS
}  // namespace cuda
}  // namespace fastconv
