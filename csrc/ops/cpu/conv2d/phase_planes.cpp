// Phase planes (phase_planes.h).
#include "ops/cpu/conv2d/phase_planes.h"

#include <algorithm>
#include <cstring>
#include "ops/cpu/common.h"
#include "ops/cpu/parallel.h"

namespace fastconv::cpu {
namespace {

void fill_channel(const Conv2dGeometry& g, const DirectPlanes& l, const float* in, float* planes) {
  for (int64_t ph = 0; ph < l.rows.count; ++ph) {
    for (int64_t pw = 0; pw < l.cols.count; ++pw) {
      fill_phase_plane(in, g.in_h, g.in_w, l.rows.residue[ph] - g.pad_h,
                       l.cols.residue[pw] - g.pad_w, g.stride_h, g.stride_w, l.plane_rows, l.grid_w,
                       l.grid_w, planes + (ph * l.cols.count + pw) * l.plane_rows * l.grid_w);
    }
  }
}

}  // namespace

void fill_phase_plane(const float* in, int64_t in_h, int64_t in_w, int64_t row0, int64_t col0,
                      int64_t stride_h, int64_t stride_w, int64_t rows, int64_t cols, int64_t ld,
                      float* out) {
  // Plane columns [begin, end) read inside the input.
  const auto [begin, end] = taps_inside(col0, stride_w, in_w, cols);
  for (int64_t i = 0; i < rows; ++i) {
    float* row = out + i * ld;
    const int64_t ih = i * stride_h + row0;
    if (ih < 0 || ih >= in_h) {
      std::fill_n(row, cols, 0.f);
      continue;
    }
    const float* source = in + ih * in_w + (col0 + begin * stride_w);
    std::fill_n(row, begin, 0.f);
    if (stride_w == 1) {
      std::memcpy(row + begin, source, (end - begin) * sizeof(float));
    } else if (stride_w == 2) {  // a constant stride, which the compiler vectorizes
      for (int64_t j = 0; j < end - begin; ++j) row[begin + j] = source[2 * j];
    } else {
      for (int64_t j = 0; j < end - begin; ++j) row[begin + j] = source[j * stride_w];
    }
    std::fill_n(row + end, cols - end, 0.f);
  }
}

AxisPhases::AxisPhases(int64_t kernel, int64_t dilation, int64_t stride) {
  std::fill_n(index_of, kMaxDirectStride, -1);
  for (int64_t k = 0; k < kernel; ++k) {
    const int64_t r = k * dilation % stride;
    if (index_of[r] < 0) index_of[r] = count, residue[count++] = r;
    halo = std::max(halo, k * dilation / stride);
  }
}

DirectPlanes::DirectPlanes(const Conv2dGeometry& g)
    : rows(g.kernel_h, g.dilation_h, g.stride_h), cols(g.kernel_w, g.dilation_w, g.stride_w) {
  grid_w = g.out_w + cols.halo;
  plane_rows = g.out_h + rows.halo;
  channel_stride = rows.count * cols.count * plane_rows * grid_w;
  elements = g.batch * g.in_channels * channel_stride + kTailPixels + cols.halo;
  for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
    for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
      const int64_t dh = kh * g.dilation_h, dw = kw * g.dilation_w;
      const int64_t phase =
          rows.index_of[dh % g.stride_h] * cols.count + cols.index_of[dw % g.stride_w];
      tap_offsets.push_back((phase * plane_rows + dh / g.stride_h) * grid_w + dw / g.stride_w);
    }
  }
}

void DirectPlanes::fill(const Conv2dGeometry& g, const float* x, float* planes) const {
  const int64_t tail = kTailPixels + cols.halo;
  std::fill_n(planes + elements - tail, tail, 0.f);
  const int64_t grain = grain_for(channel_stride, kMinFloatsPerTask);
  parallel_for(0, g.batch * g.in_channels, grain, [&](int64_t begin, int64_t end) {
    for (int64_t channel = begin; channel < end; ++channel) {
      fill_channel(g, *this, x + channel * g.in_plane(), planes + channel * channel_stride);
    }
  });
}

}  // namespace fastconv::cpu
