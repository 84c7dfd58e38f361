// Calls of the max_pool2d ops through the dispatcher, above the Autograd key: for the autograd
// formulas (pool_autograd.cpp), which stay differentiable, and for fastconv._C's eager entry.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>

#include <tuple>
#include <vector>

namespace fastconv {

// The pooling arguments after the input, kept for the backward.
struct PoolArgs {
  std::vector<int64_t> kernel_size, stride, padding, dilation;
  bool ceil_mode;

  void save(torch::autograd::AutogradContext* ctx) const {
    ctx->saved_data["kernel_size"] = kernel_size;
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["ceil_mode"] = ceil_mode;
  }
  static PoolArgs load(torch::autograd::AutogradContext* ctx) {
    return {ctx->saved_data["kernel_size"].toIntVector(), ctx->saved_data["stride"].toIntVector(),
            ctx->saved_data["padding"].toIntVector(), ctx->saved_data["dilation"].toIntVector(),
            ctx->saved_data["ceil_mode"].toBool()};
  }
};

inline std::tuple<at::Tensor, at::Tensor> max_pool2d_op(const at::Tensor& input,
                                                        const PoolArgs& a) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("fastconv::max_pool2d_with_indices", "")
                             .typed<std::tuple<at::Tensor, at::Tensor>(
                                 const at::Tensor&, at::IntArrayRef, at::IntArrayRef,
                                 at::IntArrayRef, at::IntArrayRef, bool)>();
  return op.call(input, a.kernel_size, a.stride, a.padding, a.dilation, a.ceil_mode);
}

inline at::Tensor max_pool2d_backward_op(const at::Tensor& grad_output, const at::Tensor& input,
                                         const PoolArgs& a, const at::Tensor& indices) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("fastconv::max_pool2d_with_indices_backward", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, at::IntArrayRef, at::IntArrayRef,
                            at::IntArrayRef, at::IntArrayRef, bool, const at::Tensor&)>();
  return op.call(grad_output, input, a.kernel_size, a.stride, a.padding, a.dilation, a.ceil_mode,
                 indices);
}

}  // namespace fastconv
