// Calls of the conv2d ops through the dispatcher, for the autograd formulas of the ops built on
// them (conv2d_autograd.cpp, conv_transpose2d_autograd.cpp): calls above the Autograd key, so that
// the formulas are differentiable again.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>

#include <vector>

namespace fastconv {

// The conv arguments after the tensors, kept for the backward.
struct ConvArgs {
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups;

  void save(torch::autograd::AutogradContext* ctx) const {
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["groups"] = groups;
  }
  static ConvArgs load(torch::autograd::AutogradContext* ctx) {
    return {ctx->saved_data["stride"].toIntVector(), ctx->saved_data["padding"].toIntVector(),
            ctx->saved_data["dilation"].toIntVector(), ctx->saved_data["groups"].toInt()};
  }
};

inline at::Tensor conv2d_op(const at::Tensor& input, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, const ConvArgs& a) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("fastconv::conv2d", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                            at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, int64_t)>();
  return op.call(input, weight, bias, a.stride, a.padding, a.dilation, a.groups);
}

inline at::Tensor input_backward_op(const at::Tensor& grad_output, const at::Tensor& weight,
                                    c10::SymIntArrayRef input_size, const ConvArgs& a) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("fastconv::conv2d_input_backward", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, c10::SymIntArrayRef,
                            at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, int64_t)>();
  return op.call(grad_output, weight, input_size, a.stride, a.padding, a.dilation, a.groups);
}

inline at::Tensor weight_backward_op(const at::Tensor& grad_output, const at::Tensor& input,
                                     c10::SymIntArrayRef weight_size, const ConvArgs& a) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("fastconv::conv2d_weight_backward", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, c10::SymIntArrayRef,
                            at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, int64_t)>();
  return op.call(grad_output, input, weight_size, a.stride, a.padding, a.dilation, a.groups);
}

}  // namespace fastconv
