// The input gradient of a depthwise convolution that is not itself a forward convolution (strided,
// or padded past its kernel: depthwise.h). Input pixel (ih, iw) with ih = i * stride_h + phase_h
// and iw = j * stride_w + phase_w takes tap (kh, kw) from output (i + shift_h, j + shift_w) where
// that phase's residue matches the tap's, so each phase of the input is a stride-1 stencil of
// zero-padded grad_output with the taps of its phase: whole-plane stencils as the forward runs,
// whose results are interleaved into the input rows. A per-output scatter into every stride-th
// input runs at a third of the forward's rate on MobileNetV2's strided layers.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu/common.h"
#include "ops/cpu/conv2d/depthwise/depthwise.h"
#include "ops/cpu/conv2d/depthwise/stencils.h"
#include "ops/cpu/isa.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"

namespace fastconv::cpu {
namespace {

// One axis: for each phase r < min(stride, size) of the input, its length and, per kernel
// offset t, whether t reaches it and from which output shift; and the zero padding of
// grad_output (lead before it, extent in all) that keeps every read in bounds.
struct GatherAxis {
  int64_t phases, lead, extent;
  std::vector<int64_t> length;  // per phase
  std::vector<int64_t> shift;   // per (phase, kernel offset)
  std::vector<char> reaches;    // per (phase, kernel offset)
  int64_t kernel;

  GatherAxis(int64_t size, int64_t out, int64_t kernel_size, int64_t stride, int64_t dilation,
             int64_t pad)
      : phases(std::min(stride, size)), kernel(kernel_size) {
    length.resize(phases);
    shift.assign(phases * kernel, 0);
    reaches.assign(phases * kernel, 0);
    int64_t low = 0, high = 0;
    for (int64_t r = 0; r < phases; ++r) {
      length[r] = ceil_div(size - r, stride);
      for (int64_t t = 0; t < kernel; ++t) {
        const int64_t from = r + pad - t * dilation;  // shift * stride
        if (from % stride != 0) continue;
        const int64_t s = from / stride;
        shift[r * kernel + t] = s;
        reaches[r * kernel + t] = 1;
        low = std::min(low, s);
        high = std::max(high, length[r] - 1 + s);
      }
    }
    lead = -low;
    extent = lead + std::max(out, high + 1);
  }
  // Kernel offsets that reach phase r.
  int64_t reaching(int64_t r) const {
    return std::count(reaches.begin() + r * kernel, reaches.begin() + (r + 1) * kernel, 1);
  }
};

struct GatherLayout {
  GatherAxis rows, cols;
  int64_t plane;             // floats of one padded grad_output plane
  int64_t tail;              // read past the last plane by the stencils' dropped columns
  bool stencils_fit = true;  // no phase has more than kMaxDepthwiseTaps taps

  explicit GatherLayout(const Conv2dGeometry& g)
      : rows(g.in_h, g.out_h, g.kernel_h, g.stride_h, g.dilation_h, g.pad_h),
        cols(g.in_w, g.out_w, g.kernel_w, g.stride_w, g.dilation_w, g.pad_w),
        plane(rows.extent * cols.extent),
        tail(cols.extent + 16) {
    for (int64_t ph = 0; ph < rows.phases; ++ph) {
      for (int64_t pw = 0; pw < cols.phases; ++pw) {
        stencils_fit &=
            g.out_channels_per_group() * rows.reaching(ph) * cols.reaching(pw) <= kMaxDepthwiseTaps;
      }
    }
  }

