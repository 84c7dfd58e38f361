// The CUDA conv2d kernels (ops/conv2d_kernels.h): im2col on chunks of images and bands of output
// rows (im2col.cuh), then GEMMs through cuBLAS, on the current stream. NCHW contiguous tensors; the
// frontend (ops/conv2d.cpp) has checked them, set the device and converted channels_last.
//
// Per group g of image n, with K = out channels per group, rows = (in channels per group) * kh * kw
// and `band` the output pixels of a band of output rows (row-major matrices):
//   forward          y_ng[K x band]  = w_g[K x rows] * columns_ng[rows x band]
//   input backward   columns_ng      = w_g^T * gy_ng[K x band], then col2im as a gather
//   weight backward  gw_g[K x rows] += gy_g[K x images*band] * columns_g^T, over a chunk of images
// A 1x1, stride-1, unpadded convolution reads the image itself in place of the columns, except in
// the weight backward, whose GEMM wants the images of a chunk side by side (im2col does that).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/Exceptions.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <climits>
#include <type_traits>

#include "ops/conv2d_kernels.h"
#include "ops/cuda/im2col.cuh"
#include "ops/cuda/launch.cuh"

namespace fastconv::cuda {
namespace {

// Bound on the im2col workspace of one call. Chunks of whole images when an image's columns fit
// (bigger, fewer GEMMs), bands of output rows of one image when they do not.
constexpr int64_t kWorkspaceBytes = 128 << 20;

struct Chunking {
  int64_t images, band_rows;
};

// `bytes_per_pixel`: workspace bytes per output pixel of one image.
Chunking plan_chunks(const Conv2dGeometry& g, int64_t bytes_per_pixel) {
  const int64_t row_bytes = std::max<int64_t>(1, bytes_per_pixel * g.out_w);
  const int64_t band_rows =
      std::clamp<int64_t>(kWorkspaceBytes / row_bytes, 1, std::max<int64_t>(g.out_h, 1));
  const int64_t images = band_rows < g.out_h
      ? 1
      : std::clamp<int64_t>(kWorkspaceBytes / (row_bytes * g.out_h), 1,
                            std::max<int64_t>(g.batch, 1));
  return {images, band_rows};
}

// ------------------------------------------------------------------------------------ cuBLAS

// Restores the handle's math mode on exit (the handle is torch's, shared with its own GEMMs).
class MathModeGuard {
 public:
  MathModeGuard(cublasHandle_t handle, cublasMath_t mode) : handle_(handle) {
    TORCH_CUDABLAS_CHECK(cublasGetMathMode(handle_, &previous_));
    TORCH_CUDABLAS_CHECK(cublasSetMathMode(handle_, mode));
  }
  ~MathModeGuard() { cublasSetMathMode(handle_, previous_); }

