// CUDA kernels of max_pool2d_with_indices and its backward, for NCHW and channels_last input.
//
// Forward: one thread per output, which scans its window and writes the maximum and its switch,
// with torch's rule (a larger value or a NaN takes the switch, so ties keep the first tap in window
// order and a NaN wins). Backward: a gather, one thread per input element, which sums the gradients
// of the windows that could have picked it and did (their switch names it), in window order: no
// atomics, so the result is deterministic and equal to the CPU kernel's sums.
#include <ATen/DeviceGuard.h>
#include <ATen/Dispatch.h>
#include <ATen/NumericUtils.h>
#include <ATen/OpMathType.h>
#include <ATen/TensorUtils.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/NumericLimits.cuh>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "../shape_checks.h"
#include "launch.cuh"

namespace fastconv::cuda {
namespace {

// The sizes of Pool2dGeometry that the kernels need, as a plain struct they can take by value.
struct PoolShape {
  int64_t channels, in_h, in_w, out_h, out_w;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
};

PoolShape pool_shape(const Pool2dGeometry& g) {
  return {g.channels, g.in_h,     g.in_w,     g.out_h, g.out_w,      g.kernel_h,  g.kernel_w,
          g.stride_h, g.stride_w, g.pad_h,    g.pad_w, g.dilation_h, g.dilation_w};
}

// The taps of output position `o` along one dimension that fall inside the input: [begin, end)
// stepping by the dilation. The first tap inside is the window's initial switch.
struct WindowTaps {
  int64_t begin, end;
};

__device__ __forceinline__ WindowTaps window_taps(int64_t o, int64_t stride, int64_t pad,
                                                  int64_t kernel, int64_t dilation,
                                                  int64_t size) {
  int64_t begin = o * stride - pad;
  const int64_t end = std::min(begin + (kernel - 1) * dilation + 1, size);
  while (begin < 0) {
    begin += dilation;
  }
  return {begin, end};
}

// The outputs along one dimension whose window span covers input position i: [first, last].
struct CoveringWindows {
  int64_t first, last;
};

__device__ __forceinline__ CoveringWindows covering_windows(int64_t i, int64_t stride,
                                                            int64_t pad, int64_t kernel,
                                                            int64_t dilation, int64_t outputs) {
  const int64_t reach = i + pad - (kernel - 1) * dilation;  // start of the leftmost window
  const int64_t first = reach <= 0 ? 0 : (reach + stride - 1) / stride;
  const int64_t last = std::min((i + pad) / stride, outputs - 1);
  return {first, last};
}

template <typename scalar_t, typename acc_t>
__device__ __forceinline__ bool takes_switch(scalar_t value, acc_t best) {
  return static_cast<acc_t>(value) > best || at::_isnan(value);
}

// `stride_c` is 1 for NCHW (a plane per (n, c)) and C for channels_last, where `input` points at
// channel c of image n; `pixel` then indexes h * W + w.
template <typename scalar_t>
__device__ __forceinline__ void pool_window(const scalar_t* input, int64_t stride_c,
                                            const PoolShape& s, int64_t oh, int64_t ow,
                                            scalar_t* value, int64_t* switch_out) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto rows = window_taps(oh, s.stride_h, s.pad_h, s.kernel_h, s.dilation_h, s.in_h);
  const auto cols = window_taps(ow, s.stride_w, s.pad_w, s.kernel_w, s.dilation_w, s.in_w);
  acc_t best = at::numeric_limits<acc_t>::lower_bound();
  int64_t best_index = rows.begin * s.in_w + cols.begin;
  for (int64_t ih = rows.begin; ih < rows.end; ih += s.dilation_h) {
    for (int64_t iw = cols.begin; iw < cols.end; iw += s.dilation_w) {
      const int64_t pixel = ih * s.in_w + iw;
      const scalar_t v = input[pixel * stride_c];
      if (takes_switch(v, best)) {
        best = static_cast<acc_t>(v);
        best_index = pixel;
      }
    }
  }
  *value = static_cast<scalar_t>(best);
  *switch_out = best_index;
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
    pool_window(input + n * s.in_h * s.in_w * C + c, C, s, oh, ow, output + index,
                indices + index);
  }
}

// `grad_output` and `switches` point at the start of input element's plane (NCHW) or at its
// channel of its image (channels_last, stride_c = C).
template <typename scalar_t>
__device__ __forceinline__ scalar_t gather_gradient(const scalar_t* grad_output,
                                                    const int64_t* switches, int64_t stride_c,
                                                    const PoolShape& s, int64_t ih, int64_t iw) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto rows = covering_windows(ih, s.stride_h, s.pad_h, s.kernel_h, s.dilation_h, s.out_h);
  const auto cols = covering_windows(iw, s.stride_w, s.pad_w, s.kernel_w, s.dilation_w, s.out_w);
  const int64_t pixel = ih * s.in_w + iw;
  acc_t sum = 0;
  for (int64_t oh = rows.first; oh <= rows.last; ++oh) {
    for (int64_t ow = cols.first; ow <= cols.last; ++ow) {
      const int64_t o = (oh * s.out_w + ow) * stride_c;
      if (switches[o] == pixel) {
        sum += static_cast<acc_t>(grad_output[o]);
      }
    }
  }
  return static_cast<scalar_t>(sum);
}

