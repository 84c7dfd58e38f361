#include "depthwise_conv2d.h"

#include <ATen/Parallel.h>

#include <algorithm>

#include "gemm_microkernel.h"

#if defined(__x86_64__) || defined(_M_X64)
#define FASTCONV_X86 1
#endif
#define FASTCONV_ALWAYS_INLINE __attribute__((always_inline))

namespace fastconv::cpu {
namespace {

// The output columns [begin, end) whose tap at input column ow * stride + offset lies inside a row
// of `width` columns.
struct ColumnRange {
  int64_t begin, end;
};

FASTCONV_ALWAYS_INLINE inline ColumnRange columns_inside(int64_t offset, int64_t stride,
                                                        int64_t width, int64_t out_w) {
  const int64_t begin = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  const int64_t last = width - 1 - offset;  // the largest ow * stride that stays inside
  const int64_t end = last < 0 ? 0 : std::min(out_w, last / stride + 1);
  return {begin, std::max(begin, end)};
}

// The sum over ow in the columns inside of a[ow] * b[ow * stride + offset], in 8 fixed lanes (a
// sum the compiler may vectorize without reordering it between runs).
FASTCONV_ALWAYS_INLINE inline float dot_tap(const float* __restrict a,
                                            const float* __restrict b_row, int64_t offset,
                                            int64_t stride, int64_t in_w, int64_t out_w) {
  const auto [begin, end] = columns_inside(offset, stride, in_w, out_w);
  const float* b = b_row + offset;
  float lanes[8] = {};
  int64_t ow = begin;
  if (stride == 1) {
    for (; ow + 8 <= end; ow += 8) {
      for (int64_t l = 0; l < 8; ++l) lanes[l] += a[ow + l] * b[ow + l];
    }
  }
  for (; ow < end; ++ow) lanes[0] += a[ow] * b[ow * stride];
  float sum = 0.f;
  for (float lane : lanes) sum += lane;
  return sum;
}

} // namespace

namespace {

constexpr int64_t kLanes = 16;  // output columns summed together in registers

// One output row of one plane: out[ow] = start + the taps' weight * input, summed tap by tap in
// the order of `taps` (kernel row, then column), for every column. Columns whose taps all lie in
// the image are summed kLanes at a time in registers; the others one at a time, skipping taps
// outside. kStride is the column stride when it is 1 or 2 (so that the compiler vectorizes the
// loads), or 0 for any stride.
struct RowTaps {
  const float* rows[64];  // per tap: the input row, shifted by the tap's column offset
  float weights[64];
  int64_t offsets[64];
  int64_t count;
};

template <int kStride>
FASTCONV_ALWAYS_INLINE inline void forward_row(const RowTaps& taps, float start, int64_t stride,
                                               int64_t in_w, int64_t out_w, int64_t inside_begin,
                                               int64_t inside_end, float* __restrict out) {
  const int64_t s = kStride != 0 ? kStride : stride;
  auto one_column = [&](int64_t ow) {
    float acc = start;
    for (int64_t t = 0; t < taps.count; ++t) {
      const int64_t iw = ow * s + taps.offsets[t];
      if (iw >= 0 && iw < in_w) acc += taps.weights[t] * taps.rows[t][ow * s];
    }
    out[ow] = acc;
  };
  auto lanes_from = [&](int64_t ow) {
    float acc[kLanes];
    for (int64_t l = 0; l < kLanes; ++l) acc[l] = start;
    for (int64_t t = 0; t < taps.count; ++t) {
      const float weight = taps.weights[t];
      const float* in = taps.rows[t] + ow * s;
      for (int64_t l = 0; l < kLanes; ++l) acc[l] += weight * in[l * s];
    }
    for (int64_t l = 0; l < kLanes; ++l) out[ow + l] = acc[l];
  };
  int64_t ow = 0;
  for (; ow < std::min(inside_begin, out_w); ++ow) one_column(ow);
  if (inside_end - ow >= kLanes) {
    for (; ow + kLanes <= inside_end; ow += kLanes) lanes_from(ow);
    if (ow < inside_end) {
      lanes_from(inside_end - kLanes);  // the last lanes again, overlapping: same values
      ow = inside_end;
    }
  }
  for (; ow < out_w; ++ow) one_column(ow);
}

FASTCONV_ALWAYS_INLINE inline void forward_planes(const Conv2dGeometry& g, const float* x,
                                                  const float* w, const float* bias, float* y,
                                                  int64_t begin, int64_t end) {
  const int64_t multiplier = g.out_channels_per_group(), taps_per_plane = g.kernel_h * g.kernel_w;
  // Output columns whose taps all lie inside the input row.
  const int64_t first_offset = -g.pad_w, last_offset = (g.kernel_w - 1) * g.dilation_w - g.pad_w;
  const int64_t inside_begin = columns_inside(first_offset, g.stride_w, g.in_w, g.out_w).begin;
  const int64_t inside_end = columns_inside(last_offset, g.stride_w, g.in_w, g.out_w).end;
  RowTaps taps;
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t n = plane / g.out_channels, k = plane % g.out_channels;
    const float* in = x + (n * g.in_channels + k / multiplier) * g.in_plane();
    const float* weights = w + k * taps_per_plane;
    const float start = bias != nullptr ? bias[k] : 0.f;
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      taps.count = 0;
      for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
        const int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
        if (ih < 0 || ih >= g.in_h) continue;
        for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
          const int64_t offset = kw * g.dilation_w - g.pad_w;
          taps.rows[taps.count] = in + ih * g.in_w + offset;
          taps.weights[taps.count] = weights[kh * g.kernel_w + kw];
          taps.offsets[taps.count++] = offset;
        }
      }
      float* out = y + plane * g.out_plane() + oh * g.out_w;
      if (g.stride_w == 1) {
        forward_row<1>(taps, start, 1, g.in_w, g.out_w, inside_begin, inside_end, out);
      } else if (g.stride_w == 2) {
        forward_row<2>(taps, start, 2, g.in_w, g.out_w, inside_begin, inside_end, out);
      } else {
        forward_row<0>(taps, start, g.stride_w, g.in_w, g.out_w, inside_begin, inside_end, out);
      }
    }
  }
}

