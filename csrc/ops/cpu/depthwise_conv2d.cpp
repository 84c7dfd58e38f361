#include "depthwise_conv2d.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace fastconv::cpu {
namespace {

// The output columns [begin, end) whose tap at input column ow * stride + offset lies inside a row
// of `width` columns.
struct ColumnRange {
  int64_t begin, end;
};

ColumnRange columns_inside(int64_t offset, int64_t stride, int64_t width, int64_t out_w) {
  const int64_t begin = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  const int64_t last = width - 1 - offset;  // the largest ow * stride that stays inside
  const int64_t end = last < 0 ? 0 : std::min(out_w, last / stride + 1);
  return {begin, std::max(begin, end)};
}

// out[ow] += weight * in[ow * stride + offset] over the columns inside the input row; stride 1 is
// a contiguous loop the compiler vectorizes.
inline void add_tap(float* __restrict out, const float* __restrict in_row, float weight,
                    int64_t offset, int64_t stride, int64_t in_w, int64_t out_w) {
  const auto [begin, end] = columns_inside(offset, stride, in_w, out_w);
  const float* in = in_row + offset;
  if (stride == 1) {
    for (int64_t ow = begin; ow < end; ++ow) out[ow] += weight * in[ow];
  } else {
    for (int64_t ow = begin; ow < end; ++ow) out[ow] += weight * in[ow * stride];
  }
}

// The sum over ow in the columns inside of a[ow] * b[ow * stride + offset], in 8 fixed lanes (a
// sum the compiler may vectorize without reordering it between runs).
inline float dot_tap(const float* __restrict a, const float* __restrict b_row, int64_t offset,
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

void depthwise_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                       float* y) {
  const int64_t multiplier = g.out_channels_per_group(), taps = g.kernel_h * g.kernel_w;
  at::parallel_for(0, g.batch * g.out_channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t n = plane / g.out_channels, k = plane % g.out_channels;
      const float* in = x + (n * g.in_channels + k / multiplier) * g.in_plane();
      const float* weights = w + k * taps;
      float* out = y + plane * g.out_plane();
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        float* out_row = out + oh * g.out_w;
        std::fill_n(out_row, g.out_w, bias != nullptr ? bias[k] : 0.f);
        for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
          const int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
          if (ih < 0 || ih >= g.in_h) continue;
          for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
            add_tap(out_row, in + ih * g.in_w, weights[kh * g.kernel_w + kw],
                    kw * g.dilation_w - g.pad_w, g.stride_w, g.in_w, g.out_w);
          }
        }
      }
    }
  });
}

void depthwise_input_backward(const Conv2dGeometry& g, const float* gy, const float* w,
                              float* gx) {
  const int64_t multiplier = g.out_channels_per_group(), taps = g.kernel_h * g.kernel_w;
  // One input plane per task, adding the taps of its output channels in a fixed order.
  at::parallel_for(0, g.batch * g.in_channels, 1, [&](int64_t begin, int64_t end) {
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
              // The forward's add_tap, transposed: in_row[ow * stride + offset] += w * grad[ow].
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
  });
}

void depthwise_weight_backward(const Conv2dGeometry& g, const float* x, const float* gy,
                               float* gw) {
  const int64_t multiplier = g.out_channels_per_group(), taps = g.kernel_h * g.kernel_w;
  // One output channel per task, over the images in order.
  at::parallel_for(0, g.out_channels, 1, [&](int64_t begin, int64_t end) {
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
  });
}

} // namespace fastconv::cpu
