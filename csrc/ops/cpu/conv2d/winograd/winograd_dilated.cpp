// A dilated 3x3 stride-1 convolution on Winograd (winograd.h). Output rows r, r + d, r + 2d, ...
// of a dilation-d convolution read only the zero-padded input's rows of residue r modulo d, and
// likewise columns: split into d_h x d_w phase planes, the padded input gives d_h x d_w dense 3x3
// convolutions of the same weights, which run as one batch of N x d_h x d_w images. (The atrous
// trick in reverse.) The phase planes and their outputs cost two copies; the sums are Winograd's.
#include <algorithm>

#include "ops/cpu/common.h"
#include "ops/cpu/conv2d/phase_planes.h"
#include "ops/cpu/conv2d/winograd/winograd.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"

namespace fastconv::cpu {
namespace {

// Phases per image at most: a larger dilation leaves each phase plane a few rows (torch accepts
// any dilation the padding makes valid).
constexpr int64_t kMaxPhases = 64;

int64_t phase_elements(const Conv2dGeometry& phases, int64_t channels, int64_t h, int64_t w) {
  return phases.batch * channels * h * w;
}

}  // namespace

bool winograd_dilated_supported(const Conv2dGeometry& g) {
  if (g.kernel_h != 3 || g.kernel_w != 3 || g.stride_h != 1 || g.stride_w != 1 || g.groups != 1 ||
      (g.dilation_h == 1 && g.dilation_w == 1) || g.dilation_h * g.dilation_w > kMaxPhases) {
    return false;
  }
  // The phase planes hold the padded input: no more than twice the input and output (a padding
  // far beyond the image, which torch accepts, goes to the GEMM paths).
  const auto d = [](int64_t v) { return static_cast<double>(v); };
  const double padded = d(g.batch) * d(g.in_channels) *
      (d(g.in_h) + 2 * d(g.pad_h) + d(g.dilation_h)) *
      (d(g.in_w) + 2 * d(g.pad_w) + d(g.dilation_w));
  const double tensors =
      d(g.batch) * (d(g.in_channels) * d(g.in_plane()) + d(g.out_channels) * d(g.out_plane()));
  return padded <= 2.0 * tensors + 65536.0;
}

Conv2dGeometry dilated_phases_geometry(const Conv2dGeometry& g) {
  Conv2dGeometry t = g;
  t.batch = g.batch * g.dilation_h * g.dilation_w;
  t.in_h = ceil_div(g.in_h + 2 * g.pad_h, g.dilation_h);
  t.in_w = ceil_div(g.in_w + 2 * g.pad_w, g.dilation_w);
  t.out_h = t.in_h - 2, t.out_w = t.in_w - 2;
  t.pad_h = t.pad_w = 0;
  t.dilation_h = t.dilation_w = 1;
  return t;
}

void winograd_dilated_forward(const Conv2dGeometry& g, const float* x, const float* w,
                              const float* bias, float* y) {
  const Conv2dGeometry t = dilated_phases_geometry(g);
  const int64_t dh = g.dilation_h, dw = g.dilation_w, C = g.in_channels, K = g.out_channels;
  Workspace<float> planes(phase_elements(t, C, t.in_h, t.in_w));
  Workspace<float> outputs(phase_elements(t, K, t.out_h, t.out_w));
  const int64_t plane = t.in_h * t.in_w, out_plane = t.out_h * t.out_w;
  // Phase (r, s) of image n is image (n * dh + r) * dw + s of the dense batch.
  parallel_for(
      0, t.batch * C, grain_for(plane, kMinFloatsPerTask), [&](int64_t begin, int64_t end) {
        for (int64_t index = begin; index < end; ++index) {
          const int64_t image = index / C, c = index % C;
          const int64_t n = image / (dh * dw), r = image / dw % dh, s = image % dw;
          fill_phase_plane(x + (n * C + c) * g.in_plane(), g.in_h, g.in_w, r - g.pad_h, s - g.pad_w,
                           dh, dw, t.in_h, t.in_w, t.in_w, planes.data() + index * plane);
        }
      });
  winograd_forward(t, planes.data(), w, bias, outputs.data());
  parallel_for(0, g.batch * K, grain_for(g.out_plane(), kMinFloatsPerTask),
               [&](int64_t begin, int64_t end) {
                 for (int64_t index = begin; index < end; ++index) {
                   const int64_t n = index / K, k = index % K;
                   float* out = y + index * g.out_plane();
                   for (int64_t oh = 0; oh < g.out_h; ++oh) {
                     const int64_t r = oh % dh, row = oh / dh;
                     for (int64_t ow = 0; ow < g.out_w; ++ow) {
                       const int64_t image = (n * dh + r) * dw + ow % dw;
                       out[oh * g.out_w + ow] =
                           outputs[(image * K + k) * out_plane + row * t.out_w + ow / dw];
                     }
                   }
                 }
               });
}

int64_t winograd_dilated_forward_workspace_bytes(const Conv2dGeometry& g, int64_t threads) {
  const Conv2dGeometry t = dilated_phases_geometry(g);
  return workspace_bytes(phase_elements(t, g.in_channels, t.in_h, t.in_w), sizeof(float)) +
      workspace_bytes(phase_elements(t, g.out_channels, t.out_h, t.out_w), sizeof(float)) +
      winograd_forward_workspace_bytes(t, threads);
}

}  // namespace fastconv::cpu
