// The CPU kernels of avg_pool2d and its backward (ops/avg_pool2d_kernels.h).
//
// Forward: a range of planes per task (NCHW) or of output pixels (channels_last). Every output
// sums its window's taps in torch's order (rows, then columns), from zero, in the accumulation
// type (float for the half types, int64 for int64), and divides once by the window's divisor
// (pool_windows.h), as torch does; the sums do not depend on the split into tasks. float32 has
// AVX2 builds, picked with FASTCONV_SELECT_ISA beside their portable twins (the generic loops):
// NCHW does the interior output columns of a row 8 at a time (column stride 1 or 2; the borders
// and other strides take the generic loop), channels_last 8 channels at a time.
// Backward: a gather. Each input element sums grad_output / divisor over the windows that cover
// it (covering_windows), in window order, and is written once: deterministic, no zeroing pass.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "ops/avg_pool2d_kernels.h"
#include "ops/cpu/common.h"
#include "ops/cpu/isa.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"
#include "ops/pool_windows.h"

namespace fastconv::cpu {
namespace {

FASTCONV_ALWAYS_INLINE AvgWindow window_rows(const AvgPool2dGeometry& g, int64_t oh) {
  return avg_window(oh, g.stride_h, g.pad_h, g.kernel_h, g.in_h);
}

FASTCONV_ALWAYS_INLINE AvgWindow window_cols(const AvgPool2dGeometry& g, int64_t ow) {
  return avg_window(ow, g.stride_w, g.pad_w, g.kernel_w, g.in_w);
}

FASTCONV_ALWAYS_INLINE bool no_tap_inside(const AvgWindow& rows, const AvgWindow& cols) {
  return rows.begin >= rows.end || cols.begin >= cols.end;
}

// ------------------------------------------------------------------------------ generic forward

// Outputs [ow_begin, ow_end) of output row `oh` of one plane (y: that plane's output).
template <typename scalar_t>
FASTCONV_ALWAYS_INLINE void average_row(const AvgPool2dGeometry& g, const scalar_t* x, int64_t oh,
                                        int64_t ow_begin, int64_t ow_end, scalar_t* y) {
  using acc_t = at::opmath_type<scalar_t>;
  const AvgWindow rows = window_rows(g, oh);
  for (int64_t ow = ow_begin; ow < ow_end; ++ow) {
    const AvgWindow cols = window_cols(g, ow);
    if (no_tap_inside(rows, cols)) {  // torch's 0 (the checks leave no such window)
      y[oh * g.out_w + ow] = scalar_t(0);
      continue;
    }
    acc_t sum = 0;
    for (int64_t ih = rows.begin; ih < rows.end; ++ih) {
      for (int64_t iw = cols.begin; iw < cols.end; ++iw) {
        sum += static_cast<acc_t>(x[ih * g.in_w + iw]);
      }
    }
    const auto divisor = avg_divisor(rows, cols, g.count_include_pad, g.divisor_override);
    y[oh * g.out_w + ow] = static_cast<scalar_t>(sum / static_cast<acc_t>(divisor));
  }
}

template <typename scalar_t>
void pool_planes_nchw(const AvgPool2dGeometry& g, const scalar_t* input, scalar_t* output,
                      int64_t begin, int64_t end) {
  for (int64_t plane = begin; plane < end; ++plane) {
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      average_row(g, input + plane * g.in_plane(), oh, 0, g.out_w, output + plane * g.out_plane());
    }
  }
}

// Output pixels [begin, end) of a channels_last batch (numbered image by image, row by row).
template <typename scalar_t>
void pool_pixels_cl(const AvgPool2dGeometry& g, const scalar_t* input, scalar_t* output,
                    int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t C = g.channels;
  const Workspace<acc_t> sums(C);
  for (int64_t position = begin; position < end; ++position) {
    const int64_t n = position / g.out_plane();
    const AvgWindow rows = window_rows(g, (position / g.out_w) % g.out_h);
    const AvgWindow cols = window_cols(g, position % g.out_w);
    scalar_t* y = output + position * C;
    if (no_tap_inside(rows, cols)) {
      std::fill_n(y, C, scalar_t(0));
      continue;
    }
    std::fill_n(sums.data(), C, acc_t(0));
    for (int64_t ih = rows.begin; ih < rows.end; ++ih) {
      for (int64_t iw = cols.begin; iw < cols.end; ++iw) {
        const scalar_t* x = input + ((n * g.in_h + ih) * g.in_w + iw) * C;
        for (int64_t c = 0; c < C; ++c) {
          sums[c] += static_cast<acc_t>(x[c]);
        }
      }
    }
    const auto divisor =
        static_cast<acc_t>(avg_divisor(rows, cols, g.count_include_pad, g.divisor_override));
    for (int64_t c = 0; c < C; ++c) {
      y[c] = static_cast<scalar_t>(sums[c] / divisor);
    }
  }
}

// The portable builds of the float32 kernels: the generic loops.
void pool_planes_nchw_f32_portable(const AvgPool2dGeometry& g, const float* input, float* output,
                                   int64_t begin, int64_t end) {
  pool_planes_nchw(g, input, output, begin, end);
}

void pool_pixels_cl_f32_portable(const AvgPool2dGeometry& g, const float* input, float* output,
                                 int64_t begin, int64_t end) {
  pool_pixels_cl(g, input, output, begin, end);
}

// --------------------------------------------------------------------------------- AVX2 forward

#if FASTCONV_X86
// The output columns whose windows lie wholly inside the input.
OutputRange interior_columns(const AvgPool2dGeometry& g) {
  return outputs_inside(-g.pad_w, g.kernel_w - 1 - g.pad_w, g.stride_w, g.in_w, g.out_w);
}

// p[0], p[S], ..., p[7S]. For S = 2 the lanes come out in the order [0, 1, 4, 5, 2, 3, 6, 7] of one
// shuffle of two overlapping loads (which read nothing past p[14]); sums are lane-wise, so the
// block is put back in order once, before it is stored (in_order).
template <int S>
FASTCONV_AVX2_INLINE __m256 load_columns(const float* p) {
  if constexpr (S == 1) {
    return _mm256_loadu_ps(p);
  } else {
    return _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 7), _MM_SHUFFLE(3, 1, 2, 0));
  }
}

