// Autograd of conv_transpose2d, registered in C++ at the Autograd key. conv_transpose2d(x, w) is
// conv2d's input gradient with x as grad_output, so its formulas are conv2d ops, which are
// differentiable again (conv2d_autograd.cpp):
//   dx = conv2d(gy, w)                      (cropped to x where output_padding reaches the stride)
//   dw = conv2d_weight_backward(x, gy)      (grad_output and input swapped; x zero-padded likewise)
//   db = gy summed over N, H, W
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/zeros_like.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "ops/autograd/conv2d_calls.h"

namespace fastconv {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor conv_transpose2d_op(const at::Tensor& input, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias, const ConvArgs& a,
                               at::IntArrayRef output_padding) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("fastconv::conv_transpose2d", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                            at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, int64_t,
                            at::IntArrayRef)>();
  return op.call(input, weight, bias, a.stride, a.padding, output_padding, a.groups, a.dilation);
}

class ConvTranspose2dFunction : public torch::autograd::Function<ConvTranspose2dFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, const ConvArgs& args,
                            at::IntArrayRef output_padding) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({input, weight});
    ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
    ctx->saved_data["output_padding"] = output_padding.vec();
    // A zero dilation along a kernel of one tap (accepted where torch runs oneDNN) is dilation 1
    // to the conv2d ops of the backward.
    auto backward_args = args;
    for (const int d : {0, 1}) {
      if (backward_args.dilation[d] == 0 && weight.size(d + 2) == 1) {
        backward_args.dilation[d] = 1;
      }
    }
    backward_args.save(ctx);
    return conv_transpose2d_op(input, weight, bias, args, output_padding);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &input = saved[0], &weight = saved[1], &grad = grads[0];
    const auto args = ConvArgs::load(ctx);
    const auto output_padding = ctx->saved_data["output_padding"].toIntVector();
    // The conv2d whose input gradient the forward was has extra output rows / columns where
    // output_padding reaches the stride (the forward read them as zeros).
    const int64_t extra_h = output_padding[0] / args.stride[0];
    const int64_t extra_w = output_padding[1] / args.stride[1];
    at::Tensor grad_input, grad_weight, grad_bias;
    // An empty output plane (padding that eats the whole output) leaves nothing to convolve:
    // torch's gradients are zeros there, while conv2d refuses an input with an empty plane.
    const bool empty_output = grad.sym_numel() == 0;
    if (ctx->needs_input_grad(0) && empty_output) {
      grad_input = at::zeros_like(input);
    } else if (ctx->needs_input_grad(0)) {
      grad_input = conv2d_op(grad, weight, std::nullopt, args);
      if (extra_h != 0 || extra_w != 0) {
        grad_input = grad_input.narrow(2, 0, input.size(2)).narrow(3, 0, input.size(3));
      }
    }
    if (ctx->needs_input_grad(1) && empty_output) {
      grad_weight = at::zeros_like(weight);
    } else if (ctx->needs_input_grad(1)) {
      const auto padded_input = (extra_h != 0 || extra_w != 0)
          ? at::constant_pad_nd(input, {0, extra_w, 0, extra_h})
          : input;
      grad_weight = weight_backward_op(padded_input, grad, weight.sym_sizes(), args);
    }
    if (ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2)) {
      grad_bias = grad.sum({0, 2, 3});
    }
    return {grad_input, grad_weight, grad_bias, at::Tensor(), at::Tensor()};
  }
};

at::Tensor conv_transpose2d_autograd(const at::Tensor& input, const at::Tensor& weight,
                                     const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                     at::IntArrayRef padding, at::IntArrayRef output_padding,
                                     int64_t groups, at::IntArrayRef dilation) {
  return ConvTranspose2dFunction::apply(
      input, weight, bias, ConvArgs{stride.vec(), padding.vec(), dilation.vec(), groups},
      output_padding);
}

}  // namespace
}  // namespace fastconv

TORCH_LIBRARY_IMPL(fastconv, Autograd, m) {
  m.impl("conv_transpose2d", &fastconv::conv_transpose2d_autograd);
}
