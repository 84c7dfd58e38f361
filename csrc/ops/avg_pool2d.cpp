// avg_pool2d and its backward: schemas, and the frontend shared by every backend (checks as
// torch's, device, allocation, empty cases, layout), which then calls the backend's kernels
// (avg_pool2d_kernels.h). Autograd: autograd/avg_pool2d_autograd.cpp; fake (meta) kernels:
// fastconv/_ops.py.
#include <ATen/DeviceGuard.h>
#include <ATen/Dispatch.h>
#include <ATen/TensorUtils.h>
#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <optional>

#include "ops/avg_pool2d_kernels.h"
#include "ops/backend.h"
#include "ops/shape_checks.h"

TORCH_LIBRARY_FRAGMENT(fastconv, m) {
  // torch's avg_pool2d: each output the sum of its window's taps inside the input over the
  // divisor (divisor_override, else the window's size within the padded input with
  // count_include_pad, else the number of taps inside the input).
  m.def(
      "avg_pool2d(Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, "
      "bool ceil_mode, bool count_include_pad, int? divisor_override) -> Tensor");
  // The gradient with respect to input (input gives only its shape and layout); linear in
  // grad_output, whose own gradient is avg_pool2d again.
  m.def(
      "avg_pool2d_backward(Tensor grad_output, Tensor input, int[2] kernel_size, int[2] stride, "
      "int[2] padding, bool ceil_mode, bool count_include_pad, int? divisor_override) -> Tensor");
}

namespace fastconv {
namespace {

// torch's avg_pool2d and its backward take floating types and int64 on the CPU, floating types on
// CUDA, and refuse others even for empty input, in the words of the kernel they would run (the
// dispatch macros take the name as a literal).
enum class AvgPoolPass { forward, forward_channels_last, backward };

void check_avg_pool2d_dtype(const at::Tensor& t, AvgPoolPass pass) {
  const auto dtype = t.scalar_type();
  if (t.is_cuda()) {
    if (pass == AvgPoolPass::backward) {
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype,
                                      "avg_pool2d_backward_out_cuda_frame", [] {});
    } else {
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "avg_pool2d_out_cuda_frame",
                                      [] {});
    }
  } else if (pass == AvgPoolPass::forward) {
    AT_DISPATCH_FLOATING_TYPES_AND3(at::kLong, at::kHalf, at::kBFloat16, dtype, "avg_pool2d",
                                    [] {});
  } else if (pass == AvgPoolPass::forward_channels_last) {
    AT_DISPATCH_FLOATING_TYPES_AND3(at::kLong, at::kHalf, at::kBFloat16, dtype,
                                    "avg_pool2d_channels_last", [] {});
  } else {
    AT_DISPATCH_FLOATING_TYPES_AND3(at::kLong, at::kHalf, at::kBFloat16, dtype,
                                    "avg_pool2d_backward", [] {});
  }
}

at::Tensor avg_pool2d(const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                      at::IntArrayRef padding, bool ceil_mode, bool count_include_pad,
                      std::optional<int64_t> divisor_override) {
  const auto g = check_avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                  divisor_override);
  const c10::OptionalDeviceGuard device_guard(at::device_of(input));
  const auto layout = layout_of(input);
  auto sizes = input.sizes().vec();
  sizes[sizes.size() - 2] = g.out_h;
  sizes[sizes.size() - 1] = g.out_w;
  auto output = at::empty(sizes, input.options().memory_format(layout));
  check_avg_pool2d_dtype(input,
                         layout == at::MemoryFormat::ChannelsLast
                             ? AvgPoolPass::forward_channels_last
                             : AvgPoolPass::forward);
  if (output.numel() == 0) {
    return output;
  }
  FASTCONV_CALL_BACKEND(input, avg_pool2d_forward, g, input.contiguous(layout), layout, output);
  return output;
}

at::Tensor avg_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& input,
                               at::IntArrayRef kernel_size, at::IntArrayRef stride,
                               at::IntArrayRef padding, bool ceil_mode, bool count_include_pad,
                               std::optional<int64_t> divisor_override) {
  const auto g = check_avg_pool2d_backward(grad_output, input, kernel_size, stride, padding,
                                           ceil_mode, count_include_pad, divisor_override);
  if (input.is_cuda()) {  // torch's CUDA backward checks the devices with these names
    at::checkAllSameGPU("avg_pool2d_backward_out_cuda",
                        {{grad_output, "gradOutput_", 2}, {input, "input_", 3}});
  }
  const c10::OptionalDeviceGuard device_guard(at::device_of(input));
  const auto layout = layout_of(input);
  auto grad_input = at::empty(input.sizes(), grad_output.options().memory_format(layout));
  check_avg_pool2d_dtype(grad_output, AvgPoolPass::backward);
  if (grad_input.numel() == 0) {
    return grad_input;
  }
  FASTCONV_CALL_BACKEND(input, avg_pool2d_backward, g, grad_output.contiguous(layout), layout,
                        grad_input);
  return grad_input;
}

void register_avg_pool2d(torch::Library& m) {
  m.impl("avg_pool2d", &avg_pool2d);
  m.impl("avg_pool2d_backward", &avg_pool2d_backward);
}

}  // namespace
}  // namespace fastconv

FASTCONV_REGISTER_FRONTEND(fastconv::register_avg_pool2d)
