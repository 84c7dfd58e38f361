// The direct float32 depthwise kernels (depthwise.h): stencils over zero-padded planes,
// each compiled twice (portable and AVX2) and picked with FASTCONV_SELECT_ISA.
#include "ops/cpu/conv2d/depthwise/depthwise.h"

#include <algorithm>
#include <cmath>

#include "ops/cpu/common.h"
#include "ops/cpu/conv2d/phase_planes.h"
#include "ops/cpu/isa.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"

namespace fastconv::cpu {
namespace {

constexpr int64_t kMaxDepthwiseTaps = 64;

// The sum over i < length of a[i] * b[i * stride], in 16 fixed lanes (a sum the compiler can
// vectorize, in the same order on every run). With `keep`, only the terms where keep[i] != 0:
// a dropped term adds +0 even where b[i] is inf or NaN (0 x inf would be NaN), and for finite
// values the sums are bitwise those without it (the lanes start at +0, so adding 0 changes none).
template <int kStride>
FASTCONV_ALWAYS_INLINE float dot(const float* __restrict a, const float* __restrict b,
                                 int64_t length, int64_t stride,
                                 const float* __restrict keep = nullptr) {
  const int64_t s = kStride != 0 ? kStride : stride;
  float lanes[16] = {};
  int64_t i = 0;
  if (keep != nullptr) {
    for (; i + 16 <= length; i += 16) {
      for (int64_t l = 0; l < 16; ++l) {
        const float term = a[i + l] * b[(i + l) * s];
        lanes[l] += keep[i + l] != 0.f ? term : 0.f;
      }
    }
    for (; i < length; ++i) lanes[0] += keep[i] != 0.f ? a[i] * b[i * s] : 0.f;
  } else {
    for (; i + 16 <= length; i += 16) {
      for (int64_t l = 0; l < 16; ++l) lanes[l] += a[i + l] * b[(i + l) * s];
    }
    for (; i < length; ++i) lanes[0] += a[i] * b[i * s];
  }
  float sum = 0.f;
  for (float lane : lanes) sum += lane;
  return sum;
}

// A stencil over a zero-padded input plane: out[i] = start + sum over taps t, in order, of
// weights[t] * in[i * stride + offsets[t]], for i < length. Every tap is inside the padded plane,
// so there are no bounds checks: outputs are summed 16 (or 8) at a time in registers, the last
// group overlapping the one before rather than falling back to one at a time. kStride is the
// stride when it is 1 or 2, so that the compiler vectorizes the loads, or 0 for any stride.
struct Taps {
  float weights[kMaxDepthwiseTaps];
  int64_t offsets[kMaxDepthwiseTaps];
  int64_t count;
};

template <int kStride, int kLanes>
FASTCONV_ALWAYS_INLINE void stencil_lanes(const Taps& taps, float start, int64_t stride,
                                          const float* in, float* out, int64_t i) {
  const int64_t s = kStride != 0 ? kStride : stride;
  float acc[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) acc[l] = start;
  for (int64_t t = 0; t < taps.count; ++t) {
    const float weight = taps.weights[t];
    const float* tap = in + i * s + taps.offsets[t];
    for (int64_t l = 0; l < kLanes; ++l) acc[l] += weight * tap[l * s];
  }
  for (int64_t l = 0; l < kLanes; ++l) out[i + l] = acc[l];
}

template <int kStride, int kLanes>
FASTCONV_ALWAYS_INLINE void stencil_groups(const Taps& taps, float start, int64_t stride,
                                           const float* in, float* out, int64_t length) {
  int64_t i = 0;
  for (; i + kLanes <= length; i += kLanes) {
    stencil_lanes<kStride, kLanes>(taps, start, stride, in, out, i);
  }
  if (i < length) {  // the last kLanes again, overlapping: the same values
    stencil_lanes<kStride, kLanes>(taps, start, stride, in, out, length - kLanes);
  }
}

template <int kStride>
FASTCONV_ALWAYS_INLINE void stencil(const Taps& taps, float start, int64_t stride, const float* in,
                                    float* out, int64_t length) {
  if (length >= 16) {
    stencil_groups<kStride, 16>(taps, start, stride, in, out, length);
  } else if (length >= 8) {
    stencil_groups<kStride, 8>(taps, start, stride, in, out, length);
  } else {
    for (int64_t i = 0; i < length; ++i) {
      stencil_lanes<kStride, 1>(taps, start, stride, in, out, i);
    }
  }
}

FASTCONV_ALWAYS_INLINE void any_stride_stencil(const Taps& taps, float start, int64_t stride,
                                               const float* in, float* out, int64_t length) {
  if (stride == 1) {
    stencil<1>(taps, start, 1, in, out, length);
  } else if (stride == 2) {
    stencil<2>(taps, start, 2, in, out, length);
  } else {
    stencil<0>(taps, start, stride, in, out, length);
  }
}

// The zero-padded plane the stencils read: (in_h + 2 pad_h) x (in_w + 2 pad_w), plus a zero tail
// for the reads past the last row that a whole-plane stencil makes (see forward_planes).
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

// With stride 1 both ways, a whole plane is one stencil over the padded plane's rows laid end to
// end: out_h rows of padded-width outputs, of which the first out_w of each are kept.
bool whole_plane_stencil(const Conv2dGeometry& g) { return g.stride_h == 1 && g.stride_w == 1; }

FASTCONV_ALWAYS_INLINE void forward_planes(const Conv2dGeometry& g, const float* x, const float* w,
                                           const float* bias, float* y, int64_t begin,
                                           int64_t end) {
  const int64_t multiplier = g.out_channels_per_group();
  PaddedPlane padded(g);
  const bool whole_plane = whole_plane_stencil(g);
  Workspace<float> rows(whole_plane ? g.out_h * padded.width : 0);
  Taps taps;
  taps.count = g.kernel_h * g.kernel_w;
  padded.tap_offsets(g, taps.offsets);
  int64_t filled = -1;  // the input plane (image, group) `padded` holds
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t n = plane / g.out_channels, k = plane % g.out_channels;
    const int64_t source = n * g.groups + k / multiplier;
    if (source != filled) {  // the output channels of a group share their input plane
      padded.fill(g, x + source * g.in_plane());
      filled = source;
    }
    std::copy_n(w + k * taps.count, taps.count, taps.weights);
    const float start = bias != nullptr ? bias[k] : 0.f;
    float* out = y + plane * g.out_plane();
    if (whole_plane) {
      stencil<1>(taps, start, 1, padded.data.data(), rows.data(), g.out_h * padded.width);
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        std::copy_n(rows.data() + oh * padded.width, g.out_w, out + oh * g.out_w);
      }
      continue;
    }
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
  const int64_t rows = whole_plane_stencil(g) ? g.out_h * (g.in_w + 2 * g.pad_w) : 0;
  return workspace_bytes(PaddedPlane::elements(g), sizeof(float)) +
      workspace_bytes(rows, sizeof(float));
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

// The input gradient of planes [begin, end): one input plane per task, adding the taps of its
// output channels in a fixed order (the forward's taps, transposed).
FASTCONV_ALWAYS_INLINE void input_backward_planes(const Conv2dGeometry& g, const float* gy,
                                                  const float* w, float* gx, int64_t begin,
                                                  int64_t end) {
  const int64_t multiplier = g.out_channels_per_group(), taps = g.kernel_h * g.kernel_w;
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t n = plane / g.in_channels, c = plane % g.in_channels;
    float* grad_in = gx + plane * g.in_plane();
    std::fill_n(grad_in, g.in_plane(), 0.f);
    for (int64_t k = c * multiplier; k < (c + 1) * multiplier; ++k) {
      const float* grad_out = gy + (n * g.out_channels + k) * g.out_plane();
      const float* weights = w + k * taps;
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const float* grad_row = grad_out + oh * g.out_w;
        for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
          const int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
          if (ih < 0 || ih >= g.in_h) continue;
          float* in_row = grad_in + ih * g.in_w;
          for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
            const int64_t offset = kw * g.dilation_w - g.pad_w;
            const auto [first, last] = taps_inside(offset, g.stride_w, g.in_w, g.out_w);
            const float weight = weights[kh * g.kernel_w + kw];
            float* target = in_row + offset;
            for (int64_t ow = first; ow < last; ++ow) {
              target[ow * g.stride_w] += weight * grad_row[ow];
            }
          }
        }
      }
    }
  }
}

