// The CPU kernels of max_pool2d_with_indices and its backward: the drivers that split the work
// into tasks and pick, per task, the generic loops (max_pool2d_generic.h) or a float32 kernel with
// an AVX2 build (max_pool2d_vector.h).
//
// Forward: a plane per task (NCHW) or a range of output pixels (channels_last).
// Backward: each output's gradient is added at its index; every input element's sum runs in output
// order whatever the split into tasks (deterministic). Disjoint windows in float32 go as a gather
// (max_pool2d_backward_avx2.cpp); otherwise a scatter that zeroes a band of rows just ahead of the
// windows that reach them, so both stay in the cache. Parallel over planes (NCHW) or images
// (channels_last; with fewer images than threads, bands of an image's rows). Half types add up in
// float and round once (NCHW; channels_last goes through NCHW).
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <type_traits>
#include <vector>

#include "ops/cpu/common.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/pool/max_pool2d_generic.h"
#include "ops/cpu/pool/max_pool2d_vector.h"
#include "ops/cpu/workspace.h"
#include "ops/max_pool2d_kernels.h"

namespace fastconv::cpu {
namespace {

template <typename scalar_t>
void pool_planes_nchw(const Pool2dGeometry& g, const scalar_t* input, scalar_t* output,
                      int64_t* indices, int64_t begin, int64_t end) {
  for (int64_t plane = begin; plane < end; ++plane) {
    const scalar_t* x = input + plane * g.in_plane();
    scalar_t* y = output + plane * g.out_plane();
    int64_t* plane_indices = indices + plane * g.out_plane();
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      pool_row_generic(g, x, oh, 0, g.out_w, y, plane_indices);
    }
  }
}

template <typename scalar_t>
void pool_pixels_cl(const Pool2dGeometry& g, const scalar_t* input, scalar_t* output,
                    int64_t* indices, int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t C = g.channels;
  const Workspace<acc_t> best(C);
  for (int64_t position = begin; position < end; ++position) {
    const auto [n, rows, cols] = pixel_window(g, position);
    int64_t* pixel_indices = indices + position * C;
    std::fill_n(best.data(), C, lowest_value<acc_t>());
    std::fill_n(pixel_indices, C, rows.begin * g.in_w + cols.begin);
    for (int64_t ih = rows.begin; ih < rows.end; ih += g.dilation_h) {
      for (int64_t iw = cols.begin; iw < cols.end; iw += g.dilation_w) {
        const scalar_t* x = input + ((n * g.in_h + ih) * g.in_w + iw) * C;
        const int64_t flat = ih * g.in_w + iw;
        for (int64_t c = 0; c < C; ++c) {
          if (replaces_max(x[c], best[c])) {
            best[c] = static_cast<acc_t>(x[c]);
            pixel_indices[c] = flat;
          }
        }
      }
    }
    scalar_t* y = output + position * C;
    for (int64_t c = 0; c < C; ++c) {
      y[c] = static_cast<scalar_t>(best[c]);
    }
  }
}

template <typename scalar_t>
void forward_nchw(const Pool2dGeometry& g, const scalar_t* input, scalar_t* output,
                  int64_t* indices) {
  const int64_t grain = grain_for(g.in_plane(), kMinPoolElementsPerTask);
  parallel_for(0, g.batch * g.channels, grain, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (int32_plane(g)) {
        FASTCONV_SELECT_ISA(pool_planes_nchw_f32)(g, input, output, indices, begin, end);
        return;
      }
    }
    pool_planes_nchw(g, input, output, indices, begin, end);
  });
}

template <typename scalar_t>
void forward_channels_last(const Pool2dGeometry& g, const scalar_t* input, scalar_t* output,
                           int64_t* indices) {
  const int64_t grain = grain_for(g.channels * 4, kMinPoolElementsPerTask);
  parallel_for(0, g.batch * g.out_plane(), grain, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (int32_plane(g)) {
        FASTCONV_SELECT_ISA(pool_pixels_cl_f32)(g, input, output, indices, begin, end);
        return;
      }
    }
    pool_pixels_cl(g, input, output, indices, begin, end);
  });
}

