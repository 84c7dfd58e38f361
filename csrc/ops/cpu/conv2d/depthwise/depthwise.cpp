// The depthwise forward and weight gradient (depthwise.h): stencils over zero-padded planes
// (stencils.h), each compiled twice (portable and AVX2) and picked with FASTCONV_SELECT_ISA.
#include "ops/cpu/conv2d/depthwise/depthwise.h"

#include <algorithm>
#include <cmath>

#include "ops/cpu/common.h"
#include "ops/cpu/conv2d/depthwise/stencils.h"
#include "ops/cpu/conv2d/phase_planes.h"
#include "ops/cpu/isa.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"

namespace fastconv::cpu {
namespace {

// The zero-padded plane that strides past kMaxDirectStride read row by row: (in_h + 2 pad_h) x
// (in_w + 2 pad_w), plus a zero tail.
struct PaddedPlane {
  int64_t height, width;
  Workspace<float> data;

  explicit PaddedPlane(const Conv2dGeometry& g)
      : height(g.in_h + 2 * g.pad_h),
        width(g.in_w + 2 * g.pad_w),
        data(elements(g), /*zeroed=*/true) {}

  static int64_t elements(const Conv2dGeometry& g) {
    return (g.in_h + 2 * g.pad_h) * (g.in_w + 2 * g.pad_w) + (g.kernel_w - 1) * g.dilation_w + 16;
  }

  void fill(const Conv2dGeometry& g, const float* plane) {
    // The image into the middle of the plane; the padding around it stays zero from the start.
    fill_phase_plane(plane, g.in_h, g.in_w, 0, 0, 1, 1, g.in_h, g.in_w, width,
                     data.data() + g.pad_h * width + g.pad_w, /*write_zeros=*/false);
  }

  // Where each tap (kernel row, kernel column: the weights' order) reads, relative to a window's
  // first element.
  void tap_offsets(const Conv2dGeometry& g, int64_t* offsets) const {
    for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
        offsets[kh * g.kernel_w + kw] = kh * g.dilation_h * width + kw * g.dilation_w;
      }
    }
  }
};

// With strides up to kMaxDirectStride, an input plane is copied into zero-padded phase planes
// (DirectPlanes, one channel at a time), where every tap of every output reads at stride 1: a whole
// plane is then one stencil over the grid's rows laid end to end (out_h rows of grid_w outputs,
// of which the first out_w of each are kept), vectorised whatever the stride; strided rows read
// at stride 2 take MobileNetV2's strided layers 1.7-5x torch's time. Larger strides read the
// zero-padded plane row by row.
bool phase_planes_fit(const Conv2dGeometry& g) {
  return g.stride_h <= kMaxDirectStride && g.stride_w <= kMaxDirectStride;
}

// One input channel's phase planes (DirectPlanes) and the stencils' taps over them.
struct ChannelPlanes {
  DirectPlanes layout;
  Workspace<float> data;  // the planes and a zero tail

  explicit ChannelPlanes(const Conv2dGeometry& g)
      : layout(g), data(layout.channel_stride + layout.tail(), /*zeroed=*/true) {}

  static int64_t elements(const Conv2dGeometry& g) {
    const DirectPlanes layout(g);
    return layout.channel_stride + layout.tail();
  }
  int64_t grid_outputs(const Conv2dGeometry& g) const { return g.out_h * layout.grid_w; }
  void fill(const Conv2dGeometry& g, const float* plane) {
    layout.fill_channel(g, plane, data.data());
  }
};

