// im2col and its inverse (a gather) for a chunk of images and a band of output rows, on the GPU.
//
// Column layout of a chunk of `images` images: one row per (input channel, kernel row, kernel
// column) over all input channels, so group g's rows are a contiguous block; within a row the
// images lie side by side, each with the `band` output pixels of output rows [oh_begin, oh_end):
//
//   columns[(row * images + n) * band + p]
//
// One GEMM operand per (image, group) is then a strided matrix of leading dimension images * band,
// so the GEMMs can be batched over images or over groups, and the weight gradient can sum over the
// images of a chunk inside a single GEMM (its reduction dimension is images * band).
#pragma once

#include <ATen/OpMathType.h>

#include "ops/cuda/launch.cuh"
#include "ops/shape_checks.h"

namespace fastconv::cuda {

// The sizes of Conv2dGeometry that the kernels need, as a plain struct they can take by value.
struct ConvShape {
  int64_t in_h, in_w, out_h, out_w;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
};

inline ConvShape conv_shape(const Conv2dGeometry& g) {
  return {g.in_h,     g.in_w,     g.out_h, g.out_w, g.kernel_h,   g.kernel_w,
          g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dilation_h, g.dilation_w};
}

// The kernels' sizes in their index type (int32 when every offset fits, see fits_int32).
template <typename index_t>
struct Shape {
  index_t in_h, in_w, out_w, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
      dilation_w;

  __device__ explicit Shape(const ConvShape& s)
      : in_h(s.in_h),
        in_w(s.in_w),
        out_w(s.out_w),
        kernel_h(s.kernel_h),
        kernel_w(s.kernel_w),
        stride_h(s.stride_h),
        stride_w(s.stride_w),
        pad_h(s.pad_h),
        pad_w(s.pad_w),
        dilation_h(s.dilation_h),
        dilation_w(s.dilation_w) {}
};

// One thread per (channel, image, output pixel of the band); it writes that pixel's column entry
// for every kernel tap, so consecutive threads write consecutive addresses.
template <typename T, typename index_t>
__global__ void im2col_kernel(const T* __restrict__ images, index_t image_count, index_t channels,
                              ConvShape shape, index_t oh_begin, index_t band,
                              T* __restrict__ columns) {
  const Shape<index_t> s(shape);
  const index_t row_step = image_count * band;  // from one column row to the next
  FASTCONV_GRID_STRIDE_LOOP_T(index_t, index, channels * image_count * band) {
    const index_t p = index % band;
    const index_t n = (index / band) % image_count;
    const index_t c = index / (band * image_count);
    const index_t ih0 = (oh_begin + p / s.out_w) * s.stride_h - s.pad_h;
    const index_t iw0 = (p % s.out_w) * s.stride_w - s.pad_w;
    const T* plane = images + (n * channels + c) * s.in_h * s.in_w;
    T* out = columns + (c * s.kernel_h * s.kernel_w * image_count + n) * band + p;
    for (index_t i = 0; i < s.kernel_h; ++i) {
      const index_t ih = ih0 + i * s.dilation_h;
      const bool row_inside = ih >= 0 && ih < s.in_h;
      for (index_t j = 0; j < s.kernel_w; ++j, out += row_step) {
        const index_t iw = iw0 + j * s.dilation_w;
        *out = (row_inside && iw >= 0 && iw < s.in_w) ? plane[ih * s.in_w + iw] : T(0);
      }
    }
  }
}

// Output position o with o * stride == t, if there is one (stride 1, the common case, skips the
// division).
template <typename index_t>
__device__ __forceinline__ bool output_at(index_t t, index_t stride, index_t* o) {
  if (t < 0) return false;
  if (stride == 1) {
    *o = t;
    return true;
  }
  *o = t / stride;
  return *o * stride == t;
}

// One thread per input pixel of input rows [ih_begin, ih_begin + ih_count): it sums, in a fixed
// order, the column entries of the band that were read from it, and adds the sum to the pixel
// (or stores it when `accumulate` is false). No two threads write the same pixel: no atomics, and
// the result does not depend on scheduling.
template <typename T, typename index_t>
__global__ void col2im_gather_kernel(const T* __restrict__ columns, index_t image_count,
                                     index_t channels, ConvShape shape, index_t oh_begin,
                                     index_t oh_end, index_t ih_begin, index_t ih_count,
                                     bool accumulate, T* __restrict__ images) {
  using acc_t = at::opmath_type<T>;
  const Shape<index_t> s(shape);
  const index_t band = (oh_end - oh_begin) * s.out_w;
  const index_t row_step = image_count * band;
  FASTCONV_GRID_STRIDE_LOOP_T(index_t, index, image_count * channels * ih_count * s.in_w) {
    const index_t iw = index % s.in_w;
    const index_t ih = ih_begin + (index / s.in_w) % ih_count;
    const index_t c = (index / (s.in_w * ih_count)) % channels;
    const index_t n = index / (s.in_w * ih_count * channels);
    acc_t sum = 0;
    for (index_t i = 0; i < s.kernel_h; ++i) {
      index_t oh;  // tap i of output row oh reads input row ih
      if (!output_at<index_t>(ih + s.pad_h - i * s.dilation_h, s.stride_h, &oh) || oh < oh_begin ||
          oh >= oh_end) {
        continue;
      }
      const T* row = columns + ((c * s.kernel_h + i) * s.kernel_w * image_count + n) * band +
          (oh - oh_begin) * s.out_w;
      for (index_t j = 0; j < s.kernel_w; ++j) {
        index_t ow;
        if (output_at<index_t>(iw + s.pad_w - j * s.dilation_w, s.stride_w, &ow) && ow < s.out_w) {
          sum += static_cast<acc_t>(row[j * row_step + ow]);
        }
      }
    }
    T& pixel = images[((n * channels + c) * s.in_h + ih) * s.in_w + iw];
    pixel = accumulate ? static_cast<T>(static_cast<acc_t>(pixel) + sum) : static_cast<T>(sum);
  }
}

}  // namespace fastconv::cuda