// The weight gradient of output channels [begin, end), each summed over the images in order:
// per tap, the dot product of grad_output with the padded input plane shifted by the tap (with
// stride 1, over whole planes: grad_output's rows are spread to the padded width, zeros between).
// A tap reads the next row's input in those columns, so an inf or NaN there would make 0 x inf =
// NaN: a sum that is not finite is taken again with those columns masked out (the masked sum
// took the common case 3.4-3.8x the time, so finite sums skip it; where finite, the two are bitwise
// equal).
FASTCONV_ALWAYS_INLINE void weight_backward_channels(const Conv2dGeometry& g, const float* x,
                                                     const float* gy, float* gw, int64_t begin,
                                                     int64_t end) {
  const int64_t multiplier = g.out_channels_per_group(), taps = g.kernel_h * g.kernel_w;
  PaddedPlane padded(g);
  const bool whole_plane = whole_plane_stencil(g);
  const int64_t wide = whole_plane ? g.out_h * padded.width : 0;
  Workspace<float> wide_grad(wide, /*zeroed=*/true), keep(wide, /*zeroed=*/true);
  for (int64_t oh = 0; oh < g.out_h && whole_plane; ++oh) {
    std::fill_n(keep.data() + oh * padded.width, g.out_w, 1.f);
  }
  int64_t offsets[kMaxDepthwiseTaps];
  padded.tap_offsets(g, offsets);
  for (int64_t k = begin; k < end; ++k) {
    float* grad_weights = gw + k * taps;
    std::fill_n(grad_weights, taps, 0.f);
    for (int64_t n = 0; n < g.batch; ++n) {
      padded.fill(g, x + (n * g.in_channels + k / multiplier) * g.in_plane());
      const float* grad_out = gy + (n * g.out_channels + k) * g.out_plane();
      if (whole_plane) {
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          std::copy_n(grad_out + oh * g.out_w, g.out_w, wide_grad.data() + oh * padded.width);
        }
        for (int64_t t = 0; t < taps; ++t) {
          const float* shifted = padded.data.data() + offsets[t];
          float sum = dot<1>(wide_grad.data(), shifted, wide, 1);
          if (!std::isfinite(sum)) sum = dot<1>(wide_grad.data(), shifted, wide, 1, keep.data());
          grad_weights[t] += sum;
        }
        continue;
      }
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const float* row = padded.data.data() + oh * g.stride_h * padded.width;
        for (int64_t t = 0; t < taps; ++t) {
          const float* grad_row = grad_out + oh * g.out_w;
          grad_weights[t] += g.stride_w == 1 ? dot<1>(grad_row, row + offsets[t], g.out_w, 1)
              : g.stride_w == 2              ? dot<2>(grad_row, row + offsets[t], g.out_w, 2)
                                : dot<0>(grad_row, row + offsets[t], g.out_w, g.stride_w);
        }
      }
    }
  }
}