FASTCONV_ALWAYS_INLINE void forward_planes(const Conv2dGeometry& g, const float* x, const float* w,
                                           const float* bias, float* y, int64_t begin,
                                           int64_t end) {
  const int64_t multiplier = g.out_channels_per_group();
  Taps taps;
  taps.count = g.kernel_h * g.kernel_w;
  if (phase_planes_fit(g)) {
    ChannelPlanes planes(g);
    Workspace<float> rows(planes.grid_outputs(g));
    std::copy_n(planes.layout.tap_offsets.data(), taps.count, taps.offsets);
    int64_t filled = -1;  // the input plane (image, group) `planes` holds
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t n = plane / g.out_channels, k = plane % g.out_channels;
      const int64_t source = n * g.groups + k / multiplier;
      if (source != filled) {  // the output channels of a group share their input plane
        planes.fill(g, x + source * g.in_plane());
        filled = source;
      }
      std::copy_n(w + k * taps.count, taps.count, taps.weights);
      const float start = bias != nullptr ? bias[k] : 0.f;
      stencil<1>(taps, start, 1, planes.data.data(), rows.data(), planes.grid_outputs(g));
      float* out = y + plane * g.out_plane();
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        std::copy_n(rows.data() + oh * planes.layout.grid_w, g.out_w, out + oh * g.out_w);
      }
    }
    return;
  }
  PaddedPlane padded(g);
  padded.tap_offsets(g, taps.offsets);
  int64_t filled = -1;
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t n = plane / g.out_channels, k = plane % g.out_channels;
    const int64_t source = n * g.groups + k / multiplier;
    if (source != filled) {
      padded.fill(g, x + source * g.in_plane());
      filled = source;
    }
    std::copy_n(w + k * taps.count, taps.count, taps.weights);
    const float start = bias != nullptr ? bias[k] : 0.f;
    float* out = y + plane * g.out_plane();
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      any_stride_stencil(taps, start, g.stride_w,
                         padded.data.data() + oh * g.stride_h * padded.width, out + oh * g.out_w,
                         g.out_w);
    }
  }
}

#if FASTCONV_X86
FASTCONV_AVX2 void forward_planes_avx2(const Conv2dGeometry& g, const float* x, const float* w,
                                       const float* bias, float* y, int64_t begin, int64_t end) {
  forward_planes(g, x, w, bias, y, begin, end);
}
#endif

void forward_planes_portable(const Conv2dGeometry& g, const float* x, const float* w,
                             const float* bias, float* y, int64_t begin, int64_t end) {
  forward_planes(g, x, w, bias, y, begin, end);
}

}  // namespace

int64_t depthwise_forward_workspace_bytes(const Conv2dGeometry& g) {
  if (phase_planes_fit(g)) {
    return workspace_bytes(ChannelPlanes::elements(g), sizeof(float)) +
        workspace_bytes(g.out_h * DirectPlanes(g).grid_w, sizeof(float));
  }
  return workspace_bytes(PaddedPlane::elements(g), sizeof(float));
}

namespace {

// The zero-padded plane must stay of the order of the input and output planes: padding far
// beyond them (which torch accepts) goes to the GEMM paths, whose workspaces follow the output.
bool padded_plane_bounded(const Conv2dGeometry& g) {
  const double padded_plane = (static_cast<double>(g.in_h) + 2.0 * static_cast<double>(g.pad_h)) *
      (static_cast<double>(g.in_w) + 2.0 * static_cast<double>(g.pad_w));
  const double bound =
      4.0 * (static_cast<double>(g.in_plane()) + static_cast<double>(g.out_plane())) + 4096;
  return padded_plane <= bound;
}

}  // namespace

bool depthwise_supported(const Conv2dGeometry& g) {
  return g.in_channels_per_group() == 1 && g.kernel_h * g.kernel_w <= kMaxDepthwiseTaps &&
      padded_plane_bounded(g);
}

void depthwise_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                       float* y) {
  const auto planes = FASTCONV_SELECT_ISA(forward_planes);
  parallel_for(0, g.batch * g.out_channels, 1,
               [&](int64_t begin, int64_t end) { planes(g, x, w, bias, y, begin, end); });
}

