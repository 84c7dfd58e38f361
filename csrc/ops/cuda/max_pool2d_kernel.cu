// The CUDA max_pool2d kernels (ops/max_pool2d_kernels.h), for NCHW and channels_last input, on the
// current stream.
//
// Forward: one thread per output, which scans its window and writes the maximum and its index,
// with torch's rule (ops/pool_windows.h). Backward: a gather, one thread per input element, which
// sums the gradients of the windows that could have picked it and did (their index names it), in
// window order: no atomics, so the result is deterministic and equal to the CPU kernel's sums.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/NumericLimits.cuh>

#include "ops/cuda/launch.cuh"
#include "ops/max_pool2d_kernels.h"
#include "ops/pool_windows.h"

namespace fastconv::cuda {
namespace {

// The sizes of Pool2dGeometry that the kernels need, as a plain struct they can take by value.
struct PoolShape {
  int64_t channels, in_h, in_w, out_h, out_w;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
};

PoolShape pool_shape(const Pool2dGeometry& g) {
  return {g.channels, g.in_h,     g.in_w,  g.out_h, g.out_w,      g.kernel_h,  g.kernel_w,
          g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dilation_h, g.dilation_w};
}

// `stride_c` is 1 for NCHW (a plane per (n, c)) and C for channels_last, where `input` points at
// channel c of image n; `pixel` then indexes h * W + w.
template <typename scalar_t>
__device__ __forceinline__ void pool_window(const scalar_t* input, int64_t stride_c,
                                            const PoolShape& s, int64_t oh, int64_t ow,
                                            scalar_t* value, int64_t* index_out) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto rows = window_taps(oh, s.stride_h, s.pad_h, s.kernel_h, s.dilation_h, s.in_h);
  const auto cols = window_taps(ow, s.stride_w, s.pad_w, s.kernel_w, s.dilation_w, s.in_w);
  acc_t best = at::numeric_limits<acc_t>::lower_bound();
  int64_t best_index = rows.begin * s.in_w + cols.begin;
  for (int64_t ih = rows.begin; ih < rows.end; ih += s.dilation_h) {
    for (int64_t iw = cols.begin; iw < cols.end; iw += s.dilation_w) {
      const int64_t pixel = ih * s.in_w + iw;
      const scalar_t v = input[pixel * stride_c];
      if (replaces_max(v, best)) {
        best = static_cast<acc_t>(v);
        best_index = pixel;
      }
    }
  }
  *value = static_cast<scalar_t>(best);
  *index_out = best_index;
}

template <typename scalar_t>
__global__ void max_pool2d_nchw_kernel(const scalar_t* __restrict__ input, PoolShape s,
                                       int64_t total, scalar_t* __restrict__ output,
                                       int64_t* __restrict__ indices) {
  const int64_t out_plane = s.out_h * s.out_w;
  FASTCONV_GRID_STRIDE_LOOP(index, total) {
    const int64_t plane = index / out_plane;
    const int64_t oh = (index / s.out_w) % s.out_h, ow = index % s.out_w;
    pool_window(input + plane * s.in_h * s.in_w, 1, s, oh, ow, output + index, indices + index);
  }
}

// Channels innermost: consecutive threads read consecutive channels of the same pixel.
template <typename scalar_t>
__global__ void max_pool2d_channels_last_kernel(const scalar_t* __restrict__ input, PoolShape s,
                                                int64_t total, scalar_t* __restrict__ output,
                                                int64_t* __restrict__ indices) {
  const int64_t C = s.channels;
  FASTCONV_GRID_STRIDE_LOOP(index, total) {
    const int64_t c = index % C;
    const int64_t ow = (index / C) % s.out_w, oh = (index / (C * s.out_w)) % s.out_h;
    const int64_t n = index / (C * s.out_w * s.out_h);
    pool_window(input + n * s.in_h * s.in_w * C + c, C, s, oh, ow, output + index, indices + index);
  }
}

// `grad_output` and `indices` point at the start of input element's plane (NCHW) or at its
// channel of its image (channels_last, stride_c = C).
template <typename scalar_t>
__device__ __forceinline__ scalar_t gather_gradient(const scalar_t* grad_output,
                                                    const int64_t* indices, int64_t stride_c,
                                                    const PoolShape& s, int64_t ih, int64_t iw) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto rows = covering_windows(ih, s.stride_h, s.pad_h, s.kernel_h, s.dilation_h, s.out_h);
  const auto cols = covering_windows(iw, s.stride_w, s.pad_w, s.kernel_w, s.dilation_w, s.out_w);
  const int64_t pixel = ih * s.in_w + iw;
  acc_t sum = 0;
  for (int64_t oh = rows.first; oh <= rows.last; ++oh) {
    for (int64_t ow = cols.first; ow <= cols.last; ++ow) {
      const int64_t o = (oh * s.out_w + ow) * stride_c;
      if (indices[o] == pixel) {
        sum += static_cast<acc_t>(grad_output[o]);
      }
    }
  }
  return static_cast<scalar_t>(sum);
}

