// The CPU conv2d kernels: each pass runs on the path conv2d_path.cpp chooses, and records it.
// Layout is NCHW inside; the frontend (../conv2d.cpp) converts channels_last at the edges.
#include <ATen/ops/empty.h>

#include "../conv2d_kernels.h"
#include "conv2d_im2col_blas.h"
#include "conv2d_packed.h"
#include "conv2d_path.h"
#include "depthwise_conv2d.h"
#include "winograd_conv2d.h"

namespace fastconv::cpu {
namespace {

// weight[K, C/g, kh, kw] -> [C, K/g, kh, kw], flipped in both spatial dims, group by group: the
// weights of the convolution that gives a stride-1 convolution's input gradient.
at::Tensor flipped_transposed_weight(const at::Tensor& weight, const Conv2dGeometry& g) {
  return weight
      .view({g.groups, g.out_channels_per_group(), g.in_channels_per_group(), g.kernel_h,
             g.kernel_w})
      .transpose(1, 2)
      .flip({3, 4})
      .reshape({g.in_channels, g.out_channels_per_group(), g.kernel_h, g.kernel_w})
      .contiguous();
}

const float* float_data_or_null(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<float>() : nullptr;
}

} // namespace

void conv2d_forward(const Conv2dGeometry& g, const at::Tensor& x, const at::Tensor& w,
                    const at::Tensor& bias, at::Tensor& y) {
  const auto path = choose_path(Conv2dPass::forward, g, x.scalar_type());
  record_run(Conv2dPass::forward, path);
  switch (path) {
    case Conv2dPath::depthwise:
    case Conv2dPath::grouped_direct:
      depthwise_forward(g, x.const_data_ptr<float>(), w.const_data_ptr<float>(),
                        float_data_or_null(bias), y.mutable_data_ptr<float>());
      return;
    case Conv2dPath::packed_gemm:
      packed_forward(g, x.const_data_ptr<float>(), w.const_data_ptr<float>(),
                     float_data_or_null(bias), y.mutable_data_ptr<float>());
      return;
    case Conv2dPath::winograd:
      winograd_forward(g, x.const_data_ptr<float>(), w.const_data_ptr<float>(),
                       float_data_or_null(bias), y.mutable_data_ptr<float>());
      return;
    default:
      im2col_blas_forward(g, x, w, bias, y);
  }
}

void conv2d_input_backward(const Conv2dGeometry& g, const at::Tensor& gy, const at::Tensor& w,
                           at::Tensor& gx) {
  const auto path = choose_path(Conv2dPass::input_backward, g, gy.scalar_type());
  record_run(Conv2dPass::input_backward, path);
  switch (path) {
    case Conv2dPath::depthwise_flipped:
    case Conv2dPath::grouped_direct_flipped:
    case Conv2dPath::winograd_flipped:
    case Conv2dPath::packed_gemm_flipped: {
      const auto t = input_backward_geometry(g);
      const auto flipped = flipped_transposed_weight(w, g);
      const bool direct = path == Conv2dPath::depthwise_flipped ||
          path == Conv2dPath::grouped_direct_flipped;
      const auto forward = direct                               ? depthwise_forward
          : path == Conv2dPath::winograd_flipped ? winograd_forward
                                                 : packed_forward;
      forward(t, gy.const_data_ptr<float>(), flipped.const_data_ptr<float>(), nullptr,
              gx.mutable_data_ptr<float>());
      return;
    }
    case Conv2dPath::depthwise_scatter:
      depthwise_input_backward(g, gy.const_data_ptr<float>(), w.const_data_ptr<float>(),
                               gx.mutable_data_ptr<float>());
      return;
    default:
      im2col_blas_input_backward(g, gy, w, gx);
  }
}

void conv2d_weight_backward(const Conv2dGeometry& g, const at::Tensor& x, const at::Tensor& gy,
                            at::Tensor& gw) {
  const auto path = choose_path(Conv2dPass::weight_backward, g, x.scalar_type());
  record_run(Conv2dPass::weight_backward, path);
  switch (path) {
    case Conv2dPath::depthwise:
      depthwise_weight_backward(g, x.const_data_ptr<float>(), gy.const_data_ptr<float>(),
                                gw.mutable_data_ptr<float>());
      return;
    case Conv2dPath::winograd:
      winograd_weight_backward(g, x.const_data_ptr<float>(), gy.const_data_ptr<float>(),
                               gw.mutable_data_ptr<float>());
      return;
    case Conv2dPath::packed_gemm:
      packed_weight_backward(g, x.const_data_ptr<float>(), gy.const_data_ptr<float>(),
                             gw.mutable_data_ptr<float>());
      return;
    default:
      im2col_blas_weight_backward(g, x, gy, gw);
  }
}

} // namespace fastconv::cpu
