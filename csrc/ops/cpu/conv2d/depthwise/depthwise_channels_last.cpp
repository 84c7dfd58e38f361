// Depthwise convolution of channels_last tensors (one output channel per input channel): every
// pass works on each pixel's contiguous channel vector, so it runs on NHWC data as it comes,
// with no layout conversion (the frontend's conversions to NCHW and back cost MobileNetV2's
// channels_last runs more than the depthwise layers themselves). Each output element is summed by
// one task in a fixed order (taps in kernel order), the same at every thread count.
#include <algorithm>
#include <vector>

#include "ops/cpu/common.h"
#include "ops/cpu/conv2d/depthwise/depthwise.h"
#include "ops/cpu/isa.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"

namespace fastconv::cpu {
namespace {

// Channels are taken kBlock at a time, with accumulators the compiler keeps in registers.
constexpr int64_t kBlock = 32;

// acc[0..count) += weights[c] * in[c] (in null: times zero, so that a non-finite weight reaching
// the zero padding gives NaN as the padded products of torch's kernels do).
template <int64_t kCount>
FASTCONV_ALWAYS_INLINE void multiply_add(float* __restrict acc, const float* __restrict weights,
                                         const float* __restrict in, int64_t count) {
  const int64_t n = kCount > 0 ? kCount : count;
  if (in == nullptr) {
    for (int64_t c = 0; c < n; ++c) acc[c] += weights[c] * 0.f;
  } else {
    for (int64_t c = 0; c < n; ++c) acc[c] += weights[c] * in[c];
  }
}

// One output pixel's channels [c0, c0 + count): start plus its taps in order, tap t being
// weights[t] (its channel vector of weights) times sources[t] (its input pixel's channel vector,
// or null where it reads padding).
struct PixelTaps {
  std::vector<const float*> sources, weights;
  int64_t count = 0;
  explicit PixelTaps(int64_t taps) : sources(taps), weights(taps) {}
};

template <int64_t kCount>
FASTCONV_ALWAYS_INLINE void pixel_channels(const PixelTaps& taps, const float* start, int64_t c0,
                                           int64_t count, float* out) {
  float acc[kBlock];
  const int64_t n = kCount > 0 ? kCount : count;
  for (int64_t c = 0; c < n; ++c) acc[c] = start != nullptr ? start[c0 + c] : 0.f;
  for (int64_t t = 0; t < taps.count; ++t) {
    const float* in = taps.sources[t] != nullptr ? taps.sources[t] + c0 : nullptr;
    multiply_add<kCount>(acc, taps.weights[t] + c0, in, count);
  }
  for (int64_t c = 0; c < n; ++c) out[c0 + c] = acc[c];
}

FASTCONV_ALWAYS_INLINE void pixel(const PixelTaps& taps, int64_t C, const float* start,
                                  float* out) {
  int64_t c0 = 0;
  for (; c0 + kBlock <= C; c0 += kBlock) pixel_channels<kBlock>(taps, start, c0, kBlock, out);
  for (; c0 + 8 <= C; c0 += 8) pixel_channels<8>(taps, start, c0, 8, out);
  if (c0 < C) pixel_channels<0>(taps, start, c0, C - c0, out);
}

// Output pixel `out` of a row whose taps all lie inside the input: tap t reads base + offsets[t].
template <int64_t kCount>
FASTCONV_ALWAYS_INLINE void interior_channels(const float* base, const int64_t* offsets,
                                              const PixelTaps& taps, const float* start, int64_t c0,
                                              int64_t count, float* out) {
  float acc[kBlock];
  const int64_t n = kCount > 0 ? kCount : count;
  for (int64_t c = 0; c < n; ++c) acc[c] = start != nullptr ? start[c0 + c] : 0.f;
  for (int64_t t = 0; t < taps.count; ++t) {
    multiply_add<kCount>(acc, taps.weights[t] + c0, base + offsets[t] + c0, count);
  }
  for (int64_t c = 0; c < n; ++c) out[c0 + c] = acc[c];
}

FASTCONV_ALWAYS_INLINE void interior_pixel(const float* base, const int64_t* offsets,
                                           const PixelTaps& taps, int64_t C, const float* start,
                                           float* out) {
  int64_t c0 = 0;
  for (; c0 + kBlock <= C; c0 += kBlock) {
    interior_channels<kBlock>(base, offsets, taps, start, c0, kBlock, out);
  }
  for (; c0 + 8 <= C; c0 += 8) interior_channels<8>(base, offsets, taps, start, c0, 8, out);
  if (c0 < C) interior_channels<0>(base, offsets, taps, start, c0, C - c0, out);
}

// Every tap of the kernel, in order, with its weights' channel vector; offsets[t] is where tap t
// reads relative to a window's first pixel in a plane `width` pixels wide, times `direction` (-1:
// the input gradient reads the outputs before its pixel).
PixelTaps kernel_taps(const Conv2dGeometry& g, const float* weights_t, int64_t width,
                      int64_t direction, std::vector<int64_t>& offsets) {
  const int64_t C = g.in_channels;
  PixelTaps taps(g.kernel_h * g.kernel_w);
  taps.count = g.kernel_h * g.kernel_w;
  offsets.resize(taps.count);
  for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
    for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
      const int64_t t = kh * g.kernel_w + kw;
      taps.weights[t] = weights_t + t * C;
      offsets[t] = direction * (kh * g.dilation_h * width + kw * g.dilation_w) * C;
    }
  }
  return taps;
}

