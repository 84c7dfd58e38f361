// CPU kernels of max_pool2d_with_indices and its backward. The forward has one loop for NCHW
// (a plane per task) and one for channels_last (a pixel per task, channels innermost).
#include <ATen/Dispatch.h>
#include <ATen/NumericUtils.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <tuple>
#include <vector>

#include "../shape_checks.h"

namespace fastconv::cpu {
namespace {

// Taps of output position `o` along one dimension that fall inside the input: begin, end, step.
struct WindowTaps {
  int64_t begin, end;
};

inline WindowTaps window_taps(int64_t o, int64_t stride, int64_t pad, int64_t kernel,
                              int64_t dilation, int64_t size) {
  int64_t begin = o * stride - pad;
  const int64_t end = std::min(begin + (kernel - 1) * dilation + 1, size);
  while (begin < 0) {
    begin += dilation;
  }
  return {begin, end};
}

template <typename acc_t>
constexpr acc_t lowest_value() {
  return std::numeric_limits<acc_t>::has_infinity ? -std::numeric_limits<acc_t>::infinity()
                                                  : std::numeric_limits<acc_t>::lowest();
}

// torch's rule: a larger value or a NaN takes the switch, so ties keep the first index in window
// order (row by row) and a NaN wins.
template <typename scalar_t, typename acc_t>
inline bool takes_switch(scalar_t value, acc_t best) {
  return static_cast<acc_t>(value) > best || at::_isnan(value);
}

template <typename scalar_t>
void max_pool2d_nchw(const Pool2dGeometry& g, const scalar_t* input, scalar_t* output,
                     int64_t* indices) {
  using acc_t = at::opmath_type<scalar_t>;
  at::parallel_for(0, g.batch * g.channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const scalar_t* x = input + plane * g.in_plane();
      scalar_t* y = output + plane * g.out_plane();
      int64_t* switches = indices + plane * g.out_plane();
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const auto rows = window_taps(oh, g.stride_h, g.pad_h, g.kernel_h, g.dilation_h, g.in_h);
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const auto cols =
              window_taps(ow, g.stride_w, g.pad_w, g.kernel_w, g.dilation_w, g.in_w);
          acc_t best = lowest_value<acc_t>();
          int64_t best_index = rows.begin * g.in_w + cols.begin;
          for (int64_t ih = rows.begin; ih < rows.end; ih += g.dilation_h) {
            for (int64_t iw = cols.begin; iw < cols.end; iw += g.dilation_w) {
              const scalar_t value = x[ih * g.in_w + iw];
              if (takes_switch(value, best)) {
                best = static_cast<acc_t>(value);
                best_index = ih * g.in_w + iw;
              }
            }
          }
          y[oh * g.out_w + ow] = static_cast<scalar_t>(best);
          switches[oh * g.out_w + ow] = best_index;
        }
      }
    }
  });
}

template <typename scalar_t>
void max_pool2d_channels_last(const Pool2dGeometry& g, const scalar_t* input, scalar_t* output,
                              int64_t* indices) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t C = g.channels;
  at::parallel_for(0, g.batch * g.out_plane(), 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> best(C);
    for (int64_t position = begin; position < end; ++position) {
      const int64_t n = position / g.out_plane();
      const int64_t oh = (position / g.out_w) % g.out_h;
      const int64_t ow = position % g.out_w;
      const auto rows = window_taps(oh, g.stride_h, g.pad_h, g.kernel_h, g.dilation_h, g.in_h);
      const auto cols = window_taps(ow, g.stride_w, g.pad_w, g.kernel_w, g.dilation_w, g.in_w);
      int64_t* switches = indices + position * C;
      std::fill(best.begin(), best.end(), lowest_value<acc_t>());
      std::fill_n(switches, C, rows.begin * g.in_w + cols.begin);
      for (int64_t ih = rows.begin; ih < rows.end; ih += g.dilation_h) {
        for (int64_t iw = cols.begin; iw < cols.end; iw += g.dilation_w) {
          const scalar_t* x = input + ((n * g.in_h + ih) * g.in_w + iw) * C;
          const int64_t flat = ih * g.in_w + iw;
          for (int64_t c = 0; c < C; ++c) {
            if (takes_switch(x[c], best[c])) {
              best[c] = static_cast<acc_t>(x[c]);
              switches[c] = flat;
            }
          }
        }
      }
      scalar_t* y = output + position * C;
      for (int64_t c = 0; c < C; ++c) {
        y[c] = static_cast<scalar_t>(best[c]);
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> max_pool2d_with_indices_kernel(
    const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
  const auto g = check_max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode);
  const bool channels_last = is_channels_last(input);
  const auto memory_format =
      channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  auto sizes = input.sizes().vec();
  sizes[sizes.size() - 2] = g.out_h;
  sizes[sizes.size() - 1] = g.out_w;
  auto output = at::empty(sizes, input.options().memory_format(memory_format));
  auto indices = at::empty(sizes, input.options().dtype(at::kLong).memory_format(memory_format));
  if (output.numel() == 0) {
    return {output, indices};
  }
  const auto x = input.contiguous(memory_format);
  AT_DISPATCH_ALL_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "max_pool2d", [&] {
    auto pool = channels_last ? max_pool2d_channels_last<scalar_t> : max_pool2d_nchw<scalar_t>;
    pool(g, x.const_data_ptr<scalar_t>(), output.mutable_data_ptr<scalar_t>(),
         indices.mutable_data_ptr<int64_t>());
  });
  return {output, indices};
}

at::Tensor max_pool2d_with_indices_backward_kernel(
    const at::Tensor& grad_output, const at::Tensor& input, at::IntArrayRef kernel_size,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode,
    const at::Tensor& indices) {
  const auto g = check_max_pool2d_backward(grad_output, input, indices, kernel_size, stride,
                                           padding, dilation, ceil_mode);
  auto grad_input = at::empty(input.sizes(), grad_output.options());
  const auto memory_format =
      is_channels_last(input) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  if (grad_output.numel() == 0) {
    return grad_input.zero_().contiguous(memory_format);
  }
  const auto gy = grad_output.contiguous();
  const auto switches = indices.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, gy.scalar_type(), "max_pool2d_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    // A plane per task, its outputs in order: each plane's sums have a fixed order. Half types
    // add up in float and round once.
    at::parallel_for(0, g.batch * g.channels, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> sums(g.in_plane());
      for (int64_t plane = begin; plane < end; ++plane) {
        const scalar_t* gy_p = gy.const_data_ptr<scalar_t>() + plane * g.out_plane();
        const int64_t* s_p = switches.const_data_ptr<int64_t>() + plane * g.out_plane();
        std::fill(sums.begin(), sums.end(), acc_t(0));
        for (int64_t o = 0; o < g.out_plane(); ++o) {
          if (s_p[o] >= 0 && s_p[o] < g.in_plane()) {  // a window with no tap inside the input
            sums[s_p[o]] += static_cast<acc_t>(gy_p[o]);  // points outside it: no gradient
          }
        }
        scalar_t* gx_p = grad_input.mutable_data_ptr<scalar_t>() + plane * g.in_plane();
        std::transform(sums.begin(), sums.end(), gx_p,
                       [](acc_t v) { return static_cast<scalar_t>(v); });
      }
    });
  });
  return grad_input.contiguous(memory_format);
}

} // namespace

TORCH_LIBRARY_IMPL(fastconv, CPU, m) {
  m.impl("max_pool2d_with_indices", &max_pool2d_with_indices_kernel);
  m.impl("max_pool2d_with_indices_backward", &max_pool2d_with_indices_backward_kernel);
}

} // namespace fastconv::cpu
