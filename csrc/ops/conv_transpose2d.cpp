// conv_transpose2d: its schema, and the frontend shared by every backend. A transposed convolution
// is the input gradient of the conv2d whose output has the input's shape, so it runs on the conv2d
// backends' conv2d_input_backward kernels (conv2d_kernels.h, col2im as a gather; on the CPU the
// path conv2d_path.cpp chooses), then adds the bias. Autograd:
// autograd/conv_transpose2d_autograd.cpp; fake (meta) kernel and autocast: fastconv/_ops.py.
#include <ATen/DeviceGuard.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "ops/backend.h"
#include "ops/conv2d_kernels.h"
#include "ops/shape_checks.h"

TORCH_LIBRARY_FRAGMENT(fastconv, m) {
  // The argument order of torch.nn.functional.conv_transpose2d.
  m.def(
      "conv_transpose2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, "
      "int[2] padding, int[2] output_padding, int groups, int[2] dilation) -> Tensor");
}

namespace fastconv {
namespace {

at::Tensor conv_transpose2d(const at::Tensor& input, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                            at::IntArrayRef padding, at::IntArrayRef output_padding, int64_t groups,
                            at::IntArrayRef dilation) {
  const auto t = check_conv_transpose2d(input, weight, bias, stride, padding, output_padding,
                                        groups, dilation);
  const c10::OptionalDeviceGuard device_guard(at::device_of(input));
  const auto memory_format = conv2d_output_memory_format(input, weight);
  auto output = at::empty(t.output_size, input.options());
  if (output.numel() == 0) {
    return output.contiguous(memory_format);
  }
  // The conv2d's grad_output is the input, plus the zero rows and columns its output has beyond
  // the input's where output_padding reaches the stride.
  auto grad_output = input.contiguous();
  if (t.extra_h != 0 || t.extra_w != 0) {
    grad_output = at::constant_pad_nd(grad_output, {0, t.extra_w, 0, t.extra_h});
  }
  // The kernel is conv2d's input gradient: dtypes it lacks get the words of torch's own kernel.
  TORCH_CHECK_NOT_IMPLEMENTED(input.is_cuda() || at::isFloatingType(input.scalar_type()),
                              "\"slow_conv_transpose2d_out_cpu\" not implemented for '",
                              input.scalar_type(), "'");
  FASTCONV_CALL_BACKEND(input, conv2d_input_backward, t.conv, grad_output, weight.contiguous(),
                        output);
  if (bias.has_value() && bias->defined()) {
    const auto b = t.cast_bias ? bias->to(input.scalar_type()) : *bias;
    output.add_(b.view({1, -1, 1, 1}));
  }
  return output.contiguous(memory_format);
}

void register_conv_transpose2d(torch::Library& m) { m.impl("conv_transpose2d", &conv_transpose2d); }

}  // namespace
}  // namespace fastconv

FASTCONV_REGISTER_FRONTEND(fastconv::register_conv_transpose2d)