template <typename scalar_t>
__global__ void max_pool2d_backward_nchw_kernel(const scalar_t* __restrict__ grad_output,
                                                const int64_t* __restrict__ indices, PoolShape s,
                                                int64_t total, scalar_t* __restrict__ grad_input) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
  FASTCONV_GRID_STRIDE_LOOP(index, total) {
    const int64_t plane = index / in_plane;
    const int64_t ih = (index / s.in_w) % s.in_h, iw = index % s.in_w;
    grad_input[index] =
        gather_gradient(grad_output + plane * out_plane, indices + plane * out_plane, 1, s, ih, iw);
  }
}

template <typename scalar_t>
__global__ void max_pool2d_backward_channels_last_kernel(const scalar_t* __restrict__ grad_output,
                                                         const int64_t* __restrict__ indices,
                                                         PoolShape s, int64_t total,
                                                         scalar_t* __restrict__ grad_input) {
  const int64_t C = s.channels, out_image = s.out_h * s.out_w * C;
  FASTCONV_GRID_STRIDE_LOOP(index, total) {
    const int64_t c = index % C;
    const int64_t iw = (index / C) % s.in_w, ih = (index / (C * s.in_w)) % s.in_h;
    const int64_t n = index / (C * s.in_w * s.in_h);
    const int64_t offset = n * out_image + c;
    grad_input[index] = gather_gradient(grad_output + offset, indices + offset, C, s, ih, iw);
  }
}

}  // namespace

void max_pool2d_forward(const Pool2dGeometry& g, const at::Tensor& x, at::MemoryFormat layout,
                        at::Tensor& output, at::Tensor& indices) {
  const int64_t total = output.numel();
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_ALL_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "max_pool2d", [&] {
    auto kernel = layout == at::MemoryFormat::ChannelsLast
        ? max_pool2d_channels_last_kernel<scalar_t>
        : max_pool2d_nchw_kernel<scalar_t>;
    kernel<<<blocks_for(total), kThreadsPerBlock, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), pool_shape(g), total, output.mutable_data_ptr<scalar_t>(),
        indices.mutable_data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

void max_pool2d_backward(const Pool2dGeometry& g, const at::Tensor& grad_output,
                         const at::Tensor& indices, at::MemoryFormat layout,
                         at::Tensor& grad_input) {
  const int64_t total = grad_input.numel();
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad_output.scalar_type(), "max_pool2d_backward", [&] {
        auto kernel = layout == at::MemoryFormat::ChannelsLast
            ? max_pool2d_backward_channels_last_kernel<scalar_t>
            : max_pool2d_backward_nchw_kernel<scalar_t>;
        kernel<<<blocks_for(total), kThreadsPerBlock, 0, stream>>>(
            grad_output.const_data_ptr<scalar_t>(), indices.const_data_ptr<int64_t>(),
            pool_shape(g), total, grad_input.mutable_data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

}  // namespace fastconv::cuda