  // The taps of phase (ph, pw) over the group's output channels k0, k0 + 1, ...
  void taps_of(const Conv2dGeometry& g, const float* w, int64_t k0, int64_t ph, int64_t pw,
               Taps& taps) const {
    taps.count = 0;
    const int64_t kernel_taps = g.kernel_h * g.kernel_w;
    for (int64_t k = 0; k < g.out_channels_per_group(); ++k) {
      for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
        if (!rows.reaches[ph * g.kernel_h + kh]) continue;
        for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
          if (!cols.reaches[pw * g.kernel_w + kw]) continue;
          taps.weights[taps.count] = w[(k0 + k) * kernel_taps + kh * g.kernel_w + kw];
          taps.offsets[taps.count] = k * plane +
              (rows.shift[ph * g.kernel_h + kh] + rows.lead) * cols.extent +
              cols.shift[pw * g.kernel_w + kw] + cols.lead;
          ++taps.count;
        }
      }
    }
  }
};

// The input gradient of planes [begin, end), exactly as torch's col2im adds it: only products of
// real outputs, so a non-finite weight makes no 0 x inf = NaN from padding. Each element gathers
// its taps (the output channels of its group, then kernel rows, then kernel columns, in order).
// Input column iw = j * stride_w + phase takes tap column kw from output column j + shift, for the
// one phase whose (phase + pad_w - kw * dilation_w) is a multiple of the stride: each row is summed
// per phase, and the phases interleaved into the row at the end.
FASTCONV_ALWAYS_INLINE void gather_planes(const Conv2dGeometry& g, const float* gy, const float* w,
                                          float* gx, int64_t begin, int64_t end) {
  const int64_t multiplier = g.out_channels_per_group(), taps = g.kernel_h * g.kernel_w;
  const int64_t sw = g.stride_w, phase_width = ceil_div(g.in_w, sw);
  const int64_t phase_floats = std::min(sw, g.in_w) * phase_width;
  Workspace<float> phases(phase_floats);
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t n = plane / g.in_channels, c = plane % g.in_channels;
    for (int64_t ih = 0; ih < g.in_h; ++ih) {
      std::fill_n(phases.data(), phase_floats, 0.f);
      for (int64_t k = c * multiplier; k < (c + 1) * multiplier; ++k) {
        const float* grad_out = gy + (n * g.out_channels + k) * g.out_plane();
        for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
          const int64_t from = ih + g.pad_h - kh * g.dilation_h;  // oh * stride_h
          if (from < 0 || from % g.stride_h != 0 || from / g.stride_h >= g.out_h) continue;
          const float* grad_row = grad_out + from / g.stride_h * g.out_w;
          for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
            // phase + pad_w - kw * dilation_w = shift * stride_w, 0 <= phase < stride_w.
            const int64_t lag = kw * g.dilation_w - g.pad_w;
            const int64_t phase = (lag % sw + sw) % sw;
            if (phase >= g.in_w) continue;
            const int64_t shift = (phase - lag) / sw;
            const int64_t length = ceil_div(g.in_w - phase, sw);
            const int64_t first = std::clamp<int64_t>(-shift, 0, length);
            const int64_t last = std::clamp<int64_t>(g.out_w - shift, first, length);
            const float weight = w[k * taps + kh * g.kernel_w + kw];
            float* sums = phases.data() + phase * phase_width;
            const float* source = grad_row + shift;
            for (int64_t j = first; j < last; ++j) sums[j] += weight * source[j];
          }
        }
      }
      float* row = gx + plane * g.in_plane() + ih * g.in_w;
      if (sw == 1) {
        std::copy_n(phases.data(), g.in_w, row);
      } else if (sw == 2) {  // a constant stride, which the compiler vectorizes
        const float *even = phases.data(), *odd = even + phase_width;
        for (int64_t j = 0; j < g.in_w / 2; ++j) row[2 * j] = even[j], row[2 * j + 1] = odd[j];
        if (g.in_w % 2 != 0) row[g.in_w - 1] = even[g.in_w / 2];
      } else {
        for (int64_t iw = 0; iw < g.in_w; ++iw) row[iw] = phases[iw % sw * phase_width + iw / sw];
      }
    }
  }
}