 private:
  cublasHandle_t handle_;
  cublasMath_t previous_;
};

template <typename T>
constexpr cudaDataType_t cuda_data_type() {
  if constexpr (std::is_same_v<T, at::Half>) {
    return CUDA_R_16F;
  } else if constexpr (std::is_same_v<T, at::BFloat16>) {
    return CUDA_R_16BF;
  } else {
    return CUDA_R_32F;
  }
}

// Row-major strided-batched GEMM, C_i = op(A_i) * op(B_i) (+ C_i when `accumulate`), C_i m x n,
// for i < batches. cuBLAS is column-major, where a row-major matrix reads as its transpose, so this
// asks it for C^T = op(B)^T op(A)^T. Half types multiply in fp32 and accumulate in fp32; OutT may
// be float for them, to accumulate across calls in fp32 as well. float honours torch's TF32 switch
// for matmuls (torch sets the handle's math mode from it).
template <typename T, typename OutT = T>
void gemm_row_major(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a,
                    int64_t lda, int64_t stride_a, const T* b, int64_t ldb, int64_t stride_b,
                    bool accumulate, OutT* c, int64_t ldc, int64_t stride_c, int64_t batches) {
  for (const int64_t v : {m, n, k, lda, ldb, ldc, batches}) {
    TORCH_CHECK(v <= INT_MAX, "fastconv conv2d: a GEMM dimension (", v,
                ") exceeds what cuBLAS takes");
  }
  const cublasHandle_t handle = at::cuda::getCurrentCUDABlasHandle();  // on the current stream
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
  const int batch_count = static_cast<int>(batches);
  if constexpr (std::is_same_v<T, double>) {
    const double alpha = 1, beta = accumulate ? 1 : 0;
    TORCH_CUDABLAS_CHECK(cublasDgemmStridedBatched(handle, op_b, op_a, ni, mi, ki, &alpha, b, ldb,
                                                   stride_b, a, lda, stride_a, &beta, c, ldc,
                                                   stride_c, batch_count));
  } else if constexpr (std::is_same_v<T, float>) {
    const float alpha = 1, beta = accumulate ? 1 : 0;
    TORCH_CUDABLAS_CHECK(cublasSgemmStridedBatched(handle, op_b, op_a, ni, mi, ki, &alpha, b, ldb,
                                                   stride_b, a, lda, stride_a, &beta, c, ldc,
                                                   stride_c, batch_count));
  } else {
    const float alpha = 1, beta = accumulate ? 1 : 0;
    // Without this cuBLAS may sum split-K partial results in half precision.
    const MathModeGuard fp32_reduction(
        handle,
        static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                  CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
    TORCH_CUDABLAS_CHECK(cublasGemmStridedBatchedEx(
        handle, op_b, op_a, ni, mi, ki, &alpha, b, cuda_data_type<T>(), ldb, stride_b, a,
        cuda_data_type<T>(), lda, stride_a, &beta, c, cuda_data_type<OutT>(), ldc, stride_c,
        batch_count, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

// Element strides from one image to the next and from one group to the next.
struct Strides {
  int64_t image, group;
};

// One GEMM per (image, group) of a chunk: strided batches over the images with a loop over the
// groups, or the other way round, whichever launches fewer calls (a single call when groups == 1).
template <typename T>
void gemm_per_image_and_group(int64_t images, int64_t groups, bool trans_a, bool trans_b, int64_t m,
                              int64_t n, int64_t k, const T* a, int64_t lda, Strides sa, const T* b,
                              int64_t ldb, Strides sb, bool accumulate, T* c, int64_t ldc,
                              Strides sc) {
  if (groups <= images) {
    for (int64_t group = 0; group < groups; ++group) {
      gemm_row_major(trans_a, trans_b, m, n, k, a + group * sa.group, lda, sa.image,
                     b + group * sb.group, ldb, sb.image, accumulate, c + group * sc.group, ldc,
                     sc.image, images);
    }
  } else {
    for (int64_t image = 0; image < images; ++image) {
      gemm_row_major(trans_a, trans_b, m, n, k, a + image * sa.image, lda, sa.group,
                     b + image * sb.image, ldb, sb.group, accumulate, c + image * sc.image, ldc,
                     sc.group, groups);
    }
  }
}

// ------------------------------------------------------------------------------------ kernels

template <typename T>
__global__ void fill_with_bias_kernel(T* __restrict__ output, const T* __restrict__ bias,
                                      int64_t channels, int64_t plane, int64_t total) {
  FASTCONV_GRID_STRIDE_LOOP(index, total) { output[index] = bias[(index / plane) % channels]; }
}

// int32 index arithmetic when the chunk's image and column offsets fit, else int64.
bool chunk_fits_int32(const Conv2dGeometry& g, int64_t image_count, int64_t band) {
  return fits_int32(image_count * g.in_channels * g.in_plane()) &&
      fits_int32(image_count * g.in_channels * g.kernel_h * g.kernel_w * band);
}

template <typename T>
void launch_im2col(const T* images, int64_t image_count, const Conv2dGeometry& g, int64_t oh_begin,
                   int64_t band, T* columns) {
  const int64_t threads = g.in_channels * image_count * band;
  const auto stream = at::cuda::getCurrentCUDAStream();
  if (chunk_fits_int32(g, image_count, band)) {
    im2col_kernel<T, int32_t><<<blocks_for(threads), kThreadsPerBlock, 0, stream>>>(
        images, image_count, g.in_channels, conv_shape(g), oh_begin, band, columns);
  } else {
    im2col_kernel<T, int64_t><<<blocks_for(threads), kThreadsPerBlock, 0, stream>>>(
        images, image_count, g.in_channels, conv_shape(g), oh_begin, band, columns);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Adds (or with `accumulate` false, stores) into input rows [ih_begin, ih_end) of the chunk's
// images what the band's columns read from them.
template <typename T>
void launch_col2im_gather(const T* columns, int64_t image_count, const Conv2dGeometry& g,
                          int64_t oh_begin, int64_t oh_end, int64_t ih_begin, int64_t ih_end,
                          bool accumulate, T* images) {
  const int64_t threads = image_count * g.in_channels * (ih_end - ih_begin) * g.in_w;
  const int64_t band = (oh_end - oh_begin) * g.out_w;
  const auto stream = at::cuda::getCurrentCUDAStream();
  if (chunk_fits_int32(g, image_count, band)) {
    col2im_gather_kernel<T, int32_t><<<blocks_for(threads), kThreadsPerBlock, 0, stream>>>(
        columns, image_count, g.in_channels, conv_shape(g), oh_begin, oh_end, ih_begin,
        ih_end - ih_begin, accumulate, images);
  } else {
    col2im_gather_kernel<T, int64_t><<<blocks_for(threads), kThreadsPerBlock, 0, stream>>>(
        columns, image_count, g.in_channels, conv_shape(g), oh_begin, oh_end, ih_begin,
        ih_end - ih_begin, accumulate, images);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// ------------------------------------------------------------------------------------ drivers

template <typename scalar_t>
void forward(const Conv2dGeometry& g, const scalar_t* x, const scalar_t* w, const scalar_t* bias,
             scalar_t* y, const at::TensorOptions& options) {
  const int64_t K = g.out_channels_per_group(), C = g.in_channels_per_group(),
                rows = g.column_rows(), P = g.out_plane();
  const int64_t in_image = g.in_channels * g.in_plane(), out_image = g.out_channels * P;
  const bool has_bias = bias != nullptr;
  if (has_bias) {  // the GEMMs then add onto the bias
    const int64_t total = g.batch * out_image;
    fill_with_bias_kernel<scalar_t>
        <<<blocks_for(total), kThreadsPerBlock, 0, at::cuda::getCurrentCUDAStream()>>>(
            y, bias, g.out_channels, P, total);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  const Strides weight_strides{0, K * rows}, output_strides{out_image, K * P};
  if (g.is_pointwise()) {
    gemm_per_image_and_group(g.batch, g.groups, false, false, K, P, C, w, rows, weight_strides, x,
                             P, Strides{in_image, C * g.in_plane()}, has_bias, y, P,
                             output_strides);
    return;
  }
  const auto chunk = plan_chunks(g, g.in_channels * g.kernel_h * g.kernel_w * sizeof(scalar_t));
  auto workspace = at::empty(
      {chunk.images * chunk.band_rows * g.out_w * g.in_channels * g.kernel_h * g.kernel_w},
      options);
  scalar_t* columns = workspace.mutable_data_ptr<scalar_t>();
  for (int64_t n0 = 0; n0 < g.batch; n0 += chunk.images) {
    const int64_t images = std::min(chunk.images, g.batch - n0);
    for (int64_t oh0 = 0; oh0 < g.out_h; oh0 += chunk.band_rows) {
      const int64_t band = (std::min(g.out_h, oh0 + chunk.band_rows) - oh0) * g.out_w;
      launch_im2col(x + n0 * in_image, images, g, oh0, band, columns);
      gemm_per_image_and_group(images, g.groups, false, false, K, band, rows, w, rows,
                               weight_strides, columns, images * band,
                               Strides{band, rows * images * band}, has_bias,
                               y + n0 * out_image + oh0 * g.out_w, P, output_strides);
    }
  }
}

template <typename scalar_t>
void input_backward(const Conv2dGeometry& g, const scalar_t* gy, const scalar_t* w,
                    at::Tensor& grad_input) {
  scalar_t* gx = grad_input.mutable_data_ptr<scalar_t>();
  const int64_t K = g.out_channels_per_group(), C = g.in_channels_per_group(),
                rows = g.column_rows(), P = g.out_plane();
  const int64_t in_image = g.in_channels * g.in_plane(), out_image = g.out_channels * P;
  const Strides weight_strides{0, K * rows}, grad_output_strides{out_image, K * P};
  if (g.is_pointwise()) {
    gemm_per_image_and_group(g.batch, g.groups, true, false, C, P, K, w, rows, weight_strides, gy,
                             P, grad_output_strides, false, gx, P,
                             Strides{in_image, C * g.in_plane()});
    return;
  }
  const auto chunk = plan_chunks(g, g.in_channels * g.kernel_h * g.kernel_w * sizeof(scalar_t));
  // With one band the gather writes every input pixel once (grad_input may start uninitialised);
  // with several, each band adds its part to the rows it touches, in band order.
  const bool single_band = chunk.band_rows >= g.out_h;
  if (!single_band) {
    grad_input.zero_();
  }
  auto workspace = at::empty(
      {chunk.images * chunk.band_rows * g.out_w * g.in_channels * g.kernel_h * g.kernel_w},
      grad_input.options());
  scalar_t* columns = workspace.mutable_data_ptr<scalar_t>();
  for (int64_t n0 = 0; n0 < g.batch; n0 += chunk.images) {
    const int64_t images = std::min(chunk.images, g.batch - n0);
    for (int64_t oh0 = 0; oh0 < g.out_h; oh0 += chunk.band_rows) {
      const int64_t oh1 = std::min(g.out_h, oh0 + chunk.band_rows);
      const int64_t band = (oh1 - oh0) * g.out_w;
      gemm_per_image_and_group(images, g.groups, true, false, rows, band, K, w, rows,
                               weight_strides, gy + n0 * out_image + oh0 * g.out_w, P,
                               grad_output_strides, false, columns, images * band,
                               Strides{band, rows * images * band});
      int64_t ih_begin = 0, ih_end = g.in_h;
      if (!single_band) {  // the input rows this band's windows read
        ih_begin = std::max<int64_t>(0, oh0 * g.stride_h - g.pad_h);
        ih_end = std::min<int64_t>(
            g.in_h, (oh1 - 1) * g.stride_h - g.pad_h + (g.kernel_h - 1) * g.dilation_h + 1);
      }
      if (ih_end <= ih_begin) {
        continue;
      }
      launch_col2im_gather(columns, images, g, oh0, oh1, ih_begin, ih_end, !single_band,
                           gx + n0 * in_image);
    }
  }
}

// grad_weight accumulates chunk after chunk in a fixed order, each GEMM summing over the images
// of its chunk: the result does not depend on timing. Half types accumulate into fp32 `gw`.
template <typename scalar_t, typename acc_t>
void weight_backward(const Conv2dGeometry& g, const at::Tensor& x, const at::Tensor& gy,
                     acc_t* gw) {
  const int64_t K = g.out_channels_per_group(), rows = g.column_rows();
  const int64_t in_image = g.in_channels * g.in_plane();
  const int64_t column_rows_all = g.in_channels * g.kernel_h * g.kernel_w;
  const auto chunk = plan_chunks(g, (column_rows_all + g.out_channels) * sizeof(scalar_t));
  const int64_t band_capacity = chunk.images * chunk.band_rows * g.out_w;
  auto columns_buffer = at::empty({band_capacity * column_rows_all}, x.options());
  // grad_output of a chunk with the images side by side: [out channel][image][band pixel].
  auto grad_output_buffer = at::empty({band_capacity * g.out_channels}, gy.options());
  scalar_t* columns = columns_buffer.mutable_data_ptr<scalar_t>();
  const scalar_t* x_data = x.const_data_ptr<scalar_t>();
  bool first = true;
  for (int64_t n0 = 0; n0 < g.batch; n0 += chunk.images) {
    const int64_t images = std::min(chunk.images, g.batch - n0);
    for (int64_t oh0 = 0; oh0 < g.out_h; oh0 += chunk.band_rows) {
      const int64_t band_rows = std::min(g.out_h, oh0 + chunk.band_rows) - oh0;
      const int64_t width = images * band_rows * g.out_w;  // the GEMM's reduction length
      launch_im2col(x_data + n0 * in_image, images, g, oh0, band_rows * g.out_w, columns);
      auto gy_chunk = grad_output_buffer.narrow(0, 0, width * g.out_channels)
                          .view({g.out_channels, images, band_rows, g.out_w});
      gy_chunk.copy_(gy.narrow(0, n0, images).narrow(2, oh0, band_rows).transpose(0, 1));
      gemm_row_major<scalar_t, acc_t>(
          false, true, K, rows, width, gy_chunk.const_data_ptr<scalar_t>(), width, K * width,
          columns, width, rows * width, !first, gw, rows, K * rows, g.groups);
      first = false;
    }
  }
}

}  // namespace

void conv2d_forward(const Conv2dGeometry& g, const at::Tensor& x, const at::Tensor& w,
                    const at::Tensor& bias, at::Tensor& y) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "conv2d", [&] {
    forward<scalar_t>(g, x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
                      bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
                      y.mutable_data_ptr<scalar_t>(), x.options());
  });
}

void conv2d_input_backward(const Conv2dGeometry& g, const at::Tensor& gy, const at::Tensor& w,
                           at::Tensor& gx) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, gy.scalar_type(),
                                  "conv2d_input_backward", [&] {
                                    input_backward<scalar_t>(g, gy.const_data_ptr<scalar_t>(),
                                                             w.const_data_ptr<scalar_t>(), gx);
                                  });
}

void conv2d_weight_backward(const Conv2dGeometry& g, const at::Tensor& x, const at::Tensor& gy,
                            at::Tensor& gw) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "conv2d_weight_backward", [&] {
        using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
        if constexpr (std::is_same_v<acc_t, scalar_t>) {
          weight_backward<scalar_t, acc_t>(g, x, gy, gw.mutable_data_ptr<acc_t>());
        } else {  // accumulate in fp32, round once
          auto accumulator = at::empty(gw.sizes(), gy.options().dtype(at::kFloat));
          weight_backward<scalar_t, acc_t>(g, x, gy, accumulator.mutable_data_ptr<acc_t>());
          gw.copy_(accumulator);
        }
      });
}

}  // namespace fastconv::cuda