template <int S>
FASTCONV_AVX2_INLINE __m256 in_order(__m256 v) {
  if constexpr (S == 1) {
    return v;
  } else {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), _MM_SHUFFLE(3, 1, 2, 0)));
  }
}

// Outputs [ow0, ow0 + 8) of one row, all interior columns, with window rows `rows`.
template <int S>
FASTCONV_AVX2_INLINE void average_block_nchw(const AvgPool2dGeometry& g, const float* x,
                                             const AvgWindow& rows, int64_t ow0, __m256 divisor,
                                             float* y) {
  const float* first = x + ow0 * S - g.pad_w;
  __m256 sum = _mm256_setzero_ps();
  for (int64_t ih = rows.begin; ih < rows.end; ++ih) {
    const float* row = first + ih * g.in_w;
    for (int64_t iw = 0; iw < g.kernel_w; ++iw) {
      sum = _mm256_add_ps(sum, load_columns<S>(row + iw));
    }
  }
  _mm256_storeu_ps(y + ow0, in_order<S>(_mm256_div_ps(sum, divisor)));
}

template <int S>
FASTCONV_AVX2 void pool_planes_nchw_avx2(const AvgPool2dGeometry& g, const float* input,
                                         float* output, int64_t begin, int64_t end) {
  const OutputRange interior = interior_columns(g);
  const AvgWindow inside_cols{0, g.kernel_w, g.kernel_w};  // any interior column's window
  for (int64_t plane = begin; plane < end; ++plane) {
    const float* x = input + plane * g.in_plane();
    float* y_plane = output + plane * g.out_plane();
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      const AvgWindow rows = window_rows(g, oh);
      if (interior.end - interior.begin < 8 || rows.begin >= rows.end) {
        average_row(g, x, oh, 0, g.out_w, y_plane);
        continue;
      }
      float* y = y_plane + oh * g.out_w;
      const __m256 divisor = _mm256_set1_ps(static_cast<float>(
          avg_divisor(rows, inside_cols, g.count_include_pad, g.divisor_override)));
      average_row(g, x, oh, 0, interior.begin, y_plane);
      int64_t ow = interior.begin;
      for (; ow + 8 <= interior.end; ow += 8) {
        average_block_nchw<S>(g, x, rows, ow, divisor, y);
      }
      if (ow < interior.end) {  // the last 8 interior columns, again in part: same results
        average_block_nchw<S>(g, x, rows, interior.end - 8, divisor, y);
      }
      average_row(g, x, oh, interior.end, g.out_w, y_plane);
    }
  }
}

