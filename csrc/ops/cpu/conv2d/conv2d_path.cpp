// choose_path() and the workspace figure of the CPU conv2d (conv2d_path.h), and the run counts
// the tests read.
#include "ops/cpu/conv2d/conv2d_path.h"

#include <algorithm>
#include <atomic>

#include "ops/cpu/conv2d/depthwise/depthwise.h"
#include "ops/cpu/conv2d/direct/direct.h"
#include "ops/cpu/conv2d/im2col_blas/im2col_blas.h"
#include "ops/cpu/conv2d/packed/packed.h"
#include "ops/cpu/conv2d/winograd/winograd.h"
#include "ops/cpu/isa.h"
#include "ops/cpu/parallel.h"

namespace fastconv::cpu {
namespace {

// Where the packed GEMM beats im2col + ATen's BLAS: not on pointwise layers (a plain GEMM on the
// image, which MKL runs faster than our micro-kernel), nor on deep layers with few output pixels.
// The packed forward streams the whole weight matrix once per block of kPixelBlock pixels
// (packed/), in place, kMR rows at a time; past kDeepColumnRows weight columns that
// pays only when enough pixels share it (docs/design.md gives the measurements behind each rule).
constexpr int64_t kDeepColumnRows = 2048;
constexpr int64_t kDeepMinPixels = 384;

bool packed_gemm_pays_off(const Conv2dGeometry& g) {
  return !g.is_pointwise() &&
      (g.column_rows() < kDeepColumnRows || g.batch * g.out_plane() >= kDeepMinPixels);
}

// The deep-layer rule above was measured against MKL's AVX-512 GEMM. On AVX2 (Zen 1) the packed
// forward of a deep strided layer was ahead at few pixels too (ResNet-50's 256 x 256 3x3 stride 2
// at batch 1: 3.6-4.1 against 4.2-4.7 ms), where on stride-1 layers (512-1024 channels at 7x7)
// im2col + MKL kept up or led.
bool packed_forward_pays_off(const Conv2dGeometry& g) {
  return packed_gemm_pays_off(g) || (g.is_strided() && !g.is_pointwise() && !cpu_uses_avx512());
}

// A stride-1 convolution's input gradient is itself a convolution (input_backward_geometry),
// which then runs on a forward kernel, with no col2im.
bool input_backward_is_a_convolution(const Conv2dGeometry& g) {
  return g.stride_h == 1 && g.stride_w == 1 && g.pad_h <= g.dilation_h * (g.kernel_h - 1) &&
      g.pad_w <= g.dilation_w * (g.kernel_w - 1);
}

// Winograd's transforms cost a few additions per input and output value, which the 16 / 36
// multiplications repay only with enough channels on both sides. Its GEMMs run point by point
// over a task's tiles, each point's transformed filters (K x C floats) streaming past the tiles
// once. From 48 x 48 up to 128 x 128 channels that pays at any size. Past that, and with fewer
// channels on one side (down to 16: DenseNet's 128 -> 32 layers, the input gradient of 32 -> 128),
// the transformed filters (16 x K x C floats, made once per call) and the tiles' transforms must
// be repaid by enough output pixels (from 192: ResNet-50's 256 x 256 at 14x14 and VGG's 512 x 512
// at batch 1, AlexNet's 384 x 384 at batch 4: 5-30% faster than the GEMMs on AVX2; with 16-47
// channels on one side, from 768: below that the direct kernel is up to 1.8x faster, above it
// Winograd by 1.2-1.8x), on planes that the 2x2 tiles fill well (not 7x7, whose 16 tiles cover 64
// outputs for 49).
constexpr int64_t kWinogradMinChannels = 16;
constexpr int64_t kWinogradAnySizeMinChannels = 48;
constexpr int64_t kWinogradCachedFilterProducts = 128 * 128;  // K x C
constexpr int64_t kWinogradMaxFilterProducts = 512 * 512;
constexpr int64_t kWinogradWeightMaxFilterProducts = 256 * 256;
constexpr int64_t kWinogradMinOutputPixels = 192;
constexpr int64_t kWinogradNarrowMinOutputPixels = 768;
constexpr double kWinogradMinTileFill = 0.85;  // outputs / (4 x tiles)

std::atomic<bool> winograd_on{true};

// The weight gradient's Winograd (winograd_weight_backward.cpp) keeps a block of the 16 x C x K
// transformed gradient in cache while the tiles stream past, and transforms its tiles again per
// block of channels: that beats the packed GEMM up to 256 x 256 channels, not at 512 x 512.
bool winograd_weight_pays_off(const Conv2dGeometry& g) {
  return winograd_on.load() && winograd_supported(g) && g.in_channels >= kWinogradMinChannels &&
      g.out_channels >= kWinogradMinChannels &&
      g.in_channels * g.out_channels <= kWinogradWeightMaxFilterProducts;
}

bool winograd_pays_off(const Conv2dGeometry& g) {
  if (winograd_dilated_supported(g)) return winograd_pays_off(dilated_phases_geometry(g));
  if (!winograd_on.load() || !winograd_supported(g) || g.in_channels < kWinogradMinChannels ||
      g.out_channels < kWinogradMinChannels) {
    return false;
  }
  const int64_t filter_products = g.in_channels * g.out_channels;
  const bool narrow = std::min(g.in_channels, g.out_channels) < kWinogradAnySizeMinChannels;
  if (filter_products <= kWinogradCachedFilterProducts && !narrow) return true;
  const int64_t tiles_per_image = ((g.out_h + 1) / 2) * ((g.out_w + 1) / 2);
  return filter_products <= kWinogradMaxFilterProducts &&
      g.batch * g.out_plane() >=
      (narrow ? kWinogradNarrowMinOutputPixels : kWinogradMinOutputPixels) &&
      g.out_plane() >= kWinogradMinTileFill * 4 * tiles_per_image;
}

// Where the direct kernel beats packing im2col columns for a GEMM: on layers of few weight columns
// (input channels per group x taps), whose columns cost as much to pack as they take to multiply:
// grouped 3x3 layers, 3x3 layers of up to 128 channels, the 7x7 and 11x11 stems, LeNet's 5x5.
// Past about 1,200 columns the packed GEMM, which shares each weight stream across more pixels,
// is faster, and so it is on 1x1 strided layers, which read one tap.
constexpr int64_t kDirectMaxColumnRows = 1152;  // 128 channels x 3 x 3

std::atomic<bool> direct_on{true};

bool direct_pays_off(const Conv2dGeometry& g) {
  return direct_on.load() && direct_supported(g) && g.kernel_h * g.kernel_w > 1 &&
      g.column_rows() <= kDirectMaxColumnRows;
}

// The AVX2 direct forward runs strided layers on phase planes at 65-75% of the packed GEMM's rate
// once they have 48 or more input channels per group (stride 2, 3x3, batch 1-8, Zen 1): those take
// the packed GEMM there. The AVX-512 kernel was measured ahead of it.
constexpr int64_t kDirectStridedMaxChannelsAvx2 = 48;

bool direct_forward_pays_off(const Conv2dGeometry& g) {
  return direct_pays_off(g) &&
      !(g.is_strided() && !cpu_uses_avx512() &&
        g.in_channels_per_group() >= kDirectStridedMaxChannelsAvx2);
}

// The direct weight gradient (2 output channels x 9 taps of one input channel per tile, each sum
// over all images and pixels) beats the packed GEMM's where a group has few output channels, which
// leave the GEMM's 16-wide panels mostly empty (ResNeXt-50's grouped 3x3, LeNet); with 64 or more
// output channels (the stem, a strided 3x3) the packed GEMM is faster. So it is with 16 or more
// on planes of fewer than 64 outputs (ResNeXt's 7x7 stage: 9.4 against 15.2 ms on AVX2), whose
// tiles hold a few pixels each and whose vectors the grid's extra columns pad.
constexpr int64_t kDirectWeightMaxOutputs = 32;
constexpr int64_t kDirectWeightSmallPlane = 64;
constexpr int64_t kDirectWeightSmallPlaneMaxOutputs = 15;

bool direct_weight_pays_off(const Conv2dGeometry& g) {
  const int64_t outputs = g.out_channels_per_group();
  return direct_pays_off(g) && outputs <= kDirectWeightMaxOutputs &&
      (g.out_plane() >= kDirectWeightSmallPlane || outputs <= kDirectWeightSmallPlaneMaxOutputs);
}

// The pointwise weight gradient as dot products of planes (pointwise/) against the packed GEMM,
// AVX2 on Zen 1, batch 8: 4.7x on MobileNetV2's 16 -> 96 at 112 x 112 (packing grad_output cost
// more than multiplying), 1.3-2x with up to 32 channels on either side at 20 x 20 to 56 x 56,
// level on deep layers (512 -> 256 at 28 x 28). Smaller planes ran slower where they are deep,
// even taken several images per kernel call with masked loads for the tails (measured, not used):
// 14 x 14, 576 -> 96 3.9 against 3.0 ms, 1024 -> 256 18.7 against 13.9; 7 x 7 1.7-2.2x the
// packed GEMM's time. AVX-512 keeps the packed GEMM (12 x 32 zmm tiles), unmeasured against the
// dot products.
constexpr int64_t kPointwiseWeightMinPlane = 256;

bool pointwise_weight_pays_off(const Conv2dGeometry& g) {
  return g.is_pointwise() && !cpu_uses_avx512() && g.out_plane() >= kPointwiseWeightMinPlane;
}

std::atomic<int64_t> run_counts[3][kConv2dPaths];

}  // namespace

const char* name_of(Conv2dPass pass) {
  switch (pass) {
    case Conv2dPass::forward:
      return "forward";
    case Conv2dPass::input_backward:
      return "input_backward";
    case Conv2dPass::weight_backward:
      return "weight_backward";
  }
  return "?";
}

const char* name_of(Conv2dPath path) {
  switch (path) {
    case Conv2dPath::depthwise:
      return "depthwise";
    case Conv2dPath::packed_gemm:
      return "packed_gemm";
    case Conv2dPath::depthwise_flipped:
      return "depthwise_flipped";
    case Conv2dPath::packed_gemm_flipped:
      return "packed_gemm_flipped";
    case Conv2dPath::depthwise_gather:
      return "depthwise_gather";
    case Conv2dPath::im2col_blas:
      return "im2col_blas";
    case Conv2dPath::winograd:
      return "winograd";
    case Conv2dPath::winograd_flipped:
      return "winograd_flipped";
    case Conv2dPath::direct:
      return "direct";
    case Conv2dPath::direct_flipped:
      return "direct_flipped";
    case Conv2dPath::pointwise:
      return "pointwise";
    case Conv2dPath::depthwise_channels_last:
      return "depthwise_channels_last";
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

bool is_subsampled_pointwise(const Conv2dGeometry& g) {
  return g.kernel_h == 1 && g.kernel_w == 1 && g.pad_h == 0 && g.pad_w == 0 && g.is_strided();
}

Conv2dGeometry subsampled_pointwise_geometry(const Conv2dGeometry& g) {
  Conv2dGeometry t = g;
  t.in_h = g.out_h, t.in_w = g.out_w;
  t.stride_h = t.stride_w = t.dilation_h = t.dilation_w = 1;
  return t;
}

// float32 has kernels of its own; other dtypes take im2col + ATen's BLAS.
Conv2dPath choose_path(Conv2dPass pass, const Conv2dGeometry& g, c10::ScalarType dtype) {
  if (is_subsampled_pointwise(g)) {
    return choose_path(pass, subsampled_pointwise_geometry(g), dtype);
  }
  if (dtype != at::kFloat) {
    return Conv2dPath::im2col_blas;
  }
  switch (pass) {
    case Conv2dPass::forward:
      return depthwise_supported(g)    ? Conv2dPath::depthwise
          : winograd_pays_off(g)       ? Conv2dPath::winograd
          : direct_forward_pays_off(g) ? Conv2dPath::direct
          : packed_forward_pays_off(g) ? Conv2dPath::packed_gemm
                                       : Conv2dPath::im2col_blas;
    case Conv2dPass::input_backward: {
      if (input_backward_is_a_convolution(g)) {
        const auto t = input_backward_geometry(g);
        if (depthwise_supported(t)) return Conv2dPath::depthwise_flipped;
        if (winograd_pays_off(t)) return Conv2dPath::winograd_flipped;
        if (direct_forward_pays_off(t)) return Conv2dPath::direct_flipped;
        if (packed_gemm_pays_off(t)) return Conv2dPath::packed_gemm_flipped;
      }
      return depthwise_supported(g) ? Conv2dPath::depthwise_gather : Conv2dPath::im2col_blas;
    }
    case Conv2dPass::weight_backward:
      // The packed weight gradient (and Winograd's) sums in a fixed order whatever the thread
      // count, which MKL's GEMM does not: it serves pointwise and deep layers too.
      return depthwise_supported(g)      ? Conv2dPath::depthwise
          : pointwise_weight_pays_off(g) ? Conv2dPath::pointwise
          : winograd_weight_pays_off(g)  ? Conv2dPath::winograd
          : direct_weight_pays_off(g)    ? Conv2dPath::direct
                                         : Conv2dPath::packed_gemm;
  }
  return Conv2dPath::im2col_blas;
}

int64_t conv2d_forward_workspace_bytes(const Conv2dGeometry& g, c10::ScalarType dtype) {
  if (is_subsampled_pointwise(g)) {
    return conv2d_forward_workspace_bytes(subsampled_pointwise_geometry(g), dtype);
  }
  const int64_t threads = num_threads();
  switch (choose_path(Conv2dPass::forward, g, dtype)) {
    case Conv2dPath::depthwise:
      return std::min(threads, g.batch * g.out_channels) * depthwise_forward_workspace_bytes(g);
    case Conv2dPath::packed_gemm:
      return packed_forward_workspace_bytes(g, threads);
    case Conv2dPath::direct:
      return direct_forward_workspace_bytes(g);
    case Conv2dPath::winograd:
      return winograd_forward_workspace_bytes(g, threads);
    default:
      return im2col_blas_forward_workspace_bytes(g, c10::elementSize(dtype), threads);
  }
}

bool winograd_enabled() { return winograd_on.load(); }

void set_winograd_enabled(bool enabled) { winograd_on.store(enabled); }

bool direct_enabled() { return direct_on.load(); }

void set_direct_enabled(bool enabled) { direct_on.store(enabled); }

void record_run(Conv2dPass pass, Conv2dPath path) {
  run_counts[static_cast<int>(pass)][static_cast<int>(path)].fetch_add(1);
}

int64_t runs_of(Conv2dPass pass, Conv2dPath path) {
  return run_counts[static_cast<int>(pass)][static_cast<int>(path)].load();
}

}  // namespace fastconv::cpu