namespace {

// The weight gradient of output channels [begin, end), each summed over the images in order:
// per tap, the dot product of grad_output with the padded input plane shifted by the tap. With
// phase planes (phase_planes_fit), over whole planes: grad_output's rows are spread to the grid's
// width, zeros between. A tap reads the next row's input in those columns, so an inf or NaN there
// would make 0 x inf = NaN: a sum that is not finite is taken again with those columns masked out
// (the masked sum took the common case 3.4-3.8x the time, so finite sums skip it; where finite, the
// two are bitwise equal).
FASTCONV_ALWAYS_INLINE void weight_backward_channels(const Conv2dGeometry& g, const float* x,
                                                     const float* gy, float* gw, int64_t begin,
                                                     int64_t end) {
  const int64_t multiplier = g.out_channels_per_group(), taps = g.kernel_h * g.kernel_w;
  if (phase_planes_fit(g)) {
    ChannelPlanes planes(g);
    const int64_t wide = planes.grid_outputs(g), grid_w = planes.layout.grid_w;
    Workspace<float> wide_grad(wide, /*zeroed=*/true), keep(wide, /*zeroed=*/true);
    for (int64_t oh = 0; oh < g.out_h; ++oh) std::fill_n(keep.data() + oh * grid_w, g.out_w, 1.f);
    for (int64_t k = begin; k < end; ++k) {
      float* grad_weights = gw + k * taps;
      std::fill_n(grad_weights, taps, 0.f);
      for (int64_t n = 0; n < g.batch; ++n) {
        planes.fill(g, x + (n * g.in_channels + k / multiplier) * g.in_plane());
        const float* grad_out = gy + (n * g.out_channels + k) * g.out_plane();
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          std::copy_n(grad_out + oh * g.out_w, g.out_w, wide_grad.data() + oh * grid_w);
        }
        for (int64_t t = 0; t < taps; ++t) {
          const float* shifted = planes.data.data() + planes.layout.tap_offsets[t];
          float sum = dot<1>(wide_grad.data(), shifted, wide, 1);
          if (!std::isfinite(sum)) sum = dot<1>(wide_grad.data(), shifted, wide, 1, keep.data());
          grad_weights[t] += sum;
        }
      }
    }
    return;
  }
  PaddedPlane padded(g);
  int64_t offsets[kMaxDepthwiseTaps];
  padded.tap_offsets(g, offsets);
  for (int64_t k = begin; k < end; ++k) {
    float* grad_weights = gw + k * taps;
    std::fill_n(grad_weights, taps, 0.f);
    for (int64_t n = 0; n < g.batch; ++n) {
      padded.fill(g, x + (n * g.in_channels + k / multiplier) * g.in_plane());
      const float* grad_out = gy + (n * g.out_channels + k) * g.out_plane();
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const float* row = padded.data.data() + oh * g.stride_h * padded.width;
        for (int64_t t = 0; t < taps; ++t) {
          const float* grad_row = grad_out + oh * g.out_w;
          grad_weights[t] += g.stride_w == 1
              ? dot<1>(grad_row, row + offsets[t], g.out_w, 1)
              : dot<0>(grad_row, row + offsets[t], g.out_w, g.stride_w);
        }
      }
    }
  }
}

#if FASTCONV_X86
FASTCONV_AVX2 void weight_backward_channels_avx2(const Conv2dGeometry& g, const float* x,
                                                 const float* gy, float* gw, int64_t begin,
                                                 int64_t end) {
  weight_backward_channels(g, x, gy, gw, begin, end);
}
#endif

void weight_backward_channels_portable(const Conv2dGeometry& g, const float* x, const float* gy,
                                       float* gw, int64_t begin, int64_t end) {
  weight_backward_channels(g, x, gy, gw, begin, end);
}

}  // namespace

void depthwise_weight_backward(const Conv2dGeometry& g, const float* x, const float* gy,
                               float* gw) {
  const auto channels = FASTCONV_SELECT_ISA(weight_backward_channels);
  parallel_for(0, g.out_channels, 1,
               [&](int64_t begin, int64_t end) { channels(g, x, gy, gw, begin, end); });
}

}  // namespace fastconv::cpu
