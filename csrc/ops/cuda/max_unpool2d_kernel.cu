// CUDA kernels of max_unpool2d (scatter by switches) and of the gather that reverses it (also
// max-pool's double backward).
//
// An invalid switch (outside its plane) is skipped by the kernels and its position recorded; the
// op then raises torch's CPU error for it. torch's own CUDA kernel stops at a device-side assert
// instead, which leaves the CUDA context unusable. Reading the record back costs one
// device-to-host copy (a sync); a CUDA graph being captured cannot have that, so while capturing
// the check is left out and invalid switches are only skipped.
#include <ATen/DeviceGuard.h>
#include <ATen/Dispatch.h>
#include <ATen/TensorUtils.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/irange.h>
#include <torch/library.h>

#include <limits>

#include "../shape_checks.h"
#include "launch.cuh"

namespace fastconv::cuda {
namespace {

// Where a kernel found the first invalid switch: the lowest flat position among the invalid ones
// (atomicMin), so the error names the same switch whatever the thread timing.
class InvalidSwitchRecord {
 public:
  explicit InvalidSwitchRecord(const at::Tensor& like) {
    if (c10::cuda::currentStreamCaptureStatusMayInitCtx() == c10::cuda::CaptureStatus::None) {
      position_ = at::full({1}, kNone, like.options().dtype(at::kLong));
    }
  }

  // nullptr while capturing: the kernels then record nothing.
  unsigned long long* device_pointer() {
    return position_.defined()
        ? reinterpret_cast<unsigned long long*>(position_.mutable_data_ptr<int64_t>())
        : nullptr;
  }

  void throw_if_any(const at::Tensor& switches, int64_t height, int64_t width) const {
    if (!position_.defined()) {
      return;
    }
    const int64_t position = position_.item<int64_t>();
    if (position != kNone) {
      throw_invalid_switch(switches.reshape(-1)[position].item<int64_t>(), height, width);
    }
  }

