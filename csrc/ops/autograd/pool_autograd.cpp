// Autograd of the max-pool and max-unpool ops, registered in C++ at the Autograd key. Formulas:
//   max_pool2d_with_indices(x)           -> dx = max_pool2d_with_indices_backward(gy, x, indices);
//                                           the indices are not differentiable
//   max_pool2d_with_indices_backward(gy) -> d gy = gather of g by the indices
//   (max_unpool2d_backward) max_unpool2d(x, indices)             -> dx = max_unpool2d_backward(gy,
//   indices) (a gather) max_unpool2d_backward(gy, indices)   -> d gy = g scattered back, adding
//   where indices repeat
//                                           (scatter_add: overlapping windows; third order and up)
// Fake (meta) kernels stay in Python (fastconv/_ops.py), for torch.compile.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <tuple>

#include "ops/autograd/autograd_needed.h"
#include "ops/autograd/pool_calls.h"

namespace fastconv {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor unpool_op(const at::Tensor& input, const at::Tensor& indices,
                     at::IntArrayRef output_size) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("fastconv::max_unpool2d", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, at::IntArrayRef)>();
  return op.call(input, indices, output_size);
}

at::Tensor gather_op(const at::Tensor& source, const at::Tensor& indices) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("fastconv::max_unpool2d_backward", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
  return op.call(source, indices);
}

class MaxPool2dFunction : public torch::autograd::Function<MaxPool2dFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& input,
                               const PoolArgs& args) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [output, indices] = max_pool2d_op(input, args);
    ctx->mark_non_differentiable({indices});
    // Otherwise autograd hands the backward a zero "gradient" of the indices' size (int64, as
    // large as the output twice over in float32), allocated and filled on every call.
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({input, indices});
    args.save(ctx);
    return {output, indices};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) {
      return {at::Tensor(), at::Tensor()};
    }
    const auto saved = ctx->get_saved_variables();
    return {max_pool2d_backward_op(grads[0], saved[0], PoolArgs::load(ctx), saved[1]),
            at::Tensor()};
  }
};

// Linear in grad_output: its derivative gathers through the same indices.
class MaxPool2dBackwardFunction : public torch::autograd::Function<MaxPool2dBackwardFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_output,
                            const at::Tensor& input, const PoolArgs& args,
                            const at::Tensor& indices) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({indices});
    return max_pool2d_backward_op(grad_output, input, args, indices);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto indices = ctx->get_saved_variables()[0];
    return {gather_op(grads[0], indices), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class MaxUnpool2dFunction : public torch::autograd::Function<MaxUnpool2dFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input,
                            const at::Tensor& indices, at::IntArrayRef output_size) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({indices});
    return unpool_op(input, indices, output_size);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto indices = ctx->get_saved_variables()[0];
    return {gather_op(grads[0], indices), at::Tensor(), at::Tensor()};
  }
};

class GatherFunction : public torch::autograd::Function<GatherFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& source,
                            const at::Tensor& indices) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({indices});
    ctx->saved_data["source_size"] = source.sizes().vec();
    return gather_op(source, indices);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto indices = ctx->get_saved_variables()[0];
    const auto source_size = ctx->saved_data["source_size"].toIntVector();
    const auto& grad = grads[0];
    auto leading = std::vector<int64_t>(source_size.begin(), source_size.end() - 2);
    leading.push_back(source_size[source_size.size() - 2] * source_size.back());
    auto source = grad.new_zeros(leading).scatter_add(-1, indices.flatten(-2), grad.flatten(-2));
    return {source.view(source_size), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor> max_pool2d_autograd(const at::Tensor& input,
                                                       at::IntArrayRef kernel_size,
                                                       at::IntArrayRef stride,
                                                       at::IntArrayRef padding,
                                                       at::IntArrayRef dilation, bool ceil_mode) {
  if (!autograd_needed(input)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return max_pool2d_op(
        input, PoolArgs{kernel_size.vec(), stride.vec(), padding.vec(), dilation.vec(), ceil_mode});
  }
  auto results = MaxPool2dFunction::apply(
      input, PoolArgs{kernel_size.vec(), stride.vec(), padding.vec(), dilation.vec(), ceil_mode});
  return {results[0], results[1]};
}

at::Tensor max_pool2d_backward_autograd(const at::Tensor& grad_output, const at::Tensor& input,
                                        at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                        at::IntArrayRef padding, at::IntArrayRef dilation,
                                        bool ceil_mode, const at::Tensor& indices) {
  return MaxPool2dBackwardFunction::apply(
      grad_output, input,
      PoolArgs{kernel_size.vec(), stride.vec(), padding.vec(), dilation.vec(), ceil_mode}, indices);
}

at::Tensor max_unpool2d_autograd(const at::Tensor& input, const at::Tensor& indices,
                                 at::IntArrayRef output_size) {
  return MaxUnpool2dFunction::apply(input, indices, output_size);
}

at::Tensor gather_autograd(const at::Tensor& source, const at::Tensor& indices) {
  return GatherFunction::apply(source, indices);
}

}  // namespace
}  // namespace fastconv

TORCH_LIBRARY_IMPL(fastconv, Autograd, m) {
  m.impl("max_pool2d_with_indices", &fastconv::max_pool2d_autograd);
  m.impl("max_pool2d_with_indices_backward", &fastconv::max_pool2d_backward_autograd);
  m.impl("max_unpool2d", &fastconv::max_unpool2d_autograd);
  m.impl("max_unpool2d_backward", &fastconv::gather_autograd);
}
