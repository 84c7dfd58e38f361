// choose_path() and the workspace figure of the CPU conv2d (conv2d_path.h), and the run counts
// the tests read.
#include "conv2d_path.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>

#include "conv2d_im2col_blas.h"
#include "conv2d_packed.h"
#include "depthwise_conv2d.h"
#include "winograd_conv2d.h"

namespace fastconv::cpu {
namespace {

// Where the packed GEMM beats im2col + ATen's BLAS: not on pointwise layers (a plain GEMM on the
// image, which MKL runs faster than our micro-kernel), nor on deep layers with few output pixels.
// The packed forward streams the whole weight matrix once per block of kPixelBlock pixels
// (conv2d_packed.cpp), in place, kMR rows at a time; past kDeepColumnRows weight columns that
// pays only when enough pixels share it. Measured with bench/ and per-pass timings on the
// build machine: at 256-512 channels, 3x3, the packed path won at 392 and more pixels (batch 8
// at 7x7 and 14x14) and lost at 49-196 (batch 1).
constexpr int64_t kDeepColumnRows = 2048;
constexpr int64_t kDeepMinPixels = 384;

bool packed_gemm_pays_off(const Conv2dGeometry& g) {
  return !g.is_pointwise() &&
      (g.column_rows() < kDeepColumnRows || g.batch * g.out_plane() >= kDeepMinPixels);
}

// A stride-1 convolution's input gradient is itself a convolution (input_backward_geometry),
// which then runs on a forward kernel, with no col2im.
bool input_backward_is_a_convolution(const Conv2dGeometry& g) {
  return g.stride_h == 1 && g.stride_w == 1 && g.pad_h <= g.dilation_h * (g.kernel_h - 1) &&
      g.pad_w <= g.dilation_w * (g.kernel_w - 1);
}

// Winograd's transforms cost a few additions per input and output value, which the 16 / 36
// multiplications repay only with enough channels on both sides. Its transformed filters
// (16 x K x C floats) are read once per block of tiles: up to 1 MiB (K x C <= 128 x 128) they
// stay in L2; up to 4 MiB (256 x 256) they pay once enough tiles share them; past that the direct
// GEMM, whose blocks reuse the weights more, won. Measured on the build machine (2 threads,
// forward and input gradient, against the direct path): 256 x 256 channels at 784-1568 tiles
// (56x56 at batch 1, 14x14 at batch 16) 1.1-1.4x the direct path, at 392 tiles (14x14, batch 8)
// even; 512 x 512 at 196-1568 tiles 0.7-1.0x.
constexpr int64_t kWinogradMinChannels = 16;
constexpr int64_t kWinogradCachedFilterProducts = 128 * 128;  // K x C
constexpr int64_t kWinogradMaxFilterProducts = 256 * 256;
constexpr int64_t kWinogradMinSharedTiles = 512;

std::atomic<bool> winograd_on{true};

// The weight gradient's Winograd (winograd_weight_backward.cpp) keeps a block of the 16 x C x K
// transformed gradient in cache while the tiles stream past, and transforms its tiles again per
// block of channels: up to 256 x 256 channels it beat the packed GEMM at every tile count
// measured (64-256 channels, batch 1 and 8: 1.2-1.6x), at 512 x 512 it lost (0.6-0.85x).
bool winograd_weight_pays_off(const Conv2dGeometry& g) {
  return winograd_on.load() && winograd_supported(g) && g.in_channels >= kWinogradMinChannels &&
      g.out_channels >= kWinogradMinChannels &&
      g.in_channels * g.out_channels <= kWinogradMaxFilterProducts;
}

bool winograd_pays_off(const Conv2dGeometry& g) {
  if (!winograd_on.load() || !winograd_supported(g) || g.in_channels < kWinogradMinChannels ||
      g.out_channels < kWinogradMinChannels) {
    return false;
  }
  const int64_t filter_products = g.in_channels * g.out_channels;
  const int64_t tiles = g.batch * ((g.out_h + 1) / 2) * ((g.out_w + 1) / 2);
  return filter_products <= kWinogradCachedFilterProducts ||
      (filter_products <= kWinogradMaxFilterProducts && tiles >= kWinogradMinSharedTiles);
}

std::atomic<int64_t> run_counts[3][kConv2dPaths];

} // namespace

const char* name_of(Conv2dPass pass) {
  switch (pass) {
    case Conv2dPass::forward: return "forward";
    case Conv2dPass::input_backward: return "input_backward";
    case Conv2dPass::weight_backward: return "weight_backward";
  }
  return "?";
}

const char* name_of(Conv2dPath path) {
  switch (path) {
    case Conv2dPath::depthwise: return "depthwise";
    case Conv2dPath::packed_gemm: return "packed_gemm";
    case Conv2dPath::depthwise_flipped: return "depthwise_flipped";
    case Conv2dPath::packed_gemm_flipped: return "packed_gemm_flipped";
    case Conv2dPath::depthwise_scatter: return "depthwise_scatter";
    case Conv2dPath::im2col_blas: return "im2col_blas";
    case Conv2dPath::winograd: return "winograd";
    case Conv2dPath::winograd_flipped: return "winograd_flipped";
    case Conv2dPath::grouped_direct: return "grouped_direct";
    case Conv2dPath::grouped_direct_flipped: return "grouped_direct_flipped";
  }
  return "?";
}

Conv2dGeometry input_backward_geometry(const Conv2dGeometry& g) {
  Conv2dGeometry t = g;
  t.in_channels = g.out_channels, t.in_h = g.out_h, t.in_w = g.out_w;
  t.out_channels = g.in_channels, t.out_h = g.in_h, t.out_w = g.in_w;
  t.pad_h = g.dilation_h * (g.kernel_h - 1) - g.pad_h;
  t.pad_w = g.dilation_w * (g.kernel_w - 1) - g.pad_w;
  return t;
}

// float32 has kernels of its own; other dtypes take im2col + ATen's BLAS.
Conv2dPath choose_path(Conv2dPass pass, const Conv2dGeometry& g, c10::ScalarType dtype) {
  if (dtype != at::kFloat) {
    return Conv2dPath::im2col_blas;
  }
  switch (pass) {
    case Conv2dPass::forward:
      return depthwise_supported(g)      ? Conv2dPath::depthwise
          : grouped_direct_supported(g) ? Conv2dPath::grouped_direct
          : winograd_pays_off(g)        ? Conv2dPath::winograd
          : packed_gemm_pays_off(g) ? Conv2dPath::packed_gemm
                                    : Conv2dPath::im2col_blas;
    case Conv2dPass::input_backward: {
      if (input_backward_is_a_convolution(g)) {
        const auto t = input_backward_geometry(g);
        if (depthwise_supported(t)) return Conv2dPath::depthwise_flipped;
        if (grouped_direct_supported(t)) return Conv2dPath::grouped_direct_flipped;
        if (winograd_pays_off(t)) return Conv2dPath::winograd_flipped;
        if (packed_gemm_pays_off(t)) return Conv2dPath::packed_gemm_flipped;
      }
      return depthwise_supported(g) ? Conv2dPath::depthwise_scatter : Conv2dPath::im2col_blas;
    }
    case Conv2dPass::weight_backward:
      // The packed weight gradient (and Winograd's) sums in a fixed order whatever the thread
      // count, which MKL's GEMM does not: it serves pointwise and deep layers too.
      return depthwise_supported(g)      ? Conv2dPath::depthwise
          : winograd_weight_pays_off(g) ? Conv2dPath::winograd
                                        : Conv2dPath::packed_gemm;
  }
  return Conv2dPath::im2col_blas;
}

int64_t conv2d_forward_workspace_bytes(const Conv2dGeometry& g, c10::ScalarType dtype) {
  const int64_t threads = at::get_num_threads();
  switch (choose_path(Conv2dPass::forward, g, dtype)) {
    case Conv2dPath::depthwise:
    case Conv2dPath::grouped_direct:
      return std::min(threads, g.batch * g.out_channels) * depthwise_forward_workspace_bytes(g);
    case Conv2dPath::packed_gemm:
      return packed_forward_workspace_bytes(g, threads);
    case Conv2dPath::winograd:
      return winograd_forward_workspace_bytes(g, threads);
    default:
      return im2col_blas_forward_workspace_bytes(g, c10::elementSize(dtype), threads);
  }
}

bool winograd_enabled() {
  return winograd_on.load();
}

void set_winograd_enabled(bool enabled) {
  winograd_on.store(enabled);
}

void record_run(Conv2dPass pass, Conv2dPath path) {
  run_counts[static_cast<int>(pass)][static_cast<int>(path)].fetch_add(1);
}

int64_t runs_of(Conv2dPass pass, Conv2dPath path) {
  return run_counts[static_cast<int>(pass)][static_cast<int>(path)].load();
}

} // namespace fastconv::cpu