// Forward rows [begin, end) of (image, output row): y = bias + the taps of each output pixel. The
// pixels whose taps all lie inside the input read them at fixed offsets; the border's taps that
// read padding add weight x 0.
FASTCONV_ALWAYS_INLINE void forward_rows(const Conv2dGeometry& g, const float* x,
                                         const float* weights_t, const float* bias, float* y,
                                         int64_t begin, int64_t end) {
  const int64_t C = g.in_channels;
  std::vector<int64_t> offsets;
  PixelTaps taps = kernel_taps(g, weights_t, g.in_w, 1, offsets);
  const auto rows_inside = outputs_inside(-g.pad_h, (g.kernel_h - 1) * g.dilation_h - g.pad_h,
                                          g.stride_h, g.in_h, g.out_h);
  const auto cols_inside = outputs_inside(-g.pad_w, (g.kernel_w - 1) * g.dilation_w - g.pad_w,
                                          g.stride_w, g.in_w, g.out_w);
  for (int64_t row = begin; row < end; ++row) {
    const int64_t n = row / g.out_h, oh = row % g.out_h;
    const bool row_inside = oh >= rows_inside.begin && oh < rows_inside.end;
    for (int64_t ow = 0; ow < g.out_w; ++ow) {
      float* out = y + (row * g.out_w + ow) * C;
      if (row_inside && ow >= cols_inside.begin && ow < cols_inside.end) {
        const float* base =
            x + ((n * g.in_h + oh * g.stride_h - g.pad_h) * g.in_w + ow * g.stride_w - g.pad_w) * C;
        interior_pixel(base, offsets.data(), taps, C, bias, out);
        continue;
      }
      for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
        const int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
        for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
          const int64_t iw = ow * g.stride_w - g.pad_w + kw * g.dilation_w;
          const bool inside = ih >= 0 && ih < g.in_h && iw >= 0 && iw < g.in_w;
          taps.sources[kh * g.kernel_w + kw] =
              inside ? x + ((n * g.in_h + ih) * g.in_w + iw) * C : nullptr;
        }
      }
      pixel(taps, C, bias, out);
    }
  }
}

// Input-gradient rows [begin, end) of (image, input row): each input pixel gathers the outputs
// whose taps read it, in kernel order; only real outputs' products, as torch's col2im adds them.
// With stride 1, the pixels all of whose taps come from real outputs read them at fixed offsets.
FASTCONV_ALWAYS_INLINE void input_backward_rows(const Conv2dGeometry& g, const float* gy,
                                                const float* weights_t, float* gx, int64_t begin,
                                                int64_t end) {
  const int64_t C = g.in_channels;
  std::vector<int64_t> offsets;
  const PixelTaps all_taps = kernel_taps(g, weights_t, g.out_w, -1, offsets);
  PixelTaps taps(all_taps.count);
  // Input pixels ih whose outputs ih + pad - kh * dilation all exist (stride 1).
  const bool stride_1 = g.stride_h == 1 && g.stride_w == 1;
  const auto rows_inside =
      outputs_inside(g.pad_h - (g.kernel_h - 1) * g.dilation_h, g.pad_h, 1, g.out_h, g.in_h);
  const auto cols_inside =
      outputs_inside(g.pad_w - (g.kernel_w - 1) * g.dilation_w, g.pad_w, 1, g.out_w, g.in_w);
  for (int64_t row = begin; row < end; ++row) {
    const int64_t n = row / g.in_h, ih = row % g.in_h;
    const bool row_inside = stride_1 && ih >= rows_inside.begin && ih < rows_inside.end;
    for (int64_t iw = 0; iw < g.in_w; ++iw) {
      float* out = gx + (row * g.in_w + iw) * C;
      if (row_inside && iw >= cols_inside.begin && iw < cols_inside.end) {
        const float* base = gy + ((n * g.out_h + ih + g.pad_h) * g.out_w + iw + g.pad_w) * C;
        interior_pixel(base, offsets.data(), all_taps, C, nullptr, out);
        continue;
      }
      taps.count = 0;
      for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
        const int64_t from_h = ih + g.pad_h - kh * g.dilation_h;  // oh * stride_h
        if (from_h < 0 || from_h % g.stride_h != 0 || from_h / g.stride_h >= g.out_h) continue;
        for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
          const int64_t from_w = iw + g.pad_w - kw * g.dilation_w;
          if (from_w < 0 || from_w % g.stride_w != 0 || from_w / g.stride_w >= g.out_w) continue;
          taps.sources[taps.count] =
              gy + ((n * g.out_h + from_h / g.stride_h) * g.out_w + from_w / g.stride_w) * C;
          taps.weights[taps.count] = weights_t + (kh * g.kernel_w + kw) * C;
          ++taps.count;
        }
      }
      pixel(taps, C, nullptr, out);
    }
  }
}