void pool_planes_nchw_f32_avx2(const AvgPool2dGeometry& g, const float* input, float* output,
                               int64_t begin, int64_t end) {
  if (g.stride_w == 1) {
    pool_planes_nchw_avx2<1>(g, input, output, begin, end);
  } else if (g.stride_w == 2) {
    pool_planes_nchw_avx2<2>(g, input, output, begin, end);
  } else {
    pool_planes_nchw(g, input, output, begin, end);
  }
}

FASTCONV_AVX2 void pool_pixels_cl_f32_avx2(const AvgPool2dGeometry& g, const float* input,
                                           float* output, int64_t begin, int64_t end) {
  const int64_t C = g.channels;
  const __m256i tail_mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(C % 8)),
                                               _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  for (int64_t position = begin; position < end; ++position) {
    const AvgWindow rows = window_rows(g, (position / g.out_w) % g.out_h);
    const AvgWindow cols = window_cols(g, position % g.out_w);
    float* y = output + position * C;
    if (no_tap_inside(rows, cols)) {
      std::fill_n(y, C, 0.0f);
      continue;
    }
    const float* x = input + position / g.out_plane() * g.in_plane() * C;
    const __m256 divisor = _mm256_set1_ps(
        static_cast<float>(avg_divisor(rows, cols, g.count_include_pad, g.divisor_override)));
    for (int64_t c = 0; c < C; c += 8) {
      const bool partial = c + 8 > C;
      __m256 sum = _mm256_setzero_ps();
      for (int64_t ih = rows.begin; ih < rows.end; ++ih) {
        for (int64_t iw = cols.begin; iw < cols.end; ++iw) {
          const float* p = x + (ih * g.in_w + iw) * C + c;
          sum = _mm256_add_ps(sum, partial ? _mm256_maskload_ps(p, tail_mask) : _mm256_loadu_ps(p));
        }
      }
      const __m256 average = _mm256_div_ps(sum, divisor);
      if (partial) {
        _mm256_maskstore_ps(y + c, tail_mask, average);
      } else {
        _mm256_storeu_ps(y + c, average);
      }
    }
  }
}
#endif

template <typename scalar_t>
void forward_nchw(const AvgPool2dGeometry& g, const scalar_t* input, scalar_t* output) {
  const int64_t grain = grain_for(g.in_plane(), kMinPoolElementsPerTask);
  parallel_for(0, g.batch * g.channels, grain, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same_v<scalar_t, float>) {
      FASTCONV_SELECT_ISA(pool_planes_nchw_f32)(g, input, output, begin, end);
    } else {
      pool_planes_nchw(g, input, output, begin, end);
    }
  });
}

template <typename scalar_t>
void forward_channels_last(const AvgPool2dGeometry& g, const scalar_t* input, scalar_t* output) {
  const int64_t work = std::max<int64_t>(1, g.channels * g.kernel_h * g.kernel_w);
  const int64_t grain = std::max<int64_t>(1, kMinPoolElementsPerTask / work);
  parallel_for(0, g.batch * g.out_plane(), grain, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same_v<scalar_t, float>) {
      FASTCONV_SELECT_ISA(pool_pixels_cl_f32)(g, input, output, begin, end);
    } else {
      pool_pixels_cl(g, input, output, begin, end);
    }
  });
}

// ------------------------------------------------------------------------------------- backward

// The windows of every output row and column, computed once per call.
struct Windows {
  std::vector<AvgWindow> rows, cols;

  explicit Windows(const AvgPool2dGeometry& g) : rows(g.out_h), cols(g.out_w) {
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      rows[oh] = window_rows(g, oh);
    }
    for (int64_t ow = 0; ow < g.out_w; ++ow) {
      cols[ow] = window_cols(g, ow);
    }
  }
};

template <typename acc_t>
FASTCONV_ALWAYS_INLINE acc_t divisor_of(const AvgPool2dGeometry& g, const Windows& w, int64_t oh,
                                        int64_t ow) {
  return static_cast<acc_t>(
      avg_divisor(w.rows[oh], w.cols[ow], g.count_include_pad, g.divisor_override));
}

