// Phase planes (phase_planes.h).
#include "ops/cpu/conv2d/phase_planes.h"

#include <algorithm>
#include <cstring>
#include "ops/cpu/common.h"
#include "ops/cpu/parallel.h"

namespace fastconv::cpu {
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

void DirectPlanes::fill_channel(const Conv2dGeometry& g, const float* in, float* planes) const {
  for (int64_t ph = 0; ph < rows.count; ++ph) {
    for (int64_t pw = 0; pw < cols.count; ++pw) {
      fill_phase_plane(in, g.in_h, g.in_w, rows.residue[ph] - g.pad_h, cols.residue[pw] - g.pad_w,
                       g.stride_h, g.stride_w, plane_rows, grid_w, grid_w,
                       planes + (ph * cols.count + pw) * plane_rows * grid_w);
    }
  }
}

void DirectPlanes::fill(const Conv2dGeometry& g, const float* x, float* planes) const {
  std::fill_n(planes + elements - tail(), tail(), 0.f);
  const int64_t grain = grain_for(channel_stride, kMinFloatsPerTask);
  parallel_for(0, g.batch * g.in_channels, grain, [&](int64_t begin, int64_t end) {
    for (int64_t channel = begin; channel < end; ++channel) {
      fill_channel(g, x + channel * g.in_plane(), planes + channel * channel_stride);
    }
  });
}

}  // namespace fastconv::cpu
