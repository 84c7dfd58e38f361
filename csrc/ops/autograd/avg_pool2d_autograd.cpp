// Autograd of the avg_pool2d ops, registered in C++ at the Autograd key (as pool_autograd.cpp does
// for max-pooling). Both ops are linear:
//   avg_pool2d(x)                  -> dx = avg_pool2d_backward(gy, x)
//   avg_pool2d_backward(gy, x)     -> d gy = avg_pool2d(g) (the adjoint of the adjoint); x gives
//                                     only its shape, and gets no gradient
// so gradients of every order run on fastconv's kernels. Fake (meta) kernels: fastconv/_ops.py.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>

namespace fastconv {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct AvgPoolArgs {
  std::vector<int64_t> kernel_size, stride, padding;
  bool ceil_mode, count_include_pad;
  std::optional<int64_t> divisor_override;

  void save(AutogradContext* ctx) const {
    ctx->saved_data["kernel_size"] = kernel_size;
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["ceil_mode"] = ceil_mode;
    ctx->saved_data["count_include_pad"] = count_include_pad;
    ctx->saved_data["divisor_override"] = divisor_override;
  }
  static AvgPoolArgs load(AutogradContext* ctx) {
    const auto& divisor = ctx->saved_data["divisor_override"];
    return {ctx->saved_data["kernel_size"].toIntVector(),
            ctx->saved_data["stride"].toIntVector(),
            ctx->saved_data["padding"].toIntVector(),
            ctx->saved_data["ceil_mode"].toBool(),
            ctx->saved_data["count_include_pad"].toBool(),
            divisor.isNone() ? std::nullopt : std::optional<int64_t>(divisor.toInt())};
  }
};

at::Tensor avg_pool_op(const at::Tensor& input, const AvgPoolArgs& a) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("fastconv::avg_pool2d", "")
          .typed<at::Tensor(const at::Tensor&, at::IntArrayRef, at::IntArrayRef, at::IntArrayRef,
                            bool, bool, std::optional<int64_t>)>();
  return op.call(input, a.kernel_size, a.stride, a.padding, a.ceil_mode, a.count_include_pad,
                 a.divisor_override);
}

at::Tensor avg_pool_backward_op(const at::Tensor& grad_output, const at::Tensor& input,
                                const AvgPoolArgs& a) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("fastconv::avg_pool2d_backward", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, at::IntArrayRef, at::IntArrayRef,
                            at::IntArrayRef, bool, bool, std::optional<int64_t>)>();
  return op.call(grad_output, input, a.kernel_size, a.stride, a.padding, a.ceil_mode,
                 a.count_include_pad, a.divisor_override);
}

class AvgPool2dFunction : public torch::autograd::Function<AvgPool2dFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input,
                            const AvgPoolArgs& args) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({input});
    args.save(ctx);
    return avg_pool_op(input, args);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto input = ctx->get_saved_variables()[0];
    return {avg_pool_backward_op(grads[0], input, AvgPoolArgs::load(ctx)), at::Tensor()};
  }
};

class AvgPool2dBackwardFunction : public torch::autograd::Function<AvgPool2dBackwardFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_output,
                            const at::Tensor& input, const AvgPoolArgs& args) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    args.save(ctx);
    return avg_pool_backward_op(grad_output, input, args);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {avg_pool_op(grads[0], AvgPoolArgs::load(ctx)), at::Tensor(), at::Tensor()};
  }
};

at::Tensor avg_pool2d_autograd(const at::Tensor& input, at::IntArrayRef kernel_size,
                               at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode,
                               bool count_include_pad, std::optional<int64_t> divisor_override) {
  return AvgPool2dFunction::apply(input,
                                  AvgPoolArgs{kernel_size.vec(), stride.vec(), padding.vec(),
                                              ceil_mode, count_include_pad, divisor_override});
}

at::Tensor avg_pool2d_backward_autograd(const at::Tensor& grad_output, const at::Tensor& input,
                                        at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                        at::IntArrayRef padding, bool ceil_mode,
                                        bool count_include_pad,
                                        std::optional<int64_t> divisor_override) {
  return AvgPool2dBackwardFunction::apply(
      grad_output, input,
      AvgPoolArgs{kernel_size.vec(), stride.vec(), padding.vec(), ceil_mode, count_include_pad,
                  divisor_override});
}

}  // namespace
}  // namespace fastconv

TORCH_LIBRARY_IMPL(fastconv, Autograd, m) {
  m.impl("avg_pool2d", &fastconv::avg_pool2d_autograd);
  m.impl("avg_pool2d_backward", &fastconv::avg_pool2d_backward_autograd);
}
