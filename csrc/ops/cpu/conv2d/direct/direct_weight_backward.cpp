// The weight gradient of the direct path (direct.h): gw[k][c][tap] = the sum over images
// and output pixels of grad_output[k][q] * planes[c][q + tap_offsets[tap]], read in place from
// the zero-padded input planes and from grad_output laid on the same pixel grid (zero at its
// extra columns), 2 output channels x 9 taps of one input channel per micro-kernel call, 16 lanes
// per sum. A packed GEMM would copy every input value kh x kw times for as few as 4 output
// channels (ResNeXt's groups).

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu/common.h"
#include "ops/cpu/conv2d/direct/direct.h"
#include "ops/cpu/microkernels/f32_conv.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"

namespace fastconv::cpu {
namespace {

// Pixel vectors per micro-kernel call: the grad_output rows and input planes a call reads (about
// 4 x 4 KiB and a halo) stay in L1 for the calls of every block of taps. Small images go several
// to a call, larger ones a stretch of rows at a time.
constexpr int64_t kVectorsPerCall = 64;

// The 16 lanes of a sum, added by halves (lane l + lane l + 8, then + 4, + 2, + 1): four
// independent adds deep instead of a chain of 15, in a fixed order.
float lane_total(const float* lanes) {
  float folded[kConvTileLanes];
  std::copy_n(lanes, kConvTileLanes, folded);
  for (int64_t half = kConvTileLanes / 2; half >= 1; half /= 2) {
    for (int64_t l = 0; l < half; ++l) folded[l] += folded[l + half];
  }
  return folded[0];
}

}  // namespace

void direct_weight_backward(const Conv2dGeometry& g, const float* x, const float* gy, float* gw) {
  const DirectPlanes l(g);
  Workspace<float> planes(l.elements);
  l.fill(g, x, planes.data());

  // grad_output on the grid, each channel padded to whole vectors (the kernel reads only the lanes
  // of output pixels; the rest is zeroed all the same); one more zero channel at the end stands
  // in for the row a last partial tile of 2 leaves empty.
  const int64_t grid_pixels = g.out_h * l.grid_w;
  const int64_t vectors = ceil_div(grid_pixels, kConvTileLanes);
  const int64_t channel_size = vectors * kConvTileLanes;
  const int64_t channels = g.batch * g.out_channels;
  Workspace<float> grid((channels + kWeightTileChannels - 1) * channel_size);
  const int64_t fill_grain = grain_for(channel_size, kMinFloatsPerTask);
  const int64_t grid_channels = channels + kWeightTileChannels - 1;
  parallel_for(0, grid_channels, fill_grain, [&](int64_t begin, int64_t end) {
    for (int64_t channel = begin; channel < end; ++channel) {
      float* out = grid.data() + channel * channel_size;
      if (channel >= channels) {
        std::fill_n(out, channel_size, 0.f);
        continue;
      }
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        float* row = out + oh * l.grid_w;
        std::copy_n(gy + channel * g.out_plane() + oh * g.out_w, g.out_w, row);
        std::fill_n(row + g.out_w, l.grid_w - g.out_w, 0.f);
      }
      std::fill_n(out + grid_pixels, channel_size - grid_pixels, 0.f);
    }
  });

  // Which lanes of each vector are output pixels (the same in every image and channel).
  std::vector<uint16_t> lanes(vectors, 0);
  for (int64_t q = 0; q < grid_pixels; ++q) {
    if (q % l.grid_w < g.out_w) lanes[q / kConvTileLanes] |= uint16_t(1u << (q % kConvTileLanes));
  }

  // The taps in blocks of kWeightTileTaps, the last one filled up with tap 0 (sums ignored).
  const int64_t taps = g.kernel_h * g.kernel_w;
  const int64_t tap_blocks = ceil_div(taps, kWeightTileTaps);
  std::vector<int64_t> offsets(tap_blocks * kWeightTileTaps, l.tap_offsets[0]);
  std::copy(l.tap_offsets.begin(), l.tap_offsets.end(), offsets.begin());

  const auto kernel = FASTCONV_SELECT_ISA_AVX512(f32_conv_weight_2x9);
  constexpr int64_t kTileSums = kWeightTileChannels * kWeightTileTaps * kConvTileLanes;
  const int64_t C = g.in_channels_per_group(), K = g.out_channels_per_group();
  const int64_t k_tiles = ceil_div(K, kWeightTileChannels);
  // Tasks (group, input channel, tile of output channels): consecutive tasks share their input
  // channel's planes, which stay in cache.
  const int64_t task_work = kWeightTileChannels * taps * g.batch * channel_size;
  parallel_for(
      0, g.groups * C * k_tiles, grain_for(task_work, kMinMultiplyAddsPerTask),
      [&](int64_t begin, int64_t end) {
        const Workspace<float> sums(tap_blocks * kTileSums);
        for (int64_t task = begin; task < end; ++task) {
          const int64_t group = task / (C * k_tiles), c = task / k_tiles % C;
          const int64_t k0 = task % k_tiles * kWeightTileChannels;
          const int64_t rows = std::min(kWeightTileChannels, K - k0);
          // Every sum runs over the images and the pixels in order, in any cut of them.
          const int64_t images_per_call =
              vectors >= kVectorsPerCall ? 1 : std::max<int64_t>(1, kVectorsPerCall / vectors);
          const auto run_calls = [&](bool finite_input) {
            std::fill_n(sums.data(), tap_blocks * kTileSums, 0.f);
            for (int64_t n0 = 0; n0 < g.batch; n0 += images_per_call) {
              for (int64_t v0 = 0; v0 < vectors; v0 += kVectorsPerCall) {
                for (int64_t block = 0; block < tap_blocks; ++block) {
                  ConvWeightTile tile;
                  tile.grad_output = grid.data() +
                      (n0 * g.out_channels + group * K + k0) * channel_size + v0 * kConvTileLanes;
                  tile.grad_output_stride = channel_size;
                  tile.grad_output_image_stride = g.out_channels * channel_size;
                  tile.input = planes.data() +
                      (n0 * g.in_channels + group * C + c) * l.channel_stride + v0 * kConvTileLanes;
                  tile.input_image_stride = g.in_channels * l.channel_stride;
                  tile.tap_offsets = offsets.data() + block * kWeightTileTaps;
                  tile.lanes = lanes.data() + v0;
                  tile.finite_input = finite_input;
                  tile.images = std::min(images_per_call, g.batch - n0);
                  tile.vectors = std::min(kVectorsPerCall, vectors - v0);
                  tile.sums = sums.data() + block * kTileSums;
                  kernel(tile);
                }
              }
            }
          };
          // First as if every input value were finite (a build may then skip the masks: 0 x a
          // finite value adds nothing, so the sums are the same); a non-finite sum may instead
          // hold 0 x inf from outside the output pixels, and is computed again with the masks.
          run_calls(true);
          if (!std::all_of(sums.data(), sums.data() + tap_blocks * kTileSums,
                           [](float s) { return std::isfinite(s); })) {
            run_calls(false);
          }
          for (int64_t block = 0; block < tap_blocks; ++block) {
            const int64_t block_taps = std::min(kWeightTileTaps, taps - block * kWeightTileTaps);
            for (int64_t r = 0; r < rows; ++r) {
              float* out = gw + ((group * K + k0 + r) * C + c) * taps + block * kWeightTileTaps;
              for (int64_t t = 0; t < block_taps; ++t) {
                out[t] = lane_total(sums.data() + block * kTileSums +
                                    (r * kWeightTileTaps + t) * kConvTileLanes);
              }
            }
          }
        }
      });
}

}  // namespace fastconv::cpu
