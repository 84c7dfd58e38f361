// The CPU conv2d kernels: each pass runs on the path conv2d_path.cpp chooses, and records it.
// Layout is NCHW inside, but for the channels_last kernels at the end of this file; for other
// layers the frontend (ops/conv2d.cpp) converts channels_last at the edges.
#include <ATen/ops/empty.h>

#include <atomic>
#include <cmath>

#include "ops/conv2d_kernels.h"
#include "ops/cpu/common.h"
#include "ops/cpu/conv2d/conv2d_path.h"
#include "ops/cpu/conv2d/depthwise/depthwise.h"
#include "ops/cpu/conv2d/direct/direct.h"
#include "ops/cpu/conv2d/im2col_blas/im2col_blas.h"
#include "ops/cpu/conv2d/packed/packed.h"
#include "ops/cpu/conv2d/pointwise/pointwise.h"
#include "ops/cpu/conv2d/winograd/winograd.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"

namespace fastconv::cpu {
namespace {

constexpr int64_t kMinFlipFloatsPerTask = 4096;

// weight[K, C/g, kh, kw] -> [C, K/g, kh, kw], flipped in both spatial dims, group by group: the
// weights of the convolution that gives a stride-1 convolution's input gradient. One pass of
// plain loops (ATen's transpose, flip and reshape cost a small layer a quarter of its time).
// Returns whether every weight is finite.
bool flip_transpose_weight(const Conv2dGeometry& g, const float* weight, float* flipped) {
  const int64_t K = g.out_channels_per_group(), C = g.in_channels_per_group();
  const int64_t taps = g.kernel_h * g.kernel_w;
  std::atomic<bool> finite{true};
  parallel_for(0, g.groups * C, grain_for(K * taps, kMinFlipFloatsPerTask),
               [&](int64_t begin, int64_t end) {
                 bool all_finite = true;
                 for (int64_t group_c = begin; group_c < end; ++group_c) {
                   const int64_t group = group_c / C, c = group_c % C;
                   for (int64_t k = 0; k < K; ++k) {
                     const float* source = weight + ((group * K + k) * C + c) * taps;
                     float* target = flipped + (group_c * K + k) * taps;
                     for (int64_t t = 0; t < taps; ++t) {
                       target[t] = source[taps - 1 - t];
                       all_finite &= std::isfinite(target[t]);
                     }
                   }
                 }
                 if (!all_finite) finite.store(false);
               });
  return finite.load();
}

// A layer the channels_last depthwise kernels take (depthwise/depthwise_channels_last.cpp).
bool channels_last_depthwise_applies(const Conv2dGeometry& g, const at::Tensor& t) {
  return t.scalar_type() == at::kFloat && channels_last_depthwise_supported(g);
}

const float* float_data_or_null(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<float>() : nullptr;
}

// The pixels a subsampled pointwise convolution reads (is_subsampled_pointwise), as a view.
at::Tensor subsampled_pixels(const Conv2dGeometry& g, const at::Tensor& planes) {
  return planes.slice(2, 0, (g.out_h - 1) * g.stride_h + 1, g.stride_h)
      .slice(3, 0, (g.out_w - 1) * g.stride_w + 1, g.stride_w);
}

}  // namespace

void conv2d_forward(const Conv2dGeometry& g, const at::Tensor& x, const at::Tensor& w,
                    const at::Tensor& bias, at::Tensor& y) {
  if (is_subsampled_pointwise(g)) {
    conv2d_forward(subsampled_pointwise_geometry(g), subsampled_pixels(g, x).contiguous(), w, bias,
                   y);
    return;
  }
  const auto path = choose_path(Conv2dPass::forward, g, x.scalar_type());
  record_run(Conv2dPass::forward, path);
  switch (path) {
    case Conv2dPath::depthwise:
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
    case Conv2dPath::direct:
      direct_forward(g, x.const_data_ptr<float>(), w.const_data_ptr<float>(),
                     float_data_or_null(bias), y.mutable_data_ptr<float>());
      return;
    default:
      im2col_blas_forward(g, x, w, bias, y);
  }
}

void conv2d_input_backward(const Conv2dGeometry& g, const at::Tensor& gy, const at::Tensor& w,
                           at::Tensor& gx) {
  if (is_subsampled_pointwise(g)) {
    auto pixels = at::empty({g.batch, g.in_channels, g.out_h, g.out_w}, gx.options());
    conv2d_input_backward(subsampled_pointwise_geometry(g), gy, w, pixels);
    gx.zero_();
    subsampled_pixels(g, gx).copy_(pixels);
    return;
  }
  const auto path = choose_path(Conv2dPass::input_backward, g, gy.scalar_type());
  record_run(Conv2dPass::input_backward, path);
  switch (path) {
    case Conv2dPath::depthwise_flipped:
    case Conv2dPath::winograd_flipped:
    case Conv2dPath::direct_flipped:
    case Conv2dPath::packed_gemm_flipped: {
      const auto t = input_backward_geometry(g);
      const Workspace<float> flipped(w.numel());
      if (!flip_transpose_weight(g, w.const_data_ptr<float>(), flipped.data())) {
        // The forward over zero-padded grad_output would multiply a non-finite weight by the
        // padding (outputs that do not exist: 0 x inf = NaN at the input's border); col2im adds
        // only the products of real outputs, as torch's input gradient does.
        im2col_blas_input_backward(g, gy, w, gx);
        return;
      }
      const auto forward = path == Conv2dPath::depthwise_flipped ? depthwise_forward
          : path == Conv2dPath::winograd_flipped                 ? winograd_forward
          : path == Conv2dPath::direct_flipped                   ? direct_forward
                                                                 : packed_forward;
      forward(t, gy.const_data_ptr<float>(), flipped.data(), nullptr, gx.mutable_data_ptr<float>());
      return;
    }
    case Conv2dPath::depthwise_gather:
      depthwise_input_backward(g, gy.const_data_ptr<float>(), w.const_data_ptr<float>(),
                               gx.mutable_data_ptr<float>());
      return;
    default:
      im2col_blas_input_backward(g, gy, w, gx);
  }
}

void conv2d_weight_backward(const Conv2dGeometry& g, const at::Tensor& x, const at::Tensor& gy,
                            at::Tensor& gw) {
  if (is_subsampled_pointwise(g)) {
    conv2d_weight_backward(subsampled_pointwise_geometry(g), subsampled_pixels(g, x).contiguous(),
                           gy, gw);
    return;
  }
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
    case Conv2dPath::direct:
      direct_weight_backward(g, x.const_data_ptr<float>(), gy.const_data_ptr<float>(),
                             gw.mutable_data_ptr<float>());
      return;
    case Conv2dPath::pointwise:
      pointwise_weight_backward(g, x.const_data_ptr<float>(), gy.const_data_ptr<float>(),
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

// channels_last tensors as they are (conv2d_kernels.h): pointwise layers on BLAS GEMMs over the
// pixels (im2col_blas/channels_last_pointwise.cpp), depthwise ones on per-pixel channel vectors.
bool channels_last_supported(const Conv2dGeometry& g, const at::Tensor& t) {
  if (!t.is_contiguous(at::MemoryFormat::ChannelsLast)) return false;
  return channels_last_depthwise_applies(g, t) ||
      channels_last_pointwise_supported(g, t.scalar_type());
}

Conv2dPath channels_last_path(const Conv2dGeometry& g, const at::Tensor& t) {
  return channels_last_depthwise_applies(g, t) ? Conv2dPath::depthwise_channels_last
                                               : Conv2dPath::im2col_blas;
}

void channels_last_forward(const Conv2dGeometry& g, const at::Tensor& x, const at::Tensor& w,
                           const at::Tensor& bias, at::Tensor& y) {
  if (!channels_last_depthwise_applies(g, x)) {
    channels_last_pointwise_forward(g, x, w, bias, y);
    return;
  }
  record_run(Conv2dPass::forward, Conv2dPath::depthwise_channels_last);
  channels_last_depthwise_forward(g, x.const_data_ptr<float>(), w.const_data_ptr<float>(),
                                  float_data_or_null(bias), y.mutable_data_ptr<float>());
}

void channels_last_input_backward(const Conv2dGeometry& g, const at::Tensor& gy,
                                  const at::Tensor& w, at::Tensor& gx) {
  if (!channels_last_depthwise_applies(g, gy)) {
    channels_last_pointwise_input_backward(g, gy, w, gx);
    return;
  }
  record_run(Conv2dPass::input_backward, Conv2dPath::depthwise_channels_last);
  channels_last_depthwise_input_backward(g, gy.const_data_ptr<float>(), w.const_data_ptr<float>(),
                                         gx.mutable_data_ptr<float>());
}

void channels_last_weight_backward(const Conv2dGeometry& g, const at::Tensor& x,
                                   const at::Tensor& gy, at::Tensor& gw) {
  if (!channels_last_depthwise_applies(g, gy)) {
    channels_last_pointwise_weight_backward(g, x, gy, gw);
    return;
  }
  record_run(Conv2dPass::weight_backward, Conv2dPath::depthwise_channels_last);
  channels_last_depthwise_weight_backward(g, x.const_data_ptr<float>(), gy.const_data_ptr<float>(),
                                          gw.mutable_data_ptr<float>());
}

}  // namespace fastconv::cpu
