// conv2d and its two backward ops: schemas, and the frontend shared by every backend. The frontend
// checks the arguments as torch does (shape_checks.h), picks the device, allocates the result,
// handles empty and zero-channel cases (torch's: no input channels give no output channels) and
// the memory format, then hands NCHW contiguous tensors to the backend's kernels
// (conv2d_kernels.h); on the CPU a channels_last pointwise convolution keeps its layout. Autograd:
// autograd/conv2d_autograd.cpp; fake (meta) kernels: fastconv/_ops.py.
//
// The two backward ops are linear in each of their tensor arguments, so their own derivatives are
// again conv2d and the backward ops: gradients of any order need no further kernels.
#include <ATen/DeviceGuard.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/core/DeviceGuard.h>
#include <c10/util/accumulate.h>
#include <torch/library.h>

#include "ops/backend.h"
#include "ops/conv2d_kernels.h"
#include "ops/shape_checks.h"

TORCH_LIBRARY_FRAGMENT(fastconv, m) {
  m.def(
      "conv2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, "
      "int[2] dilation, int groups) -> Tensor");
  // grad_input = the transposed convolution of grad_output with weight.
  m.def(
      "conv2d_input_backward(Tensor grad_output, Tensor weight, SymInt[4] input_size, "
      "int[2] stride, int[2] padding, int[2] dilation, int groups) -> Tensor");
  // grad_weight = grad_output correlated with input, summed over the batch.
  m.def(
      "conv2d_weight_backward(Tensor grad_output, Tensor input, SymInt[4] weight_size, "
      "int[2] stride, int[2] padding, int[2] dilation, int groups) -> Tensor");
}

