// CUDA kernels of max_unpool2d (scatter by indices) and of the gather that reverses it (also
// max-pool's double backward).
//
// An invalid index (outside its plane) is skipped by the kernels and its position recorded; the
// op then raises torch's CPU error for it. torch's own CUDA kernel stops at a device-side assert
// instead, which leaves the CUDA context unusable. Reading the record back costs one
// device-to-host copy (a sync); a CUDA graph being captured cannot have that, so while capturing
// the check is left out and invalid indices are only skipped.
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/full.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>

#include <limits>

#include "ops/cuda/launch.cuh"
#include "ops/max_unpool2d_kernels.h"

namespace fastconv::cuda {
namespace {

// Where a kernel found the first invalid index: the lowest flat position among the invalid ones
// (atomicMin), so the error names the same index whatever the thread timing.
class InvalidIndexRecord {
 public:
  explicit InvalidIndexRecord(const at::Tensor& like) {
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

  void throw_if_any(const at::Tensor& indices, int64_t height, int64_t width) const {
    if (!position_.defined()) {
      return;
    }
    const int64_t position = position_.item<int64_t>();
    if (position != kNone) {
      throw_invalid_index(indices.reshape(-1)[position].item<int64_t>(), height, width);
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

// One thread per input element: output[plane][index] = input[plane][i]. Repeated indices leave
// one of their values (which one is unspecified, as in torch).
template <typename scalar_t>
__global__ void max_unpool2d_scatter_kernel(const scalar_t* __restrict__ input,
                                            const int64_t* __restrict__ indices, int64_t in_plane,
                                            int64_t out_plane, int64_t total,
                                            scalar_t* __restrict__ output,
                                            unsigned long long* first_invalid) {
  FASTCONV_GRID_STRIDE_LOOP(index, total) {
    const int64_t target = indices[index];
    if (target < 0 || target >= out_plane) {
      record_invalid(first_invalid, index);
      continue;
    }
    output[(index / in_plane) * out_plane + target] = input[index];
  }
}

// One thread per output element: out[plane][i] = source[plane][index], 0 for an invalid index.
template <typename scalar_t>
__global__ void gather_by_indices_kernel(const scalar_t* __restrict__ source,
                                         const int64_t* __restrict__ indices, int64_t plane,
                                         int64_t source_plane, int64_t total,
                                         scalar_t* __restrict__ out,
                                         unsigned long long* first_invalid) {
  FASTCONV_GRID_STRIDE_LOOP(index, total) {
    const int64_t from = indices[index];
    if (from < 0 || from >= source_plane) {
      record_invalid(first_invalid, index);
      out[index] = scalar_t(0);
      continue;
    }
    out[index] = source[(index / plane) * source_plane + from];
  }
}

}  // namespace

void max_unpool2d_forward(const Unpool2dGeometry& g, const at::Tensor& x, const at::Tensor& indices,
                          at::Tensor& output) {
  const int64_t total = x.numel();
  InvalidIndexRecord invalid(x);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "max_unpool2d", [&] {
    max_unpool2d_scatter_kernel<scalar_t>
        <<<blocks_for(total), kThreadsPerBlock, 0, at::cuda::getCurrentCUDAStream()>>>(
            x.const_data_ptr<scalar_t>(), indices.const_data_ptr<int64_t>(), g.in_h * g.in_w,
            g.out_h * g.out_w, total, output.mutable_data_ptr<scalar_t>(),
            invalid.device_pointer());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  invalid.throw_if_any(indices, g.out_h, g.out_w);
}

void gather_by_indices(const at::Tensor& source, const at::Tensor& indices, at::Tensor& out) {
  const int64_t source_plane = source.size(-2) * source.size(-1);
  const int64_t plane = indices.size(-2) * indices.size(-1);
  const int64_t total = out.numel();
  InvalidIndexRecord invalid(source);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, source.scalar_type(), "max_unpool2d_backward", [&] {
        gather_by_indices_kernel<scalar_t>
            <<<blocks_for(total), kThreadsPerBlock, 0, at::cuda::getCurrentCUDAStream()>>>(
                source.const_data_ptr<scalar_t>(), indices.const_data_ptr<int64_t>(), plane,
                source_plane, total, out.mutable_data_ptr<scalar_t>(), invalid.device_pointer());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  invalid.throw_if_any(indices, source.size(-2), source.size(-1));
}

}  // namespace fastconv::cuda
