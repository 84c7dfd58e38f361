// conv2d by im2col (or col2im) on bands of output rows and a GEMM through ATen's BLAS
// (blas_gemm.h), for every dtype: the plain path, and the one for the passes where MKL's GEMM beats
// our packed one (pointwise and deep layers; conv2d_path.cpp decides).
//
// Per group g of one image, with C = in channels and K = out channels per group, P = out_h*out_w,
// rows = C*kh*kw and `band` the output pixels of a band of output rows:
//   forward          y_g[K x band]    = w_g[K x rows] * columns[rows x band]
//   input backward   columns          = w_g^T * gy_g[K x band], then col2im
//   weight backward  gw_g[K x rows]  += gy_g[K x band] * columns^T
// A pointwise convolution uses the image x_g[C x P] itself in place of the columns.
#include "ops/cpu/conv2d/im2col_blas/im2col_blas.h"

#include <ATen/Dispatch.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>

#include <algorithm>

#include "ops/cpu/common.h"
#include "ops/cpu/conv2d/im2col_blas/blas_gemm.h"
#include "ops/cpu/conv2d/im2col_blas/im2col_bands.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"

namespace fastconv::cpu {
namespace {

// Column workspace per thread. Larger images are processed in bands of output rows.
constexpr int64_t kWorkspaceBytes = 16 << 20;

// Output rows per im2col band, so that one band's columns fit in kWorkspaceBytes.
int64_t rows_per_band(const Conv2dGeometry& g, int64_t element_size) {
  const int64_t row_bytes = std::max<int64_t>(1, g.column_rows() * g.out_w * element_size);
  return std::clamp<int64_t>(kWorkspaceBytes / row_bytes, 1, std::max<int64_t>(g.out_h, 1));
}

// A pointwise layer on small planes (ResNet-50's 7x7 stage) runs with the batch's images side by
// side: a K x C x 49 GEMM per image runs far below BLAS's peak, GEMMs of 392 and more columns
// near it, for a copy of the input and of the output. At 14x14 and more the per-image GEMMs are
// faster.
constexpr int64_t kBatchedPointwiseMaxPlane = 64;

bool batched_pointwise(const Conv2dGeometry& g) {
  return g.is_pointwise() && g.groups == 1 && g.batch > 1 &&
      g.out_plane() < kBatchedPointwiseMaxPlane;
}

// out_images[N, B, P] = matrix[B, A] x in_images[N, A, P] (+ bias[B]) with the images side by
// side ([A, N * P] and [B, N * P] in a workspace, copied by ATen), as one gemm() (its fixed tiles
// spread over the threads).
template <typename scalar_t>
void batched_pointwise_gemm(const Conv2dGeometry& g, const at::Tensor& in_images, int64_t a,
                            const Matrix<scalar_t>& matrix, const at::Tensor& bias,
                            at::Tensor& out_images, int64_t b) {
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const int64_t P = g.out_plane(), columns = g.batch * P;
  Workspace<scalar_t> buffer((a + b) * columns);
  const auto options = in_images.options();
  auto in = at::from_blob(buffer.data(), {a, columns}, options);
  auto out = at::from_blob(buffer.data() + a * columns, {b, columns}, options);
  in.view({a, g.batch, P}).copy_(in_images.view({g.batch, a, P}).transpose(0, 1));
  gemm(matrix, Matrix<scalar_t>{buffer.data(), a, columns, columns}, buffer.data() + a * columns,
       columns, false, true,
       GemmBias<scalar_t>{bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr});
  out_images.view({g.batch, b, P}).copy_(out.view({b, g.batch, P}).transpose(0, 1));
}

int64_t workspace_elements(const Conv2dGeometry& g, int64_t band_rows) {
  return g.is_pointwise() ? 0 : g.column_rows() * band_rows * g.out_w;
}

// Per group g of one image, with C = in channels and K = out channels per group, P = out_h*out_w,
// rows = C*kh*kw and `band` the output pixels of a band of output rows:
//   forward          y_g[K x band]    = w_g[K x rows] * columns[rows x band]
//   input backward   columns          = w_g^T * gy_g[K x band], then col2im
//   weight backward  gw_g[K x rows]  += gy_g[K x band] * columns^T
// A pointwise convolution uses the image x_g[C x P] itself in place of the columns.

template <typename scalar_t>
void forward_image(const Conv2dGeometry& g, int64_t band_rows, const scalar_t* x, const scalar_t* w,
                   const scalar_t* bias, scalar_t* y, scalar_t* columns) {
  const int64_t P = g.out_plane(), K = g.out_channels_per_group(), C = g.in_channels_per_group(),
                rows = g.column_rows();
  const bool spread = g.batch == 1;  // else the images share out the threads
  for (int64_t group = 0; group < g.groups; ++group) {
    const Matrix<scalar_t> w_g{w + group * K * rows, K, rows, rows};
    scalar_t* y_g = y + group * K * P;
    const GemmBias<scalar_t> bias_g{bias != nullptr ? bias + group * K : nullptr};
    if (g.is_pointwise()) {
      gemm(w_g, Matrix<scalar_t>{x + group * C * g.in_plane(), C, P, P}, y_g, P, false, spread,
           bias_g);
      continue;
    }
    for (int64_t oh = 0; oh < g.out_h; oh += band_rows) {
      const int64_t oh_end = std::min(g.out_h, oh + band_rows);
      const int64_t band = (oh_end - oh) * g.out_w;
      im2col(x + group * C * g.in_plane(), C, g, oh, oh_end, columns);
      gemm(w_g, Matrix<scalar_t>{columns, rows, band, band}, y_g + oh * g.out_w, P, false, spread,
           bias_g);
    }
  }
}

template <typename scalar_t>
void input_backward_image(const Conv2dGeometry& g, int64_t band_rows, const scalar_t* gy,
                          const scalar_t* w, scalar_t* gx, scalar_t* columns) {
  const int64_t P = g.out_plane(), K = g.out_channels_per_group(), C = g.in_channels_per_group(),
                rows = g.column_rows();
  const bool spread = g.batch == 1;  // else the images share out the threads
  for (int64_t group = 0; group < g.groups; ++group) {
    const auto w_t = transposed(Matrix<scalar_t>{w + group * K * rows, rows, K, rows});
    const scalar_t* gy_g = gy + group * K * P;
    scalar_t* gx_g = gx + group * C * g.in_plane();
    if (g.is_pointwise()) {
      gemm(w_t, Matrix<scalar_t>{gy_g, K, P, P}, gx_g, P, false, spread);
      continue;
    }
    for (int64_t oh = 0; oh < g.out_h; oh += band_rows) {
      const int64_t oh_end = std::min(g.out_h, oh + band_rows);
      const int64_t band = (oh_end - oh) * g.out_w;
      gemm(w_t, Matrix<scalar_t>{gy_g + oh * g.out_w, K, band, P}, columns, band, false, spread);
      col2im_gather(columns, C, g, oh, oh_end, gx_g);
    }
  }
}

template <typename scalar_t>
void weight_backward_image(const Conv2dGeometry& g, int64_t band_rows, const scalar_t* x,
                           const scalar_t* gy, scalar_t* gw, scalar_t* columns) {
  const int64_t P = g.out_plane(), K = g.out_channels_per_group(), C = g.in_channels_per_group(),
                rows = g.column_rows();
  for (int64_t group = 0; group < g.groups; ++group) {
    const scalar_t* x_g = x + group * C * g.in_plane();
    const scalar_t* gy_g = gy + group * K * P;
    scalar_t* gw_g = gw + group * K * rows;
    if (g.is_pointwise()) {
      gemm(Matrix<scalar_t>{gy_g, K, P, P}, transposed(Matrix<scalar_t>{x_g, P, C, P}), gw_g, rows,
           true);
      continue;
    }
    for (int64_t oh = 0; oh < g.out_h; oh += band_rows) {
      const int64_t oh_end = std::min(g.out_h, oh + band_rows);
      const int64_t band = (oh_end - oh) * g.out_w;
      im2col(x_g, C, g, oh, oh_end, columns);
      gemm(Matrix<scalar_t>{gy_g + oh * g.out_w, K, band, P},
           transposed(Matrix<scalar_t>{columns, band, rows, band}), gw_g, rows, true);
    }
  }
}

}  // namespace

int64_t im2col_blas_forward_workspace_bytes(const Conv2dGeometry& g, int64_t element_size,
                                            int64_t threads) {
  if (batched_pointwise(g)) {
    return workspace_bytes((g.in_channels + g.out_channels) * g.batch * g.out_plane(),
                           element_size);
  }
  const int64_t buffers = std::min<int64_t>(threads, std::max<int64_t>(g.batch, 1));
  const int64_t elements = workspace_elements(g, rows_per_band(g, element_size));
  return buffers * workspace_bytes(elements, element_size);
}

void im2col_blas_forward(const Conv2dGeometry& g, const at::Tensor& x, const at::Tensor& w,
                         const at::Tensor& bias, at::Tensor& y) {
  // torch's name for its CPU kernel, so that unsupported dtypes get its message
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "slow_conv2d_cpu", [&] {
        if (batched_pointwise(g)) {
          const Matrix<scalar_t> weights{w.const_data_ptr<scalar_t>(), g.out_channels,
                                         g.in_channels, g.in_channels};
          batched_pointwise_gemm<scalar_t>(g, x, g.in_channels, weights, bias, y, g.out_channels);
          return;
        }
        const int64_t band_rows = rows_per_band(g, sizeof(scalar_t));
        const int64_t in_image = g.in_channels * g.in_plane();
        const int64_t out_image = g.out_channels * g.out_plane();
        const scalar_t* bias_data = bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr;
        // One image per task; a batch of one leaves the threads to im2col and the GEMM instead.
        parallel_for(0, g.batch, 1, [&](int64_t begin, int64_t end) {
          Workspace<scalar_t> columns(workspace_elements(g, band_rows));
          for (int64_t n = begin; n < end; ++n) {
            forward_image(g, band_rows, x.const_data_ptr<scalar_t>() + n * in_image,
                          w.const_data_ptr<scalar_t>(), bias_data,
                          y.mutable_data_ptr<scalar_t>() + n * out_image, columns.data());
          }
        });
      });
}