template <typename scalar_t>
__global__ void max_pool2d_backward_nchw_kernel(const scalar_t* __restrict__ grad_output,
                                                const int64_t* __restrict__ switches,
                                                PoolShape s, int64_t total,
                                                scalar_t* __restrict__ grad_input) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
  FASTCONV_GRID_STRIDE_LOOP(index, total) {
    const int64_t plane = index / in_plane;
    const int64_t ih = (index / s.in_w) % s.in_h, iw = index % s.in_w;
    grad_input[index] = gather_gradient(grad_output + plane * out_plane,
                                        switches + plane * out_plane, 1, s, ih, iw);
  }
}

template <typename scalar_t>
__global__ void max_pool2d_backward_channels_last_kernel(const scalar_t* __restrict__ grad_output,
                                                         const int64_t* __restrict__ switches,
                                                         PoolShape s, int64_t total,
                                                         scalar_t* __restrict__ grad_input) {
  const int64_t C = s.channels, out_image = s.out_h * s.out_w * C;
  FASTCONV_GRID_STRIDE_LOOP(index, total) {
    const int64_t c = index % C;
    const int64_t iw = (index / C) % s.in_w, ih = (index / (C * s.in_w)) % s.in_h;
    const int64_t n = index / (C * s.in_w * s.in_h);
    const int64_t offset = n * out_image + c;
    grad_input[index] = gather_gradient(grad_output + offset, switches + offset, C, s, ih, iw);
  }
}

at::MemoryFormat layout_of(const at::Tensor& t) {
  return is_channels_last(t) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

std::tuple<at::Tensor, at::Tensor> max_pool2d_with_indices_kernel(
    const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
  const auto g = check_max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode);
  const at::cuda::OptionalCUDAGuard device_guard(device_of(input));
  const bool channels_last = is_channels_last(input);
  const auto memory_format = layout_of(input);
  auto sizes = input.sizes().vec();
  sizes[sizes.size() - 2] = g.out_h;
  sizes[sizes.size() - 1] = g.out_w;
  auto output = at::empty(sizes, input.options().memory_format(memory_format));
  auto indices = at::empty(sizes, input.options().dtype(at::kLong).memory_format(memory_format));
  const int64_t total = output.numel();
  if (total == 0) {
    return {output, indices};
  }
  const auto x = input.contiguous(memory_format);
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_ALL_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "max_pool2d", [&] {
    auto kernel = channels_last ? max_pool2d_channels_last_kernel<scalar_t>
                                : max_pool2d_nchw_kernel<scalar_t>;
    kernel<<<blocks_for(total), kThreadsPerBlock, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), pool_shape(g), total, output.mutable_data_ptr<scalar_t>(),
        indices.mutable_data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {output, indices};
}

at::Tensor max_pool2d_with_indices_backward_kernel(
    const at::Tensor& grad_output, const at::Tensor& input, at::IntArrayRef kernel_size,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode,
    const at::Tensor& indices) {
  const auto g = check_max_pool2d_backward(grad_output, input, indices, kernel_size, stride,
                                           padding, dilation, ceil_mode);
  // torch's CUDA backward checks the devices with these argument names and positions.
  at::checkAllSameGPU("max_pool2d_with_indices_backward_out_cuda",
                      {{grad_output, "gradOutput_", 2}, {input, "input_", 3},
                       {indices, "indices", 4}});
  const at::cuda::OptionalCUDAGuard device_guard(device_of(input));
  const bool channels_last = is_channels_last(input);
  const auto memory_format = layout_of(input);
  if (grad_output.numel() == 0) {
    return at::zeros(input.sizes(), grad_output.options()).contiguous(memory_format);
  }
  auto grad_input =
      at::empty(input.sizes(), grad_output.options().memory_format(memory_format));
  const auto gy = grad_output.contiguous(memory_format);
  const auto switches = indices.contiguous(memory_format);
  const int64_t total = grad_input.numel();
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, gy.scalar_type(), "max_pool2d_backward", [&] {
    auto kernel = channels_last ? max_pool2d_backward_channels_last_kernel<scalar_t>
                                : max_pool2d_backward_nchw_kernel<scalar_t>;
    kernel<<<blocks_for(total), kThreadsPerBlock, 0, stream>>>(
        gy.const_data_ptr<scalar_t>(), switches.const_data_ptr<int64_t>(), pool_shape(g), total,
        grad_input.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_input;
}

} // namespace

TORCH_LIBRARY_IMPL(fastconv, CUDA, m) {
  m.impl("max_pool2d_with_indices", &max_pool2d_with_indices_kernel);
  m.impl("max_pool2d_with_indices_backward", &max_pool2d_with_indices_backward_kernel);
}

} // namespace fastconv::cuda