 private:
  static constexpr int64_t kNone = std::numeric_limits<int64_t>::max();
  at::Tensor position_;
};

__device__ __forceinline__ void record_invalid(unsigned long long* first_invalid,
                                               int64_t position) {
  if (first_invalid != nullptr) {
    atomicMin(first_invalid, static_cast<unsigned long long>(position));
  }
}

// One thread per input element: output[plane][switch] = input[plane][i]. Repeated switches leave
// one of their values (which one is unspecified, as in torch).
template <typename scalar_t>
__global__ void max_unpool2d_scatter_kernel(const scalar_t* __restrict__ input,
                                            const int64_t* __restrict__ switches,
                                            int64_t in_plane, int64_t out_plane, int64_t total,
                                            scalar_t* __restrict__ output,
                                            unsigned long long* first_invalid) {
  FASTCONV_GRID_STRIDE_LOOP(index, total) {
    const int64_t target = switches[index];
    if (target < 0 || target >= out_plane) {
      record_invalid(first_invalid, index);
      continue;
    }
    output[(index / in_plane) * out_plane + target] = input[index];
  }
}

// One thread per output element: out[plane][i] = source[plane][switch], 0 for an invalid switch.
template <typename scalar_t>
__global__ void gather_by_switches_kernel(const scalar_t* __restrict__ source,
                                          const int64_t* __restrict__ switches, int64_t plane,
                                          int64_t source_plane, int64_t total,
                                          scalar_t* __restrict__ out,
                                          unsigned long long* first_invalid) {
  FASTCONV_GRID_STRIDE_LOOP(index, total) {
    const int64_t from = switches[index];
    if (from < 0 || from >= source_plane) {
      record_invalid(first_invalid, index);
      out[index] = scalar_t(0);
      continue;
    }
    out[index] = source[(index / plane) * source_plane + from];
  }
}

at::MemoryFormat layout_of(const at::Tensor& t) {
  return is_channels_last(t) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

// torch's CUDA max_unpool2d checks in another order and partly other words than its CPU kernel
// (aten/src/ATen/native/cuda/MaxUnpooling.cu); these are its checks up to the output size, after
// which check_max_unpool2d (shared with the CPU) finds nothing more to complain about but the
// sign of output_size, and returns the geometry.
void check_max_unpool2d_cuda_order(const at::Tensor& input, const at::Tensor& indices,
                                   at::IntArrayRef output_size) {
  TORCH_CHECK(indices.scalar_type() == at::kLong,
              "elements in indices should be type int64 but got: ", indices.scalar_type());
  at::checkAllSameGPU("max_unpooling2d_forward_out_cuda",
                      {{input, "self_", 2}, {indices, "indices_", 3}});
  for (const auto i : c10::irange(1, input.dim())) {
    TORCH_CHECK(input.size(i) > 0, "max_unpooling2d_forward_out_cuda(): ",
                "Expected input to have non-zero size for non-batch dimensions, but got ",
                input.sizes(), " with dimension ", i, " being empty.");
  }
  TORCH_CHECK(input.dim() == 3 || input.dim() == 4,
              "Input to max_unpooling2d should be a 3d or 4d Tensor, but got tensor with "
              "dimension: ",
              input.dim());
  TORCH_CHECK(input.sizes() == indices.sizes(), "Expected shape of indices to be: ",
              input.sizes(), " but got: ", indices.sizes());
  TORCH_CHECK(output_size.size() == 2,
              "There should be exactly two elements (height, width) in output_size, but got ",
              output_size.size(), " elements.");
}

at::Tensor max_unpool2d_kernel(const at::Tensor& input, const at::Tensor& indices,
                               at::IntArrayRef output_size) {
  check_max_unpool2d_cuda_order(input, indices, output_size);
  const auto g =
      check_max_unpool2d(input, indices, output_size, "max_unpooling2d_forward_out_cuda");
  const at::cuda::OptionalCUDAGuard device_guard(device_of(input));
  auto sizes = input.sizes().vec();
  sizes[sizes.size() - 2] = g.out_h;
  sizes[sizes.size() - 1] = g.out_w;
  auto output = at::zeros(sizes, input.options());
  if (input.numel() == 0) {  // an empty batch; an empty output with input fails the index check
    return output.contiguous(layout_of(input));
  }
  const auto x = input.contiguous();
  const auto switches = indices.contiguous();
  const int64_t total = x.numel();
  InvalidSwitchRecord invalid(x);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "max_unpool2d", [&] {
    max_unpool2d_scatter_kernel<scalar_t><<<blocks_for(total), kThreadsPerBlock, 0,
                                            at::cuda::getCurrentCUDAStream()>>>(
        x.const_data_ptr<scalar_t>(), switches.const_data_ptr<int64_t>(), g.in_h * g.in_w,
        g.out_h * g.out_w, total, output.mutable_data_ptr<scalar_t>(), invalid.device_pointer());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  invalid.throw_if_any(switches, g.out_h, g.out_w);
  return output.contiguous(layout_of(input));
}

at::Tensor max_unpool2d_backward_kernel(const at::Tensor& grad_output, const at::Tensor& indices) {
  check_gather_by_switches(grad_output, indices);
  TORCH_CHECK(grad_output.device() == indices.device(),
              "max_unpool2d_backward: expected grad_output and indices on the same device, got ",
              grad_output.device(), " and ", indices.device());
  const at::cuda::OptionalCUDAGuard device_guard(device_of(grad_output));
  const auto source = grad_output.contiguous();
  const auto switches = indices.contiguous();
  auto output = at::empty(indices.sizes(), grad_output.options());
  const int64_t source_plane = source.size(-2) * source.size(-1);
  const int64_t plane = switches.size(-2) * switches.size(-1);
  const int64_t total = output.numel();
  if (total == 0) {
    return output.contiguous(layout_of(indices));
  }
  InvalidSwitchRecord invalid(source);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, source.scalar_type(), "max_unpool2d_backward", [&] {
    gather_by_switches_kernel<scalar_t><<<blocks_for(total), kThreadsPerBlock, 0,
                                          at::cuda::getCurrentCUDAStream()>>>(
        source.const_data_ptr<scalar_t>(), switches.const_data_ptr<int64_t>(), plane,
        source_plane, total, output.mutable_data_ptr<scalar_t>(), invalid.device_pointer());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  invalid.throw_if_any(switches, source.size(-2), source.size(-1));
  return output.contiguous(layout_of(indices));
}

} // namespace

TORCH_LIBRARY_IMPL(fastconv, CUDA, m) {
  m.impl("max_unpool2d", &max_unpool2d_kernel);
  m.impl("max_unpool2d_backward", &max_unpool2d_backward_kernel);
}

} // namespace fastconv::cuda