#if FASTCONV_X86
FASTCONV_AVX2 void input_backward_planes_avx2(const Conv2dGeometry& g, const float* gy,
                                              const float* w, float* gx, int64_t begin,
                                              int64_t end) {
  input_backward_planes(g, gy, w, gx, begin, end);
}

FASTCONV_AVX2 void weight_backward_channels_avx2(const Conv2dGeometry& g, const float* x,
                                                 const float* gy, float* gw, int64_t begin,
                                                 int64_t end) {
  weight_backward_channels(g, x, gy, gw, begin, end);
}
#endif

void input_backward_planes_portable(const Conv2dGeometry& g, const float* gy, const float* w,
                                    float* gx, int64_t begin, int64_t end) {
  input_backward_planes(g, gy, w, gx, begin, end);
}

void weight_backward_channels_portable(const Conv2dGeometry& g, const float* x, const float* gy,
                                       float* gw, int64_t begin, int64_t end) {
  weight_backward_channels(g, x, gy, gw, begin, end);
}

}  // namespace

void depthwise_input_backward(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  const auto planes = FASTCONV_SELECT_ISA(input_backward_planes);
  parallel_for(0, g.batch * g.in_channels, 1,
               [&](int64_t begin, int64_t end) { planes(g, gy, w, gx, begin, end); });
}

void depthwise_weight_backward(const Conv2dGeometry& g, const float* x, const float* gy,
                               float* gw) {
  const auto channels = FASTCONV_SELECT_ISA(weight_backward_channels);
  parallel_for(0, g.out_channels, 1,
               [&](int64_t begin, int64_t end) { channels(g, x, gy, gw, begin, end); });
}

}  // namespace fastconv::cpu