// Planes [begin, end), NCHW.
template <typename scalar_t>
void backward_planes_nchw(const AvgPool2dGeometry& g, const Windows& w, const scalar_t* grad_output,
                          scalar_t* grad_input, int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t plane = begin; plane < end; ++plane) {
    const scalar_t* gy = grad_output + plane * g.out_plane();
    scalar_t* gx = grad_input + plane * g.in_plane();
    for (int64_t ih = 0; ih < g.in_h; ++ih) {
      const auto rows = covering_windows(ih, g.stride_h, g.pad_h, g.kernel_h, 1, g.out_h);
      for (int64_t iw = 0; iw < g.in_w; ++iw) {
        const auto cols = covering_windows(iw, g.stride_w, g.pad_w, g.kernel_w, 1, g.out_w);
        acc_t sum = 0;
        for (int64_t oh = rows.first; oh <= rows.last; ++oh) {
          for (int64_t ow = cols.first; ow <= cols.last; ++ow) {
            sum += static_cast<acc_t>(gy[oh * g.out_w + ow]) / divisor_of<acc_t>(g, w, oh, ow);
          }
        }
        gx[ih * g.in_w + iw] = static_cast<scalar_t>(sum);
      }
    }
  }
}

// Input pixels [begin, end) of a channels_last batch, all channels at once.
template <typename scalar_t>
void backward_pixels_cl(const AvgPool2dGeometry& g, const Windows& w, const scalar_t* grad_output,
                        scalar_t* grad_input, int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t C = g.channels;
  const Workspace<acc_t> sums(C);
  for (int64_t pixel = begin; pixel < end; ++pixel) {
    const int64_t n = pixel / g.in_plane();
    const auto rows =
        covering_windows((pixel / g.in_w) % g.in_h, g.stride_h, g.pad_h, g.kernel_h, 1, g.out_h);
    const auto cols = covering_windows(pixel % g.in_w, g.stride_w, g.pad_w, g.kernel_w, 1, g.out_w);
    std::fill_n(sums.data(), C, acc_t(0));
    for (int64_t oh = rows.first; oh <= rows.last; ++oh) {
      for (int64_t ow = cols.first; ow <= cols.last; ++ow) {
        const scalar_t* gy = grad_output + ((n * g.out_h + oh) * g.out_w + ow) * C;
        const acc_t divisor = divisor_of<acc_t>(g, w, oh, ow);
        for (int64_t c = 0; c < C; ++c) {
          sums[c] += static_cast<acc_t>(gy[c]) / divisor;
        }
      }
    }
    scalar_t* gx = grad_input + pixel * C;
    for (int64_t c = 0; c < C; ++c) {
      gx[c] = static_cast<scalar_t>(sums[c]);
    }
  }
}

}  // namespace

void avg_pool2d_forward(const AvgPool2dGeometry& g, const at::Tensor& x, at::MemoryFormat layout,
                        at::Tensor& output) {
  AT_DISPATCH_FLOATING_TYPES_AND3(
      at::kLong, at::kHalf, at::kBFloat16, x.scalar_type(), "avg_pool2d", [&] {
        const auto forward = layout == at::MemoryFormat::ChannelsLast
            ? forward_channels_last<scalar_t>
            : forward_nchw<scalar_t>;
        forward(g, x.const_data_ptr<scalar_t>(), output.mutable_data_ptr<scalar_t>());
      });
}

void avg_pool2d_backward(const AvgPool2dGeometry& g, const at::Tensor& grad_output,
                         at::MemoryFormat layout, at::Tensor& grad_input) {
  const Windows windows(g);
  AT_DISPATCH_FLOATING_TYPES_AND3(
      at::kLong, at::kHalf, at::kBFloat16, grad_output.scalar_type(), "avg_pool2d_backward", [&] {
        const scalar_t* gy = grad_output.const_data_ptr<scalar_t>();
        scalar_t* gx = grad_input.mutable_data_ptr<scalar_t>();
        if (layout == at::MemoryFormat::ChannelsLast) {
          const int64_t grain = grain_for(g.channels, kMinPoolElementsPerTask);
          parallel_for(0, g.batch * g.in_plane(), grain, [&](int64_t begin, int64_t end) {
            backward_pixels_cl(g, windows, gy, gx, begin, end);
          });
        } else {
          const int64_t grain = grain_for(g.in_plane(), kMinPoolElementsPerTask);
          parallel_for(0, g.batch * g.channels, grain, [&](int64_t begin, int64_t end) {
            backward_planes_nchw(g, windows, gy, gx, begin, end);
          });
        }
      });
}

}  // namespace fastconv::cpu
