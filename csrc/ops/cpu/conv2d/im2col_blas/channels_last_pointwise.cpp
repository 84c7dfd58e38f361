// A pointwise convolution of channels_last tensors: with the channels of each pixel contiguous,
// the input is a [pixels x C] matrix and the output [pixels x K], so the forward is one GEMM
// over all the batch's pixels, y = x * w^T, and the input gradient gx = gy * w, with no layout
// conversion around them (conv2d_kernel.cpp). The GEMMs are blas_gemm.h's: fixed tiles and
// 128-deep blocks, the same sums at every thread count.
#include <ATen/Dispatch.h>

#include <algorithm>

#include "ops/cpu/conv2d/conv2d_path.h"
#include "ops/cpu/conv2d/im2col_blas/blas_gemm.h"
#include "ops/cpu/conv2d/im2col_blas/im2col_blas.h"

namespace fastconv::cpu {

bool channels_last_pointwise_supported(const Conv2dGeometry& g, c10::ScalarType dtype) {
  return g.is_pointwise() && g.groups == 1 && (dtype == at::kFloat || dtype == at::kDouble);
}

void channels_last_pointwise_forward(const Conv2dGeometry& g, const at::Tensor& x,
                                     const at::Tensor& w, const at::Tensor& bias, at::Tensor& y) {
  record_run(Conv2dPass::forward, Conv2dPath::im2col_blas);
  const int64_t pixels = g.batch * g.out_plane(), C = g.in_channels, K = g.out_channels;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "slow_conv2d_cpu", [&] {
    const Matrix<scalar_t> image{x.const_data_ptr<scalar_t>(), pixels, C, C};
    const auto weights_t = transposed(Matrix<scalar_t>{w.const_data_ptr<scalar_t>(), C, K, C});
    gemm(image, weights_t, y.mutable_data_ptr<scalar_t>(), K, false, true,
         GemmBias<scalar_t>{bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr, false});
  });
}

void channels_last_pointwise_input_backward(const Conv2dGeometry& g, const at::Tensor& gy,
                                            const at::Tensor& w, at::Tensor& gx) {
  record_run(Conv2dPass::input_backward, Conv2dPath::im2col_blas);
  const int64_t pixels = g.batch * g.out_plane(), C = g.in_channels, K = g.out_channels;
  AT_DISPATCH_FLOATING_TYPES(gy.scalar_type(), "conv2d_input_backward", [&] {
    const Matrix<scalar_t> grad{gy.const_data_ptr<scalar_t>(), pixels, K, K};
    const Matrix<scalar_t> weights{w.const_data_ptr<scalar_t>(), K, C, C};
    gemm(grad, weights, gx.mutable_data_ptr<scalar_t>(), C, false);
  });
}

// gw = gy^T * x over all the batch's pixels, in depth blocks of kWeightDepthBlock pixels.
constexpr int64_t kWeightDepthBlock = 512;

void channels_last_pointwise_weight_backward(const Conv2dGeometry& g, const at::Tensor& x,
                                             const at::Tensor& gy, at::Tensor& gw) {
  record_run(Conv2dPass::weight_backward, Conv2dPath::im2col_blas);
  const int64_t pixels = g.batch * g.out_plane(), C = g.in_channels, K = g.out_channels;
  AT_DISPATCH_FLOATING_TYPES(gy.scalar_type(), "conv2d_weight_backward", [&] {
    const auto grad_t = transposed(Matrix<scalar_t>{gy.const_data_ptr<scalar_t>(), K, pixels, K});
    const Matrix<scalar_t> image{x.const_data_ptr<scalar_t>(), pixels, C, C};
    gemm(grad_t, image, gw.mutable_data_ptr<scalar_t>(), C, false, true, GemmBias<scalar_t>{},
         kWeightDepthBlock);
  });
}

}  // namespace fastconv::cpu
