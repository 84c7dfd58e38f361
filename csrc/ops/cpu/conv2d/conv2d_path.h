// Which CPU kernel runs each conv2d pass: decided here once, for the kernels (conv2d_kernel.cpp),
// the workspace figure and the tests' hooks (fastconv._C), so that they cannot disagree.
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>

#include "ops/geometry.h"

namespace fastconv::cpu {

enum class Conv2dPass : int { forward, input_backward, weight_backward };

enum class Conv2dPath : int {
  depthwise,    // direct stencils, one input channel per group (depthwise/)
  packed_gemm,  // im2col packed block by block into our GEMM (packed/)
  // The input gradient of a stride-1 convolution, run as the forward of grad_output with the
  // weights flipped and transposed (input_backward_geometry), on a forward kernel.
  depthwise_flipped,
  packed_gemm_flipped,
  depthwise_gather,  // a strided depthwise input gradient, each input gathering its taps
  im2col_blas,       // any pass and dtype: im2col bands and ATen's BLAS (im2col_blas/)
  winograd,          // 3x3 stride 1: Winograd F(2x2, 3x3) on our GEMM (winograd/)
  winograd_flipped,  // a 3x3 stride-1 input gradient, as winograd's forward
  // Shallow layers (grouped ones, few channels, the stem): 8 x 48 register tiles summed from
  // zero-padded input planes, no im2col (direct/); and the input gradient of such a
  // stride-1 convolution as its forward.
  direct,
  direct_flipped,
  // The weight gradient of a pointwise layer as dot products of whole planes (pointwise/).
  pointwise,
  // Every pass of a depthwise layer on channels_last tensors (depthwise/depthwise_channels_last),
  // which the frontend calls for such input (conv2d_kernel.cpp); choose_path never returns it.
  depthwise_channels_last,
};
constexpr int kConv2dPaths = 12;

const char* name_of(Conv2dPass pass);
const char* name_of(Conv2dPath path);

Conv2dPath choose_path(Conv2dPass pass, const Conv2dGeometry& g, c10::ScalarType dtype);

// Whether choose_path may take the Winograd paths (fastconv.backends.winograd.enabled; on by
// default). Off, 3x3 layers take the direct or packed GEMM paths, as torch.backends flags switch
// paths off.
bool winograd_enabled();
void set_winograd_enabled(bool enabled);

// The same for the direct path (fastconv.backends.direct.enabled; on by default). Off, those
// layers take the packed GEMM or im2col + BLAS.
bool direct_enabled();
void set_direct_enabled(bool enabled);

// The geometry of the convolution that gives a stride-1 convolution's input gradient: grad_output
// convolved with the flipped, transposed weights, padded by dilation * (kernel - 1) - padding.
Conv2dGeometry input_backward_geometry(const Conv2dGeometry& g);

// A 1x1 convolution with a stride and no padding (ResNet's downsampling layers) reads every
// stride-th pixel only: the kernels copy those out (an ATen tensor, not counted as workspace)
// and run a pointwise convolution of them, on that geometry's paths; choose_path reports those.
bool is_subsampled_pointwise(const Conv2dGeometry& g);
Conv2dGeometry subsampled_pointwise_geometry(const Conv2dGeometry& g);

// Peak bytes of workspace the forward allocates for this geometry and dtype, with the current
// thread count (what Workspace counts while it runs).
int64_t conv2d_forward_workspace_bytes(const Conv2dGeometry& g, c10::ScalarType dtype);

// How often each (pass, path) has run in this process: the tests' proof that a path they mean to
// cover did run.
void record_run(Conv2dPass pass, Conv2dPath path);
int64_t runs_of(Conv2dPass pass, Conv2dPath path);

}  // namespace fastconv::cpu
