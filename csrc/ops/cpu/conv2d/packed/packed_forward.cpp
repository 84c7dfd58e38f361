// float32 conv2d on our packed GEMM (packed_gemm.h): im2col packed block by block straight into
// the GEMM's panels (pack_columns.h), so that the column matrix never leaves the cache. The
// forward, and the weight gradient with grad_output as A and the transposed columns as B. Both
// are parallel over fixed tiles and sum every output in a fixed order: results do not depend on
// the thread count.
#include "ops/cpu/conv2d/packed/packed.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "ops/cpu/common.h"
#include "ops/cpu/conv2d/packed/pack_columns.h"
#include "ops/cpu/conv2d/packed/packed_gemm.h"
#include "ops/cpu/microkernels/f32_gemm.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"

namespace fastconv::cpu {
namespace {

// Output pixels per task of the packed forward: its B block, kKC x kPixelBlock floats (128 KiB),
// stays in L2 while every weight panel passes over it.
constexpr int64_t kPixelBlock = 128;
// At most this many weight rows per task (43 panels), so that their kKC-deep slice (516 KiB)
// also stays in L2 and a 512-channel layer packs each pixel block once.
constexpr int64_t kMaxRowBlock = 516;

// The packed forward's tasks: (group, block of output pixels, block of weight rows). The pixels
// of the whole batch are numbered image after image, so a block may span small images; blocks are
// whole 16-pixel panels, shared out evenly, so that tasks take the same time. When there are few
// pixel blocks the weight rows are split too, so that every thread gets work.
struct ForwardTiling {
  int64_t pixels, panels, pixel_blocks, row_block, row_blocks;

  explicit ForwardTiling(const Conv2dGeometry& g) {
    const int64_t K = g.out_channels_per_group();
    pixels = g.batch * g.out_plane();
    panels = ceil_div(pixels, kNR);
    pixel_blocks = ceil_div(panels, kPixelBlock / kNR);
    const RowBlocks rows = split_rows(K, g.groups * pixel_blocks, 2 * num_threads(), kMaxRowBlock);
    row_block = rows.block, row_blocks = rows.count;
    // Smaller pixel blocks where few tasks would leave a thread waiting (14x14, batch 8).
    pixel_blocks = balanced_blocks(pixel_blocks, g.groups * row_blocks, panels, num_threads());
  }
  int64_t tasks(const Conv2dGeometry& g) const { return g.groups * pixel_blocks * row_blocks; }
  // The first pixel of pixel block b, and its pixel count (at most kPixelBlock).
  std::pair<int64_t, int64_t> pixel_block(int64_t b) const {
    return panel_block(b, pixel_blocks, panels, pixels);
  }
};

}  // namespace

void packed_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y) {
  const int64_t P = g.out_plane(), K = g.out_channels_per_group(), C = g.in_channels_per_group(),
                rows = g.column_rows();
  std::vector<GemmA> weights;
  weights.reserve(g.groups);
  for (int64_t group = 0; group < g.groups; ++group) {
    weights.emplace_back(w + group * K * rows, K, rows, rows);
  }
  const InputPlanes input(g, x);
  const ForwardTiling tiling(g);
  const GemmKernels kernels = select_gemm_kernels();
  const GatherPanels gather = FASTCONV_SELECT_ISA_AVX512(f32_gather_panels);
  parallel_for(0, tiling.tasks(g), 1, [&](int64_t begin, int64_t end) {
    const Workspace<float> packed_columns(packed_b_elements(kPixelBlock));
    const Workspace<float> tile_scratch(
        packed_gemm_scratch_elements(tiling.row_block, kPixelBlock));
    std::vector<float*> output_columns(kPixelBlock);
    TapOffsets taps(input, g);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t row_block = task % tiling.row_blocks;
      const int64_t pixel_block = task / tiling.row_blocks % tiling.pixel_blocks;
      const int64_t group = task / (tiling.row_blocks * tiling.pixel_blocks);
      const auto [first, count] = tiling.pixel_block(pixel_block);
      for (int64_t j = 0; j < count; ++j) {
        const int64_t n = (first + j) / P, p = (first + j) % P;
        output_columns[j] = y + (n * g.out_channels + group * K) * P + p;
      }
      const int64_t row_begin = row_block * tiling.row_block;
      const int64_t row_end = std::min(K, row_begin + tiling.row_block);
      taps.assign(first, count);
      packed_gemm(
          kernels, weights[group], row_begin, row_end, count,
          [&](int64_t k0, int64_t kc, float* packed) {
            pack_columns(input, group * C, g, taps, gather, k0, kc, packed);
          },
          packed_columns.data(), output_columns.data(), P,
          bias != nullptr ? bias + group * K : nullptr, /*accumulate=*/false, tile_scratch.data());
    }
  });
}

int64_t packed_forward_workspace_bytes(const Conv2dGeometry& g, int64_t threads) {
  const ForwardTiling tiling(g);
  const int64_t K = g.out_channels_per_group();
  const int64_t weight_tails =
      K % kMR == 0 ? 0 : g.groups * workspace_bytes(kMR * g.column_rows(), sizeof(float));
  return std::min(threads, tiling.tasks(g)) *
      (workspace_bytes(packed_b_elements(kPixelBlock), sizeof(float)) +
       workspace_bytes(packed_gemm_scratch_elements(tiling.row_block, kPixelBlock),
                       sizeof(float))) +
      weight_tails + workspace_bytes(InputPlanes::split_elements(g), sizeof(float));
}

}  // namespace fastconv::cpu