template <typename scalar_t>
void max_pool2d_backward_nchw(const Pool2dGeometry& g, const scalar_t* grad_output,
                              const int64_t* indices, scalar_t* grad_input) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t in_plane = g.in_plane(), out_plane = g.out_plane();
  const int64_t grain = grain_for(in_plane, kMinPoolElementsPerTask);
  const bool gather_2x2 =
      std::is_same_v<scalar_t, float> && int32_plane(g) && gather_2x2_applies(g);
  const bool small_plane = in_plane * static_cast<int64_t>(sizeof(scalar_t)) <= 16384;
  // A plane per task, its outputs in order: each plane's sums have a fixed order.
  parallel_for(0, g.batch * g.channels, grain, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same_v<acc_t, scalar_t>) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const scalar_t* gy = grad_output + plane * out_plane;
        const int64_t* s = indices + plane * out_plane;
        scalar_t* gx = grad_input + plane * in_plane;
        if constexpr (std::is_same_v<scalar_t, float>) {
          if (gather_2x2) {
            FASTCONV_SELECT_ISA(backward_plane_2x2_f32)(g, gy, s, gx);
            continue;
          }
        }
        if (small_plane) {  // in the L1 cache: zeroing it first costs nothing more
          scatter_all(g, gy, s, gx, 1);
        } else if (!scatter_band<scalar_t, false>(g, gy, s, gx, 1, 0, g.in_h)) {
          scatter_all(g, gy, s, gx, 1);
        }
      }
    } else {  // half types add up in float and round once
      const Workspace<acc_t> sums(in_plane);
      for (int64_t plane = begin; plane < end; ++plane) {
        const scalar_t* gy = grad_output + plane * out_plane;
        const int64_t* s = indices + plane * out_plane;
        std::fill_n(sums.data(), in_plane, acc_t(0));
        for (int64_t o = 0; o < out_plane; ++o) {
          if (inside(s[o], in_plane)) {
            sums[s[o]] += static_cast<acc_t>(gy[o]);
          }
        }
        std::transform(sums.data(), sums.data() + in_plane, grad_input + plane * in_plane,
                       [](acc_t v) { return static_cast<scalar_t>(v); });
      }
    }
  });
}

// channels_last, float and double: a task is an image, or with fewer images than threads a band
// of an image's input rows (backward_band_cl_disjoint for disjoint windows in float32, else
// scatter_band). Sums are those of one pass in output order, whatever the split: deterministic.
template <typename scalar_t>
void max_pool2d_backward_channels_last(const Pool2dGeometry& g, const scalar_t* grad_output,
                                       const int64_t* indices, scalar_t* grad_input) {
  const int64_t C = g.channels, in_plane = g.in_plane(), out_plane = g.out_plane();
  const int64_t threads = num_threads();
  const int64_t bands = g.batch >= threads ? 1 : std::min(g.in_h, ceil_div(threads, g.batch));
  const bool gather = std::is_same_v<scalar_t, float> && int32_plane(g) && windows_disjoint(g);
  // Per task: the gather's counts of matched and valid indices, or scatter_band's failure as a
  // count that cannot match.
  const Workspace<int64_t> matched(g.batch * bands, /*zeroed=*/true);
  const Workspace<int64_t> valid(g.batch * bands, /*zeroed=*/true);
  parallel_for(0, g.batch * bands, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / bands, band = task % bands;
      const int64_t row_lo = g.in_h * band / bands, row_hi = g.in_h * (band + 1) / bands;
      if constexpr (std::is_same_v<scalar_t, float>) {
        if (gather) {
          FASTCONV_SELECT_ISA(backward_band_cl_disjoint_f32)(
              g, grad_output + n * out_plane * C, indices + n * out_plane * C,
              grad_input + n * in_plane * C, row_lo, row_hi, matched[task], valid[task]);
          continue;
        }
      }
      valid[task] = !scatter_band<scalar_t, true>(g, grad_output + n * out_plane * C,
                                                  indices + n * out_plane * C,
                                                  grad_input + n * in_plane * C, C, row_lo, row_hi);
    }
  });
  for (int64_t n = 0; n < g.batch; ++n) {
    const auto first = static_cast<std::ptrdiff_t>(n * bands);
    if (std::accumulate(matched.data() + first, matched.data() + first + bands, int64_t(0)) !=
        std::accumulate(valid.data() + first, valid.data() + first + bands, int64_t(0))) {
      scatter_all(g, grad_output + n * out_plane * C, indices + n * out_plane * C,
                  grad_input + n * in_plane * C, C);
    }
  }
}

}  // namespace