void im2col_blas_input_backward(const Conv2dGeometry& g, const at::Tensor& gy, const at::Tensor& w,
                                at::Tensor& gx) {
  if (!g.is_pointwise()) {
    gx.zero_();  // col2im adds to it; a pointwise GEMM writes every element itself
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, gy.scalar_type(), "conv2d_input_backward", [&] {
        if (batched_pointwise(g)) {
          const auto weights_t = transposed(Matrix<scalar_t>{
              w.const_data_ptr<scalar_t>(), g.in_channels, g.out_channels, g.in_channels});
          batched_pointwise_gemm<scalar_t>(g, gy, g.out_channels, weights_t, at::Tensor(), gx,
                                           g.in_channels);
          return;
        }
        const int64_t band_rows = rows_per_band(g, sizeof(scalar_t));
        const int64_t in_image = g.in_channels * g.in_plane();
        const int64_t out_image = g.out_channels * g.out_plane();
        parallel_for(0, g.batch, 1, [&](int64_t begin, int64_t end) {
          Workspace<scalar_t> columns(workspace_elements(g, band_rows));
          for (int64_t n = begin; n < end; ++n) {
            input_backward_image(g, band_rows, gy.const_data_ptr<scalar_t>() + n * out_image,
                                 w.const_data_ptr<scalar_t>(),
                                 gx.mutable_data_ptr<scalar_t>() + n * in_image, columns.data());
          }
        });
      });
}

void im2col_blas_weight_backward(const Conv2dGeometry& g, const at::Tensor& x, const at::Tensor& gy,
                                 at::Tensor& gw) {
  gw.zero_();  // the GEMMs accumulate into it
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "conv2d_weight_backward", [&] {
        const int64_t band_rows = rows_per_band(g, sizeof(scalar_t));
        const int64_t in_image = g.in_channels * g.in_plane();
        const int64_t out_image = g.out_channels * g.out_plane();
        Workspace<scalar_t> columns(workspace_elements(g, band_rows));
        // Images in order, each GEMM accumulating into grad_weight: a fixed summation order, so the
        // result does not depend on the thread count or timing. The threads work inside each step.
        for (int64_t n = 0; n < g.batch; ++n) {
          weight_backward_image(g, band_rows, x.const_data_ptr<scalar_t>() + n * in_image,
                                gy.const_data_ptr<scalar_t>() + n * out_image,
                                gw.mutable_data_ptr<scalar_t>(), columns.data());
        }
      });
}

}  // namespace fastconv::cpu
