// The direct float32 convolution (direct.h): the input as zero-padded phase planes, then
// 8 x 48 tiles of the micro-kernel.
#include "ops/cpu/conv2d/direct/direct.h"

#include <algorithm>
#include <vector>

#include "ops/cpu/common.h"
#include "ops/cpu/conv2d/phase_planes.h"
#include "ops/cpu/microkernels/f32_conv.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"

namespace fastconv::cpu {
namespace {

constexpr int64_t kTilePixels = kConvTileVectors * kConvTileLanes;
// Input channels per kernel call: a block's tile inputs (8-16 KiB for 3x3) and weights stay in
// L1 while the calls for all its output channels read them. Deeper layers sum block after block
// into their outputs, which then stay in L2 (kMaxRevisitedBytes) between blocks.
constexpr int64_t kDepthPerCall = 288;
constexpr int64_t kMaxRevisitedBytes = 256 * 1024;
constexpr int64_t kTasksPerThread = 4;

// How the forward's work is cut into tasks: (image and group, block of output-channel tiles, block
// of pixel tiles); each sums over its input channels `depth_channels` at a time.
struct DirectTiling {
  int64_t pixel_tiles, channel_tiles, depth_channels, pixel_tiles_per_task, channel_tiles_per_task;

  DirectTiling(const Conv2dGeometry& g, const DirectPlanes& planes, int64_t threads) {
    const int64_t taps = g.kernel_h * g.kernel_w, channels = g.in_channels_per_group();
    pixel_tiles = ceil_div(g.out_h * planes.grid_w, kTilePixels);
    channel_tiles = ceil_div(g.out_channels_per_group(), kConvTileChannels);
    depth_channels = std::clamp<int64_t>(kDepthPerCall / taps, 1, channels);
    pixel_tiles_per_task = pixel_tiles, channel_tiles_per_task = channel_tiles;
    if (depth_channels < channels) {  // outputs revisited per block of input channels
      const int64_t tile_bytes = kConvTileChannels * kTilePixels * 4;
      pixel_tiles_per_task =
          std::clamp<int64_t>(kMaxRevisitedBytes / (channel_tiles * tile_bytes), 1, pixel_tiles);
      channel_tiles_per_task = std::clamp<int64_t>(
          kMaxRevisitedBytes / (pixel_tiles_per_task * tile_bytes), 1, channel_tiles);
    }
    while (tasks(g) < kTasksPerThread * threads &&
           (pixel_tiles_per_task > 1 || channel_tiles_per_task > 1)) {
      if (pixel_tiles_per_task > 1) {
        pixel_tiles_per_task = (pixel_tiles_per_task + 1) / 2;
      } else {
        channel_tiles_per_task = (channel_tiles_per_task + 1) / 2;
      }
    }
  }

  int64_t pixel_blocks() const { return ceil_div(pixel_tiles, pixel_tiles_per_task); }
  int64_t channel_blocks() const { return ceil_div(channel_tiles, channel_tiles_per_task); }
  int64_t tasks(const Conv2dGeometry& g) const {
    return g.batch * g.groups * pixel_blocks() * channel_blocks();
  }
};

// Where the grid pixels [q0, q0 + 16 vectors) go, for pixels below q_end.
void plan_stores(int64_t q0, int64_t q_end, int64_t grid_w, int64_t out_w, ConvTileStores& s) {
  s.vectors = std::min(kConvTileVectors, ceil_div(q_end - q0, kConvTileLanes));
  for (int64_t j = 0; j < s.vectors; ++j) {
    s.runs[j] = 0;
    for (int64_t lane = 0; lane < kConvTileLanes;) {
      const int64_t q = q0 + j * kConvTileLanes + lane;
      if (q >= q_end) break;
      const int64_t r = q / grid_w, col = q % grid_w;
      if (col >= out_w) {  // a column of the grid outside the output: skip to the next row
        lane += grid_w - col;
        continue;
      }
      const int64_t n = std::min(out_w - col, kConvTileLanes - lane);
      s.offset[j][s.runs[j]] = r * out_w + col - lane;
      s.mask[j][s.runs[j]] = ((1u << n) - 1u) << lane;
      ++s.runs[j];
      lane += n;
    }
  }
}

// w[K][C/g][kh][kw] as [group][block of 8 output channels][C/g][taps][8], zero past K/g; and the
// bias as [group][block][8].
struct PackedWeights {
  int64_t blocks, block_elements;
  Workspace<float> weights, bias;