// Weight gradient of channels [c0, c0 + count): per tap, the sum over images and output pixels of
// grad_output times the input the tap reads (zero padding included, as in torch's sums, so that
// a non-finite grad_output there gives NaN). Each (output row, tap) is summed from zero in
// registers over the row's pixels, rows added into the image's sum, images into the total.
template <int64_t kCount>
FASTCONV_ALWAYS_INLINE void weight_backward_block(const Conv2dGeometry& g, const float* x,
                                                  const float* gy, int64_t c0, int64_t count,
                                                  float* sums, float* gw) {
  const int64_t C = g.in_channels, taps = g.kernel_h * g.kernel_w;
  const int64_t n_count = kCount > 0 ? kCount : count;
  float* image_sums = sums;
  float* total = sums + taps * kBlock;
  std::fill_n(total, taps * kBlock, 0.f);
  for (int64_t n = 0; n < g.batch; ++n) {
    std::fill_n(image_sums, taps * kBlock, 0.f);
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      const float* grad_row = gy + (n * g.out_h + oh) * g.out_w * C + c0;
      for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
        const int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
        const bool row_inside = ih >= 0 && ih < g.in_h;
        for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
          const int64_t offset = kw * g.dilation_w - g.pad_w;
          const auto inside =
              row_inside ? taps_inside(offset, g.stride_w, g.in_w, g.out_w) : OutputRange{0, 0};
          float acc[16] = {};
          const float* in = x + ((n * g.in_h + ih) * g.in_w + offset) * C + c0;
          for (int64_t ow = inside.begin; ow < inside.end; ++ow) {
            const float* grad = grad_row + ow * C;
            const float* pixel_in = in + ow * g.stride_w * C;
            for (int64_t c = 0; c < n_count; ++c) acc[c] += grad[c] * pixel_in[c];
          }
          for (int64_t ow = 0; ow < g.out_w; ++ow) {  // padding: + grad x 0
            if (ow >= inside.begin && ow < inside.end) continue;
            for (int64_t c = 0; c < n_count; ++c) acc[c] += grad_row[ow * C + c] * 0.f;
          }
          float* image = image_sums + (kh * g.kernel_w + kw) * kBlock;
          for (int64_t c = 0; c < n_count; ++c) image[c] += acc[c];
        }
      }
    }
    for (int64_t i = 0; i < taps * kBlock; ++i) total[i] += image_sums[i];
  }
  for (int64_t c = 0; c < n_count; ++c) {
    for (int64_t t = 0; t < taps; ++t) gw[(c0 + c) * taps + t] = total[t * kBlock + c];
  }
}

// Channel blocks of 16 (a cache line of each pixel's vector), 8, then the rest, one task each.
struct ChannelBlocks {
  int64_t wide, narrow, rest;
  explicit ChannelBlocks(int64_t C) : wide(C / 16), narrow(C % 16 / 8), rest(C % 8) {}
  int64_t count() const { return wide + narrow + (rest > 0); }
};

