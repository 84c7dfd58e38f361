// The max_unpool2d kernels each backend provides (cpu/max_unpool2d_kernel.cpp,
// cuda/max_unpool2d_kernel.cu). The frontend (max_unpool2d.cpp) has checked the arguments, made
// the tensors contiguous and allocated the result; an index outside its plane raises torch's
// "Found an invalid max index" error (throw_invalid_index).
#pragma once

#include <ATen/core/Tensor.h>

#include "ops/shape_checks.h"

#define FASTCONV_DECLARE_MAX_UNPOOL2D_KERNELS                                                  \
  /* output (zeroed by the caller)[plane][index] = x[plane][i] for each input element i. */    \
  void max_unpool2d_forward(const Unpool2dGeometry& g, const at::Tensor& x,                    \
                            const at::Tensor& indices, at::Tensor& output);                    \
  /* out[plane][i] = source[plane][indices[plane][i]]: unpool's backward, max-pool's double */ \
  /* backward. */                                                                              \
  void gather_by_indices(const at::Tensor& source, const at::Tensor& indices, at::Tensor& out);

namespace fastconv {
namespace cpu {
FASTCONV_DECLARE_MAX_UNPOOL2D_KERNELS
}  // namespace cpu
namespace cuda {
FASTCONV_DECLARE_MAX_UNPOOL2D_KERNELS
}  // namespace cuda
}  // namespace fastconv