// The phase stencils of input planes [begin, end); a plane whose group has a non-finite weight, or
// more taps per phase than a stencil takes, is gathered exactly instead.
FASTCONV_ALWAYS_INLINE void phase_planes(const Conv2dGeometry& g, const float* gy, const float* w,
                                         float* gx, int64_t begin, int64_t end) {
  const GatherLayout layout(g);
  const int64_t multiplier = g.out_channels_per_group();
  const int64_t width = layout.cols.extent;
  Workspace<float> padded(multiplier * layout.plane + layout.tail, /*zeroed=*/true);
  const int64_t phase_rows = layout.rows.length[0];  // the longest
  Workspace<float> results(layout.cols.phases * phase_rows * width);
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t n = plane / g.in_channels, c = plane % g.in_channels, k0 = c * multiplier;
    const int64_t group_weights = multiplier * g.kernel_h * g.kernel_w;
    bool finite = true;
    for (int64_t i = 0; i < group_weights; ++i)
      finite &= std::isfinite(w[k0 * g.kernel_h * g.kernel_w + i]);
    if (!finite || !layout.stencils_fit) {
      gather_planes(g, gy, w, gx, plane, plane + 1);
      continue;
    }
    for (int64_t k = 0; k < multiplier; ++k) {
      const float* source = gy + (n * g.out_channels + k0 + k) * g.out_plane();
      float* target =
          padded.data() + k * layout.plane + layout.rows.lead * width + layout.cols.lead;
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        std::copy_n(source + oh * g.out_w, g.out_w, target + oh * width);
      }
    }
    float* grad_in = gx + plane * g.in_plane();
    Taps taps;
    for (int64_t ph = 0; ph < layout.rows.phases; ++ph) {
      const int64_t rows = layout.rows.length[ph];
      for (int64_t pw = 0; pw < layout.cols.phases; ++pw) {
        layout.taps_of(g, w, k0, ph, pw, taps);
        float* out = results.data() + pw * phase_rows * width;
        if (taps.count == 0) {
          std::fill_n(out, rows * width, 0.f);  // no tap reaches these inputs
        } else {
          stencil<1>(taps, 0.f, 1, padded.data(), out, rows * width);
        }
      }
      // The column phases interleaved into this row phase's input rows.
      const int64_t sw = g.stride_w, phase_stride = phase_rows * width;
      for (int64_t i = 0; i < rows; ++i) {
        float* row = grad_in + (i * g.stride_h + ph) * g.in_w;
        const float* first = results.data() + i * width;
        if (layout.cols.phases == 1) {
          std::copy_n(first, g.in_w, row);
        } else if (sw == 2) {  // a constant stride, which the compiler vectorizes
          const float* second = first + phase_stride;
          for (int64_t j = 0; j < g.in_w / 2; ++j)
            row[2 * j] = first[j], row[2 * j + 1] = second[j];
          if (g.in_w % 2 != 0) row[g.in_w - 1] = first[g.in_w / 2];
        } else {
          for (int64_t iw = 0; iw < g.in_w; ++iw) row[iw] = first[iw % sw * phase_stride + iw / sw];
        }
      }
    }
  }
}

#if FASTCONV_X86
FASTCONV_AVX2 void phase_planes_avx2(const Conv2dGeometry& g, const float* gy, const float* w,
                                     float* gx, int64_t begin, int64_t end) {
  phase_planes(g, gy, w, gx, begin, end);
}
#endif

void phase_planes_portable(const Conv2dGeometry& g, const float* gy, const float* w, float* gx,
                           int64_t begin, int64_t end) {
  phase_planes(g, gy, w, gx, begin, end);
}

}  // namespace

void depthwise_input_backward(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  const auto planes = FASTCONV_SELECT_ISA(phase_planes);
  parallel_for(0, g.batch * g.in_channels, 1,
               [&](int64_t begin, int64_t end) { planes(g, gy, w, gx, begin, end); });
}

}  // namespace fastconv::cpu