FASTCONV_ALWAYS_INLINE void weight_backward_blocks(const Conv2dGeometry& g, const float* x,
                                                   const float* gy, float* gw, int64_t begin,
                                                   int64_t end) {
  const ChannelBlocks blocks(g.in_channels);
  Workspace<float> sums(2 * g.kernel_h * g.kernel_w * kBlock);
  for (int64_t b = begin; b < end; ++b) {
    if (b < blocks.wide) {
      weight_backward_block<16>(g, x, gy, b * 16, 16, sums.data(), gw);
    } else if (b < blocks.wide + blocks.narrow) {
      weight_backward_block<8>(g, x, gy, blocks.wide * 16, 8, sums.data(), gw);
    } else {
      const int64_t c0 = blocks.wide * 16 + blocks.narrow * 8;
      weight_backward_block<0>(g, x, gy, c0, blocks.rest, sums.data(), gw);
    }
  }
}

#if FASTCONV_X86
FASTCONV_AVX2 void forward_rows_avx2(const Conv2dGeometry& g, const float* x, const float* w,
                                     const float* bias, float* y, int64_t begin, int64_t end) {
  forward_rows(g, x, w, bias, y, begin, end);
}
FASTCONV_AVX2 void input_backward_rows_avx2(const Conv2dGeometry& g, const float* gy,
                                            const float* w, float* gx, int64_t begin, int64_t end) {
  input_backward_rows(g, gy, w, gx, begin, end);
}
FASTCONV_AVX2 void weight_backward_blocks_avx2(const Conv2dGeometry& g, const float* x,
                                               const float* gy, float* gw, int64_t begin,
                                               int64_t end) {
  weight_backward_blocks(g, x, gy, gw, begin, end);
}
#endif

void forward_rows_portable(const Conv2dGeometry& g, const float* x, const float* w,
                           const float* bias, float* y, int64_t begin, int64_t end) {
  forward_rows(g, x, w, bias, y, begin, end);
}
void input_backward_rows_portable(const Conv2dGeometry& g, const float* gy, const float* w,
                                  float* gx, int64_t begin, int64_t end) {
  input_backward_rows(g, gy, w, gx, begin, end);
}
void weight_backward_blocks_portable(const Conv2dGeometry& g, const float* x, const float* gy,
                                     float* gw, int64_t begin, int64_t end) {
  weight_backward_blocks(g, x, gy, gw, begin, end);
}

// w [C, 1, kh, kw] as [taps, C]: each tap's weights a contiguous channel vector.
void transpose_weights(const Conv2dGeometry& g, const float* w, float* weights_t) {
  const int64_t taps = g.kernel_h * g.kernel_w;
  for (int64_t c = 0; c < g.in_channels; ++c) {
    for (int64_t t = 0; t < taps; ++t) weights_t[t * g.in_channels + c] = w[c * taps + t];
  }
}

}  // namespace

bool channels_last_depthwise_supported(const Conv2dGeometry& g) {
  return g.groups == g.in_channels && g.out_channels == g.in_channels;
}

void channels_last_depthwise_forward(const Conv2dGeometry& g, const float* x, const float* w,
                                     const float* bias, float* y) {
  const Workspace<float> weights_t(g.in_channels * g.kernel_h * g.kernel_w);
  transpose_weights(g, w, weights_t.data());
  const auto rows = FASTCONV_SELECT_ISA(forward_rows);
  const int64_t grain =
      grain_for(g.out_w * g.in_channels * g.kernel_h * g.kernel_w, kMinMultiplyAddsPerTask);
  parallel_for(0, g.batch * g.out_h, grain, [&](int64_t begin, int64_t end) {
    rows(g, x, weights_t.data(), bias, y, begin, end);
  });
}

void channels_last_depthwise_input_backward(const Conv2dGeometry& g, const float* gy,
                                            const float* w, float* gx) {
  const Workspace<float> weights_t(g.in_channels * g.kernel_h * g.kernel_w);
  transpose_weights(g, w, weights_t.data());
  const auto rows = FASTCONV_SELECT_ISA(input_backward_rows);
  const int64_t grain =
      grain_for(g.in_w * g.in_channels * g.kernel_h * g.kernel_w, kMinMultiplyAddsPerTask);
  parallel_for(0, g.batch * g.in_h, grain,
               [&](int64_t begin, int64_t end) { rows(g, gy, weights_t.data(), gx, begin, end); });
}

void channels_last_depthwise_weight_backward(const Conv2dGeometry& g, const float* x,
                                             const float* gy, float* gw) {
  const auto blocks = FASTCONV_SELECT_ISA(weight_backward_blocks);
  parallel_for(0, ChannelBlocks(g.in_channels).count(), 1,
               [&](int64_t begin, int64_t end) { blocks(g, x, gy, gw, begin, end); });
}

}  // namespace fastconv::cpu