namespace fastconv {
namespace {

void check_same_dtype_and_device(const at::Tensor& grad_output, const at::Tensor& other,
                                 const char* other_name) {
  TORCH_CHECK(grad_output.scalar_type() == other.scalar_type(), "conv2d backward: grad_output and ",
              other_name, " must have the same dtype, got ", grad_output.scalar_type(), " and ",
              other.scalar_type());
  TORCH_CHECK(grad_output.device() == other.device(), "conv2d backward: expected all tensors on ",
              grad_output.device(), ", but got one on ", other.device());
}

at::Tensor conv2d(const at::Tensor& input, const at::Tensor& weight,
                  const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                  at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto g = check_conv2d(input, weight, bias, stride, padding, dilation, groups);
  const c10::OptionalDeviceGuard device_guard(at::device_of(input));
  if (g.in_channels == 0) {  // torch's Empty backend: no channels in, none out
    return at::empty({g.batch, 0, g.out_h, g.out_w}, input.options());
  }
  const auto memory_format = conv2d_output_memory_format(input, weight);
  const bool keeps_channels_last = input.is_cpu() &&
      memory_format == at::MemoryFormat::ChannelsLast && cpu::channels_last_supported(g, input);
  auto output = at::empty({g.batch, g.out_channels, g.out_h, g.out_w},
                          input.options().memory_format(
                              keeps_channels_last ? memory_format : at::MemoryFormat::Contiguous));
  const bool has_bias = bias.has_value() && bias->defined();
  if (output.numel() == 0) {
    return output.contiguous(memory_format);
  }
  const auto b = has_bias ? bias->contiguous() : at::Tensor();
  if (keeps_channels_last) {
    cpu::channels_last_forward(g, input, weight.contiguous(), b, output);
    return output;
  }
  FASTCONV_CALL_BACKEND(input, conv2d_forward, g, input.contiguous(), weight.contiguous(), b,
                        output);
  return output.contiguous(memory_format);
}

at::Tensor conv2d_input_backward(const at::Tensor& grad_output, const at::Tensor& weight,
                                 at::IntArrayRef input_size, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation,
                                 int64_t groups) {
  const auto g = conv2d_backward_geometry(grad_output, input_size, weight.sizes(), stride, padding,
                                          dilation, groups);
  const c10::OptionalDeviceGuard device_guard(at::device_of(grad_output));
  const auto memory_format = layout_of(grad_output);
  if (c10::multiply_integers(input_size) == 0 || grad_output.numel() == 0 || g.column_rows() == 0) {
    return at::zeros(input_size, grad_output.options()).contiguous(memory_format);
  }
  check_same_dtype_and_device(grad_output, weight, "weight");
  if (grad_output.is_cpu() && memory_format == at::MemoryFormat::ChannelsLast &&
      cpu::channels_last_supported(g, grad_output)) {
    auto grad_input = at::empty(input_size, grad_output.options().memory_format(memory_format));
    cpu::channels_last_input_backward(g, grad_output, weight.contiguous(), grad_input);
    return grad_input;
  }
  auto grad_input = at::empty(input_size, grad_output.options());
  FASTCONV_CALL_BACKEND(grad_output, conv2d_input_backward, g, grad_output.contiguous(),
                        weight.contiguous(), grad_input);
  return grad_input.contiguous(memory_format);
}

at::Tensor conv2d_weight_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                  at::IntArrayRef weight_size, at::IntArrayRef stride,
                                  at::IntArrayRef padding, at::IntArrayRef dilation,
                                  int64_t groups) {
  const auto g = conv2d_backward_geometry(grad_output, input.sizes(), weight_size, stride, padding,
                                          dilation, groups);
  const c10::OptionalDeviceGuard device_guard(at::device_of(grad_output));
  if (c10::multiply_integers(weight_size) == 0 || grad_output.numel() == 0) {
    return at::zeros(weight_size, grad_output.options());
  }
  check_same_dtype_and_device(grad_output, input, "input");
  auto grad_weight = at::empty(weight_size, grad_output.options());
  if (grad_output.is_cpu() && layout_of(grad_output) == at::MemoryFormat::ChannelsLast &&
      cpu::channels_last_supported(g, grad_output) && cpu::channels_last_supported(g, input)) {
    cpu::channels_last_weight_backward(g, input, grad_output, grad_weight);
    return grad_weight;
  }
  FASTCONV_CALL_BACKEND(grad_output, conv2d_weight_backward, g, input.contiguous(),
                        grad_output.contiguous(), grad_weight);
  return grad_weight;
}

void register_conv2d(torch::Library& m) {
  m.impl("conv2d", &conv2d);
  m.impl("conv2d_input_backward", &conv2d_input_backward);
  m.impl("conv2d_weight_backward", &conv2d_weight_backward);
}

}  // namespace
}  // namespace fastconv

FASTCONV_REGISTER_FRONTEND(fastconv::register_conv2d)

namespace fastconv {
namespace {

// torch's dense convolution asks a sparse input, weight or bias for its memory format, which fails
// with these words; fastconv's convolutions refuse sparse tensors alike (rather than with the
// dispatcher's "Could not run 'fastconv::conv2d' with arguments from the 'SparseCPU' backend").
[[noreturn]] void refuse_sparse() {
  TORCH_CHECK(false, "unsupported memory format option Contiguous");
}

at::Tensor conv2d_sparse(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                         at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, int64_t) {
  refuse_sparse();
}

at::Tensor conv_transpose2d_sparse(const at::Tensor&, const at::Tensor&,
                                   const std::optional<at::Tensor>&, at::IntArrayRef,
                                   at::IntArrayRef, at::IntArrayRef, int64_t, at::IntArrayRef) {
  refuse_sparse();
}

void register_sparse_convolutions(torch::Library& m) {
  m.impl("conv2d", &conv2d_sparse);
  m.impl("conv_transpose2d", &conv_transpose2d_sparse);
}

}  // namespace
}  // namespace fastconv

TORCH_LIBRARY_IMPL(fastconv, SparseCPU, m) { fastconv::register_sparse_convolutions(m); }
TORCH_LIBRARY_IMPL(fastconv, SparseCUDA, m) { fastconv::register_sparse_convolutions(m); }
