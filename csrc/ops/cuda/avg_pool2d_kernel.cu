// The CUDA avg_pool2d kernels (ops/avg_pool2d_kernels.h), for NCHW and channels_last input, on the
// current stream.
//
// Forward: one thread per output, which sums its window's taps inside the input (in float for the
// half types) and divides by the window's divisor (ops/pool_windows.h). Backward: a gather, one
// thread per input element, which sums grad_output / divisor over the windows that cover it, in
// window order: no atomics, so the result is deterministic and equal to the CPU kernel's sums.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>

#include "ops/avg_pool2d_kernels.h"
#include "ops/cuda/launch.cuh"
#include "ops/pool_windows.h"

namespace fastconv::cuda {
namespace {

// The sizes of AvgPool2dGeometry that the kernels need, as a plain struct they take by value.
struct AvgShape {
  int64_t channels, in_h, in_w, out_h, out_w;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  bool count_include_pad;
  int64_t divisor_override;
};

AvgShape avg_shape(const AvgPool2dGeometry& g) {
  return {g.channels,        g.in_h,     g.in_w,     g.out_h, g.out_w, g.kernel_h,
          g.kernel_w,        g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.count_include_pad,
          g.divisor_override};
}

__device__ __forceinline__ AvgWindow rows_of(const AvgShape& s, int64_t oh) {
  return avg_window(oh, s.stride_h, s.pad_h, s.kernel_h, s.in_h);
}

__device__ __forceinline__ AvgWindow cols_of(const AvgShape& s, int64_t ow) {
  return avg_window(ow, s.stride_w, s.pad_w, s.kernel_w, s.in_w);
}

// `input` points at the start of the plane (NCHW, stride_c = 1) or at channel c of the image
// (channels_last, stride_c = C); a tap (ih, iw) is at input[(ih * W + iw) * stride_c].
template <typename scalar_t>
__device__ __forceinline__ scalar_t window_average(const scalar_t* input, int64_t stride_c,
                                                   const AvgShape& s, int64_t oh, int64_t ow) {
  using acc_t = at::opmath_type<scalar_t>;
  const AvgWindow rows = rows_of(s, oh), cols = cols_of(s, ow);
  if (rows.begin >= rows.end || cols.begin >= cols.end) {
    return scalar_t(0);
  }
  acc_t sum = 0;
  for (int64_t ih = rows.begin; ih < rows.end; ++ih) {
    for (int64_t iw = cols.begin; iw < cols.end; ++iw) {
      sum += static_cast<acc_t>(input[(ih * s.in_w + iw) * stride_c]);
    }
  }
  const int64_t divisor = avg_divisor(rows, cols, s.count_include_pad, s.divisor_override);
  return static_cast<scalar_t>(sum / static_cast<acc_t>(divisor));
}

template <typename scalar_t>
__global__ void avg_pool2d_kernel(const scalar_t* __restrict__ input, AvgShape s,
                                  bool channels_last, int64_t total,
                                  scalar_t* __restrict__ output) {
  const int64_t C = s.channels, in_plane = s.in_h * s.in_w;
  FASTCONV_GRID_STRIDE_LOOP(index, total) {
    if (channels_last) {  // index = ((n * H' + oh) * W' + ow) * C + c
      const int64_t c = index % C, pixel = index / C;
      const int64_t n = pixel / (s.out_h * s.out_w);
      output[index] = window_average(input + n * in_plane * C + c, C, s,
                                     (pixel / s.out_w) % s.out_h, pixel % s.out_w);
    } else {  // index = (plane * H' + oh) * W' + ow
      const int64_t plane = index / (s.out_h * s.out_w);
      output[index] = window_average(input + plane * in_plane, 1, s, (index / s.out_w) % s.out_h,
                                     index % s.out_w);
    }
  }
}

// `grad_output` points at the start of the element's plane (NCHW, stride_c = 1) or at its
// channel of its image (channels_last, stride_c = C).
template <typename scalar_t>
__device__ __forceinline__ scalar_t gather_gradient(const scalar_t* grad_output, int64_t stride_c,
                                                    const AvgShape& s, int64_t ih, int64_t iw) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto rows = covering_windows(ih, s.stride_h, s.pad_h, s.kernel_h, 1, s.out_h);
  const auto cols = covering_windows(iw, s.stride_w, s.pad_w, s.kernel_w, 1, s.out_w);
  acc_t sum = 0;
  for (int64_t oh = rows.first; oh <= rows.last; ++oh) {
    const AvgWindow window_rows = rows_of(s, oh);
    for (int64_t ow = cols.first; ow <= cols.last; ++ow) {
      const int64_t divisor =
          avg_divisor(window_rows, cols_of(s, ow), s.count_include_pad, s.divisor_override);
      sum += static_cast<acc_t>(grad_output[(oh * s.out_w + ow) * stride_c]) /
          static_cast<acc_t>(divisor);
    }
  }
  return static_cast<scalar_t>(sum);
}

template <typename scalar_t>
__global__ void avg_pool2d_backward_kernel(const scalar_t* __restrict__ grad_output, AvgShape s,
                                           bool channels_last, int64_t total,
                                           scalar_t* __restrict__ grad_input) {
  const int64_t C = s.channels, out_plane = s.out_h * s.out_w;
  FASTCONV_GRID_STRIDE_LOOP(index, total) {
    if (channels_last) {  // index = ((n * H + ih) * W + iw) * C + c
      const int64_t c = index % C, pixel = index / C;
      const int64_t n = pixel / (s.in_h * s.in_w);
      grad_input[index] = gather_gradient(grad_output + n * out_plane * C + c, C, s,
                                          (pixel / s.in_w) % s.in_h, pixel % s.in_w);
    } else {  // index = (plane * H + ih) * W + iw
      const int64_t plane = index / (s.in_h * s.in_w);
      grad_input[index] = gather_gradient(grad_output + plane * out_plane, 1, s,
                                          (index / s.in_w) % s.in_h, index % s.in_w);
    }
  }
}

}  // namespace

void avg_pool2d_forward(const AvgPool2dGeometry& g, const at::Tensor& x, at::MemoryFormat layout,
                        at::Tensor& output) {
  const int64_t total = output.numel();
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "avg_pool2d", [&] {
    avg_pool2d_kernel<scalar_t><<<blocks_for(total), kThreadsPerBlock, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), avg_shape(g), layout == at::MemoryFormat::ChannelsLast, total,
        output.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

void avg_pool2d_backward(const AvgPool2dGeometry& g, const at::Tensor& grad_output,
                         at::MemoryFormat layout, at::Tensor& grad_input) {
  const int64_t total = grad_input.numel();
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad_output.scalar_type(), "avg_pool2d_backward", [&] {
        avg_pool2d_backward_kernel<scalar_t><<<blocks_for(total), kThreadsPerBlock, 0, stream>>>(
            grad_output.const_data_ptr<scalar_t>(), avg_shape(g),
            layout == at::MemoryFormat::ChannelsLast, total,
            grad_input.mutable_data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

}  // namespace fastconv::cuda
