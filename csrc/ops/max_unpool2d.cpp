// max_unpool2d and its backward: schemas, and the frontend shared by every backend (checks as
// torch's, device, allocation, empty cases, layout), which then calls the backend's kernels
// (max_unpool2d_kernels.h). Autograd: autograd/pool_autograd.cpp; fake (meta) kernels:
// fastconv/_ops.py.
#include <ATen/DeviceGuard.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "ops/backend.h"
#include "ops/max_unpool2d_kernels.h"
#include "ops/shape_checks.h"

TORCH_LIBRARY_FRAGMENT(fastconv, m) {
  // Scatters each input value to the position its index names, in a zero plane of output_size.
  m.def("max_unpool2d(Tensor input, Tensor indices, int[2] output_size) -> Tensor");
  // The reverse: out[..., i] = grad_output[..., indices[..., i]] plane by plane. It is the backward
  // of max_unpool2d and also the double backward of max_pool2d (the gradient of its backward with
  // respect to grad_output), so both use this one gather.
  m.def("max_unpool2d_backward(Tensor grad_output, Tensor indices) -> Tensor");
}

namespace fastconv {
namespace {

at::Tensor max_unpool2d(const at::Tensor& input, const at::Tensor& indices,
                        at::IntArrayRef output_size) {
  if (input.is_cuda()) {  // torch's CUDA kernel checks in another order and partly other words
    check_max_unpool2d_cuda_order(input, indices, output_size);
  }
  const auto g = check_max_unpool2d(
      input, indices, output_size,
      input.is_cuda() ? "max_unpooling2d_forward_out_cuda" : "max_unpooling2d_forward_out_cpu");
  const c10::OptionalDeviceGuard device_guard(at::device_of(input));
  auto sizes = input.sizes().vec();
  sizes[sizes.size() - 2] = g.out_h;
  sizes[sizes.size() - 1] = g.out_w;
  int64_t numel = 1;
  for (const int64_t size : sizes) {
    TORCH_CHECK(!__builtin_mul_overflow(numel, size, &numel),
                "numel: integer multiplication overflow");
  }
  auto output = at::zeros(sizes, input.options());
  if (output.numel() == 0) {  // torch checks neither the indices nor the dtype then
    return output.contiguous(layout_of(input));
  }
  if (is_channels_last(input)) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
                                    "max_unpool2d_channels_last", [] {});
  } else {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "max_unpool2d",
                                    [] {});
  }
  FASTCONV_CALL_BACKEND(input, max_unpool2d_forward, g, input.contiguous(), indices.contiguous(),
                        output);
  return output.contiguous(layout_of(input));
}

at::Tensor max_unpool2d_backward(const at::Tensor& grad_output, const at::Tensor& indices) {
  check_gather_by_indices(grad_output, indices);
  TORCH_CHECK(grad_output.device() == indices.device(),
              "max_unpool2d_backward: expected grad_output and indices on the same device, got ",
              grad_output.device(), " and ", indices.device());
  const c10::OptionalDeviceGuard device_guard(at::device_of(grad_output));
  auto output = at::empty(indices.sizes(), grad_output.options());
  if (output.numel() > 0) {
    FASTCONV_CALL_BACKEND(grad_output, gather_by_indices, grad_output.contiguous(),
                          indices.contiguous(), output);
  }
  return output.contiguous(layout_of(indices));
}

void register_max_unpool2d(torch::Library& m) {
  m.impl("max_unpool2d", &max_unpool2d);
  m.impl("max_unpool2d_backward", &max_unpool2d_backward);
}

}  // namespace
}  // namespace fastconv

FASTCONV_REGISTER_FRONTEND(fastconv::register_max_unpool2d)
