// Autograd of the conv2d ops, registered in C++ at the Autograd key (as torchvision's ops are), so
// that a call costs no Python. The formulas use the ops themselves, so gradients of every order
// run on fastconv's kernels:
//   conv2d(x, w, b)                    -> dx = input_backward(gy, w), dw = weight_backward(gy, x),
//                                         db = gy summed over N, H, W
//   input_backward(gy, w)  (bilinear)  -> d gy = conv2d(g, w), d w = weight_backward(gy, g)
//   weight_backward(gy, x) (bilinear)  -> d gy = conv2d(x, g), d x = input_backward(gy, g)
// Fake (meta) kernels stay in Python (fastconv/_ops.py), for torch.compile.
#include <torch/autograd.h>
#include <torch/library.h>

#include "ops/autograd/autograd_needed.h"
#include "ops/autograd/conv2d_calls.h"

namespace fastconv {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class Conv2dFunction : public torch::autograd::Function<Conv2dFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, const ConvArgs& args) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({input, weight});
    ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
    args.save(ctx);
    return conv2d_op(input, weight, bias, args);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &input = saved[0], &weight = saved[1], &grad = grads[0];
    const auto args = ConvArgs::load(ctx);
    at::Tensor grad_input, grad_weight, grad_bias;
    if (ctx->needs_input_grad(0)) {
      grad_input = input_backward_op(grad, weight, input.sym_sizes(), args);
    }
    if (ctx->needs_input_grad(1)) {
      grad_weight = weight_backward_op(grad, input, weight.sym_sizes(), args);
    }
    if (ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2)) {
      // No input channels, no output channels (torch's Empty backend): the bias was not used.
      grad_bias = input.sym_size(1) == 0 ? at::zeros({weight.size(0)}, grad.options())
                                         : grad.sum({0, 2, 3});
    }
    return {grad_input, grad_weight, grad_bias, at::Tensor()};
  }
};

class InputBackwardFunction : public torch::autograd::Function<InputBackwardFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_output,
                            const at::Tensor& weight, c10::SymIntArrayRef input_size,
                            const ConvArgs& args) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({grad_output, weight});
    args.save(ctx);
    return input_backward_op(grad_output, weight, input_size, args);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &grad_output = saved[0], &weight = saved[1], &grad = grads[0];
    const auto args = ConvArgs::load(ctx);
    at::Tensor d_grad_output, d_weight;
    if (ctx->needs_input_grad(0)) {
      d_grad_output = conv2d_op(grad, weight, std::nullopt, args);
    }
    if (ctx->needs_input_grad(1)) {
      d_weight = weight_backward_op(grad_output, grad, weight.sym_sizes(), args);
    }
    return {d_grad_output, d_weight, at::Tensor(), at::Tensor()};
  }
};

class WeightBackwardFunction : public torch::autograd::Function<WeightBackwardFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_output,
                            const at::Tensor& input, c10::SymIntArrayRef weight_size,
                            const ConvArgs& args) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({grad_output, input});
    args.save(ctx);
    return weight_backward_op(grad_output, input, weight_size, args);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &grad_output = saved[0], &input = saved[1], &grad = grads[0];
    const auto args = ConvArgs::load(ctx);
    at::Tensor d_grad_output, d_input;
    if (ctx->needs_input_grad(0)) {
      d_grad_output = conv2d_op(input, grad, std::nullopt, args);
    }
    if (ctx->needs_input_grad(1)) {
      d_input = input_backward_op(grad_output, grad, input.sym_sizes(), args);
    }
    return {d_grad_output, d_input, at::Tensor(), at::Tensor()};
  }
};

ConvArgs conv_args(at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                   int64_t groups) {
  return {stride.vec(), padding.vec(), dilation.vec(), groups};
}

at::Tensor conv2d_autograd(const at::Tensor& input, const at::Tensor& weight,
                           const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                           at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  if (!autograd_needed(input, weight, bias)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return conv2d_op(input, weight, bias, conv_args(stride, padding, dilation, groups));
  }
  return Conv2dFunction::apply(input, weight, bias, conv_args(stride, padding, dilation, groups));
}

at::Tensor input_backward_autograd(const at::Tensor& grad_output, const at::Tensor& weight,
                                   c10::SymIntArrayRef input_size, at::IntArrayRef stride,
                                   at::IntArrayRef padding, at::IntArrayRef dilation,
                                   int64_t groups) {
  return InputBackwardFunction::apply(grad_output, weight, input_size,
                                      conv_args(stride, padding, dilation, groups));
}

at::Tensor weight_backward_autograd(const at::Tensor& grad_output, const at::Tensor& input,
                                    c10::SymIntArrayRef weight_size, at::IntArrayRef stride,
                                    at::IntArrayRef padding, at::IntArrayRef dilation,
                                    int64_t groups) {
  return WeightBackwardFunction::apply(grad_output, input, weight_size,
                                       conv_args(stride, padding, dilation, groups));
}

}  // namespace
}  // namespace fastconv

TORCH_LIBRARY_IMPL(fastconv, Autograd, m) {
  m.impl("conv2d", &fastconv::conv2d_autograd);
  m.impl("conv2d_input_backward", &fastconv::input_backward_autograd);
  m.impl("conv2d_weight_backward", &fastconv::weight_backward_autograd);
}