void pool_planes_nchw_f32_portable(const Pool2dGeometry& g, const float* input, float* output,
                                   int64_t* indices, int64_t begin, int64_t end) {
  pool_planes_nchw(g, input, output, indices, begin, end);
}

void pool_pixels_cl_f32_portable(const Pool2dGeometry& g, const float* input, float* output,
                                 int64_t* indices, int64_t begin, int64_t end) {
  pool_pixels_cl(g, input, output, indices, begin, end);
}

void backward_plane_2x2_f32_portable(const Pool2dGeometry& g, const float* gy, const int64_t* s,
                                     float* gx) {
  scatter_all(g, gy, s, gx, 1);
}

// The scatter's answer in the gather's terms: nothing matched, and a count that cannot match when
// an index lay outside its window.
void backward_band_cl_disjoint_f32_portable(const Pool2dGeometry& g, const float* gy,
                                            const int64_t* s, float* gx, int64_t row_lo,
                                            int64_t row_hi, int64_t& matched, int64_t& valid) {
  matched = 0;
  valid = !scatter_band<float, true>(g, gy, s, gx, g.channels, row_lo, row_hi);
}

void max_pool2d_forward(const Pool2dGeometry& g, const at::Tensor& x, at::MemoryFormat layout,
                        at::Tensor& output, at::Tensor& indices) {
  if (layout == at::MemoryFormat::ChannelsLast && c10::isIntegralType(x.scalar_type(), false)) {
    // torch's channels_last CPU kernel keeps the indices in integer lanes as wide as the values
    // (int8 for int8 and uint8), and refuses planes whose indices would not fit, with these words.
    const int64_t limit = x.element_size() == 1 ? std::numeric_limits<int8_t>::max()
        : x.element_size() == 2                 ? std::numeric_limits<int16_t>::max()
        : x.element_size() == 4                 ? std::numeric_limits<int32_t>::max()
                                                : std::numeric_limits<int64_t>::max();
    TORCH_CHECK(g.in_plane() <= limit,
                "Expected input_depth * input_height * input_width <= "
                "std::numeric_limits<integer_t>::max() to be true, but got false.  (Could this "
                "error message be improved?  If so, please report an enhancement request to "
                "PyTorch.)");
  }
  AT_DISPATCH_ALL_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "max_pool2d", [&] {
    const auto forward = layout == at::MemoryFormat::ChannelsLast ? forward_channels_last<scalar_t>
                                                                  : forward_nchw<scalar_t>;
    forward(g, x.const_data_ptr<scalar_t>(), output.mutable_data_ptr<scalar_t>(),
            indices.mutable_data_ptr<int64_t>());
  });
}

void max_pool2d_backward(const Pool2dGeometry& g, const at::Tensor& grad_output,
                         const at::Tensor& indices, at::MemoryFormat layout,
                         at::Tensor& grad_input) {
  const bool channels_last = layout == at::MemoryFormat::ChannelsLast;
  const auto dtype = grad_output.scalar_type();
  if (channels_last && (dtype == at::kFloat || dtype == at::kDouble)) {
    AT_DISPATCH_FLOATING_TYPES(dtype, "max_pool2d_backward", [&] {
      max_pool2d_backward_channels_last(g, grad_output.const_data_ptr<scalar_t>(),
                                        indices.const_data_ptr<int64_t>(),
                                        grad_input.mutable_data_ptr<scalar_t>());
    });
    return;
  }
  // Half types in channels_last go through NCHW.
  const auto gy = grad_output.contiguous();
  const auto nchw_indices = indices.contiguous();
  auto grad_nchw = channels_last
      ? at::empty(grad_input.sizes(),
                  grad_input.options().memory_format(at::MemoryFormat::Contiguous))
      : grad_input;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "max_pool2d_backward", [&] {
    max_pool2d_backward_nchw(g, gy.const_data_ptr<scalar_t>(),
                             nchw_indices.const_data_ptr<int64_t>(),
                             grad_nchw.mutable_data_ptr<scalar_t>());
  });
  if (channels_last) {
    grad_input.copy_(grad_nchw);
  }
}

}  // namespace fastconv::cpu