  PackedWeights(const Conv2dGeometry& g, const float* w, const float* b)
      : blocks(ceil_div(g.out_channels_per_group(), kConvTileChannels)),
        block_elements(g.column_rows() * kConvTileChannels),
        weights(g.groups * blocks * block_elements),
        bias(b != nullptr ? g.groups * blocks * kConvTileChannels : 0) {
    const int64_t K = g.out_channels_per_group(), depth = g.column_rows();
    const int64_t grain = grain_for(block_elements, kMinFloatsPerTask);
    parallel_for(0, g.groups * blocks, grain, [&](int64_t begin, int64_t end) {
      for (int64_t gb = begin; gb < end; ++gb) {
        const int64_t group = gb / blocks, k0 = gb % blocks * kConvTileChannels;
        float* out = weights.data() + gb * block_elements;
        for (int64_t m = 0; m < kConvTileChannels; ++m) {
          if (k0 + m >= K) {  // past the group's output channels: zero weights, zero bias
            for (int64_t d = 0; d < depth; ++d) out[d * kConvTileChannels + m] = 0.f;
            if (b != nullptr) bias[gb * kConvTileChannels + m] = 0.f;
            continue;
          }
          const float* row = w + (group * K + k0 + m) * depth;
          for (int64_t d = 0; d < depth; ++d) out[d * kConvTileChannels + m] = row[d];
          if (b != nullptr) bias[gb * kConvTileChannels + m] = b[group * K + k0 + m];
        }
      }
    });
  }
};

}  // namespace

bool direct_supported(const Conv2dGeometry& g) {
  if (g.stride_h > kMaxDirectStride || g.stride_w > kMaxDirectStride) return false;
  // The planes must stay of the order of the input and output (a dilation or padding far beyond
  // them, which torch accepts, goes to the GEMM paths, whose workspaces follow the output), and
  // the grid no more than about twice as wide as the output (its extra columns are computed).
  const auto d = [](int64_t v) { return static_cast<double>(v); };
  const double halo_h = d(g.kernel_h - 1) * d(g.dilation_h) / d(g.stride_h);
  const double halo_w = d(g.kernel_w - 1) * d(g.dilation_w) / d(g.stride_w);
  const double planes = d(g.batch) * d(g.in_channels) * d(std::min(g.kernel_h, g.stride_h)) *
      d(std::min(g.kernel_w, g.stride_w)) * (d(g.out_h) + halo_h) * (d(g.out_w) + halo_w);
  const double tensors =
      d(g.batch) * (d(g.in_channels) * d(g.in_plane()) + d(g.out_channels) * d(g.out_plane()));
  return halo_w <= d(g.out_w) + 16.0 && planes <= 4.0 * tensors + 65536.0;
}

int64_t direct_forward_workspace_bytes(const Conv2dGeometry& g) {
  const DirectPlanes planes(g);
  const int64_t channel_tiles = ceil_div(g.out_channels_per_group(), kConvTileChannels);
  // The planes, and the packed weights and bias (the bias counted whether or not there is one).
  return workspace_bytes(planes.elements, 4) +
      workspace_bytes(g.groups * channel_tiles * g.column_rows() * kConvTileChannels, 4) +
      workspace_bytes(g.groups * channel_tiles * kConvTileChannels, 4);
}

void direct_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y) {
  const DirectPlanes l(g);
  const DirectTiling tiling(g, l, num_threads());
  const PackedWeights packed(g, w, bias);
  Workspace<float> planes(l.elements);
  l.fill(g, x, planes.data());
  const auto kernel = FASTCONV_SELECT_ISA_AVX512(f32_conv_8x48);
  const int64_t C = g.in_channels_per_group(), K = g.out_channels_per_group();
  const int64_t q_end = g.out_h * l.grid_w;
  const int64_t pixel_blocks = tiling.pixel_blocks(), channel_blocks = tiling.channel_blocks();
  const int64_t task_work = tiling.channel_tiles_per_task * kConvTileChannels *
      tiling.pixel_tiles_per_task * kTilePixels * g.column_rows();
  const int64_t grain = grain_for(task_work, kMinMultiplyAddsPerTask);
  parallel_for(0, tiling.tasks(g), grain, [&](int64_t begin, int64_t end) {
    ConvTileStores stores;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t source = task / (pixel_blocks * channel_blocks);
      const int64_t n = source / g.groups, group = source % g.groups;
      const int64_t pixel_block = task / channel_blocks % pixel_blocks;
      const int64_t channel_block = task % channel_blocks;
      const int64_t first_tile = pixel_block * tiling.pixel_tiles_per_task;
      const int64_t last_tile =
          std::min(tiling.pixel_tiles, first_tile + tiling.pixel_tiles_per_task);
      const int64_t first_block = channel_block * tiling.channel_tiles_per_task;
      const int64_t last_block =
          std::min(tiling.channel_tiles, first_block + tiling.channel_tiles_per_task);
      const float* group_planes =
          planes.data() + (n * g.in_channels + group * C) * l.channel_stride;
      for (int64_t c0 = 0; c0 < C; c0 += tiling.depth_channels) {
        const int64_t channels = std::min(tiling.depth_channels, C - c0);
        for (int64_t tile_index = first_tile; tile_index < last_tile; ++tile_index) {
          const int64_t q0 = tile_index * kTilePixels;
          // (Planned again per block of input channels: a few dozen operations against the
          // block's 288 x 24 FMAs, and one plan in cache instead of a task's worth.)
          plan_stores(q0, q_end, l.grid_w, g.out_w, stores);
          for (int64_t block = first_block; block < last_block; ++block) {
            const int64_t gb = group * tiling.channel_tiles + block;
            ConvTile tile;
            tile.input = group_planes + c0 * l.channel_stride + q0;
            tile.channel_stride = l.channel_stride;
            tile.channels = channels;
            tile.tap_offsets = l.tap_offsets.data();
            tile.taps = g.kernel_h * g.kernel_w;
            tile.weights = packed.weights.data() + gb * packed.block_elements +
                c0 * tile.taps * kConvTileChannels;
            tile.start =
                bias != nullptr && c0 == 0 ? packed.bias.data() + gb * kConvTileChannels : nullptr;
            tile.output =
                y + (n * g.out_channels + group * K + block * kConvTileChannels) * g.out_plane();
            tile.output_channel_stride = g.out_plane();
            tile.rows = std::min(kConvTileChannels, K - block * kConvTileChannels);
            tile.accumulate = c0 > 0;
            kernel(tile, stores);
          }
        }
      }
    }
  });
}

}  // namespace fastconv::cpu
