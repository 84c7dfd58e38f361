// max_pool2d_with_indices and its backward: schemas, and the frontend shared by every backend
// (checks as torch's, device, allocation, empty cases, layout), which then calls the backend's
// kernels (max_pool2d_kernels.h). Autograd: autograd/pool_autograd.cpp; fake (meta) kernels:
// fastconv/_ops.py.
#include <ATen/DeviceGuard.h>
#include <ATen/Dispatch.h>
#include <ATen/TensorUtils.h>
#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <tuple>

#include "ops/backend.h"
#include "ops/max_pool2d_kernels.h"
#include "ops/shape_checks.h"

TORCH_LIBRARY_FRAGMENT(fastconv, m) {
  // Returns (output, indices): indices int64, each the flat h*W+w position of the maximum within
  // its (n, c) plane, as torch's max_pool2d_with_indices.
  m.def(
      "max_pool2d_with_indices(Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, "
      "int[2] dilation, bool ceil_mode) -> (Tensor, Tensor)");
  // Routes grad_output back through the indices (summing where windows overlap).
  m.def(
      "max_pool2d_with_indices_backward(Tensor grad_output, Tensor input, int[2] kernel_size, "
      "int[2] stride, int[2] padding, int[2] dilation, bool ceil_mode, Tensor indices) -> Tensor");
}

namespace fastconv {
namespace {

std::vector<int64_t> output_sizes(const at::Tensor& input, const Pool2dGeometry& g) {
  auto sizes = input.sizes().vec();
  sizes[sizes.size() - 2] = g.out_h;
  sizes[sizes.size() - 1] = g.out_w;
  return sizes;
}

std::tuple<at::Tensor, at::Tensor> max_pool2d_with_indices(
    const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
  const auto g = check_max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode);
  const c10::OptionalDeviceGuard device_guard(at::device_of(input));
  const auto layout = layout_of(input);
  const auto sizes = output_sizes(input, g);
  auto output = at::empty(sizes, input.options().memory_format(layout));
  auto indices = at::empty(sizes, input.options().dtype(at::kLong).memory_format(layout));
  // torch refuses an unsupported dtype (bool, complex) even for empty input, naming the layout.
  if (layout == at::MemoryFormat::ChannelsLast) {
    AT_DISPATCH_ALL_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
                               "max_pool2d_channels_last", [] {});
  } else {
    AT_DISPATCH_ALL_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "max_pool2d", [] {});
  }
  if (output.numel() == 0) {
    return {output, indices};
  }
  FASTCONV_CALL_BACKEND(input, max_pool2d_forward, g, input.contiguous(layout), layout, output,
                        indices);
  return {output, indices};
}

at::Tensor max_pool2d_with_indices_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                            at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                            at::IntArrayRef padding, at::IntArrayRef dilation,
                                            bool ceil_mode, const at::Tensor& indices) {
  const auto g = check_max_pool2d_backward(grad_output, input, indices, kernel_size, stride,
                                           padding, dilation, ceil_mode);
  if (input.is_cuda()) {  // torch's CUDA backward checks the devices with these names
    at::checkAllSameGPU(
        "max_pool2d_with_indices_backward_out_cuda",
        {{grad_output, "gradOutput_", 2}, {input, "input_", 3}, {indices, "indices", 4}});
  }
  const c10::OptionalDeviceGuard device_guard(at::device_of(input));
  const auto layout = layout_of(input);
  auto grad_input = at::empty(input.sizes(), grad_output.options().memory_format(layout));
  if (grad_input.numel() == 0) {
    return grad_input;
  }
  if (grad_output.numel() == 0) {
    return grad_input.zero_();
  }
  FASTCONV_CALL_BACKEND(input, max_pool2d_backward, g, grad_output.contiguous(layout),
                        indices.contiguous(layout), layout, grad_input);
  return grad_input;
}

void register_max_pool2d(torch::Library& m) {
  m.impl("max_pool2d_with_indices", &max_pool2d_with_indices);
  m.impl("max_pool2d_with_indices_backward", &max_pool2d_with_indices_backward);
}

}  // namespace
}  // namespace fastconv

FASTCONV_REGISTER_FRONTEND(fastconv::register_max_pool2d)