#ifdef FASTCONV_X86
__attribute__((target("avx2,fma"))) void forward_planes_avx2(
    const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
    int64_t begin, int64_t end) {
  forward_planes(g, x, w, bias, y, begin, end);
}
#endif

void forward_planes_portable(const Conv2dGeometry& g, const float* x, const float* w,
                             const float* bias, float* y, int64_t begin, int64_t end) {
  forward_planes(g, x, w, bias, y, begin, end);
}

} // namespace

bool depthwise_supported(const Conv2dGeometry& g) {
  return g.in_channels_per_group() == 1 && g.kernel_h * g.kernel_w <= 64;
}

void depthwise_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                       float* y) {
  auto* planes = forward_planes_portable;
#ifdef FASTCONV_X86
  if (microkernel_uses_avx2()) planes = forward_planes_avx2;
#endif
  at::parallel_for(0, g.batch * g.out_channels, 1, [&](int64_t begin, int64_t end) {
    planes(g, x, w, bias, y, begin, end);
  });
}

namespace {

// The input gradient of planes [begin, end): one input plane per task, adding the taps of its
// output channels in a fixed order (the forward's taps, transposed).
FASTCONV_ALWAYS_INLINE inline void input_backward_planes(const Conv2dGeometry& g, const float* gy,
                                                         const float* w, float* gx,
                                                         int64_t begin, int64_t end) {
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
            const auto [first, last] = columns_inside(offset, g.stride_w, g.in_w, g.out_w);
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

// The weight gradient of output channels [begin, end), each summed over the images in order.
FASTCONV_ALWAYS_INLINE inline void weight_backward_channels(const Conv2dGeometry& g,
                                                            const float* x, const float* gy,
                                                            float* gw, int64_t begin,
                                                            int64_t end) {
  const int64_t multiplier = g.out_channels_per_group(), taps = g.kernel_h * g.kernel_w;
  for (int64_t k = begin; k < end; ++k) {
    float* grad_weights = gw + k * taps;
    std::fill_n(grad_weights, taps, 0.f);
    for (int64_t n = 0; n < g.batch; ++n) {
      const float* in = x + (n * g.in_channels + k / multiplier) * g.in_plane();
      const float* grad_out = gy + (n * g.out_channels + k) * g.out_plane();
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
          const int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
          if (ih < 0 || ih >= g.in_h) continue;
          for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
            grad_weights[kh * g.kernel_w + kw] +=
                dot_tap(grad_out + oh * g.out_w, in + ih * g.in_w, kw * g.dilation_w - g.pad_w,
                        g.stride_w, g.in_w, g.out_w);
          }
        }
      }
    }
  }
}

#ifdef FASTCONV_X86
__attribute__((target("avx2,fma"))) void input_backward_planes_avx2(
    const Conv2dGeometry& g, const float* gy, const float* w, float* gx, int64_t begin,
    int64_t end) {
  input_backward_planes(g, gy, w, gx, begin, end);
}

__attribute__((target("avx2,fma"))) void weight_backward_channels_avx2(
    const Conv2dGeometry& g, const float* x, const float* gy, float* gw, int64_t begin,
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

} // namespace

void depthwise_input_backward(const Conv2dGeometry& g, const float* gy, const float* w,
                              float* gx) {
  auto* planes = input_backward_planes_portable;
#ifdef FASTCONV_X86
  if (microkernel_uses_avx2()) planes = input_backward_planes_avx2;
#endif
  at::parallel_for(0, g.batch * g.in_channels, 1, [&](int64_t begin, int64_t end) {
    planes(g, gy, w, gx, begin, end);
  });
}

void depthwise_weight_backward(const Conv2dGeometry& g, const float* x, const float* gy,
                               float* gw) {
  auto* channels = weight_backward_channels_portable;
#ifdef FASTCONV_X86
  if (microkernel_uses_avx2()) channels = weight_backward_channels_avx2;
#endif
  at::parallel_for(0, g.out_channels, 1, [&](int64_t begin, int64_t end) {
    channels(g, x, gy, gw, begin, end);
  });
}

} // namespace fastconv::cpu
