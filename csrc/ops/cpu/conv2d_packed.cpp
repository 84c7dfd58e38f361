// float32 conv2d on our packed GEMM (packed_gemm.h): im2col packed block by block straight into
// the GEMM's panels (pack_columns.h), so that the column matrix never leaves the cache. The
// forward, and the weight gradient with grad_output as A and the transposed columns as B. Both
// are parallel over fixed tiles and sum every output in a fixed order: results do not depend on
// the thread count.
#include "conv2d_packed.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "microkernels/f32_gemm_12x16.h"
#include "pack_columns.h"
#include "packed_gemm.h"
#include "workspace.h"

namespace fastconv::cpu {
namespace {

// Output pixels per task of the packed forward: its B block, kKC x kPixelBlock floats (128 KiB),
// stays in L2 while every weight panel passes over it.
constexpr int64_t kPixelBlock = 128;
// At most this many weight rows per task, so that their kKC-deep slice (192 KiB) also fits in L2.
constexpr int64_t kMaxRowBlock = 192;

// The packed forward's tasks: (group, block of output pixels, block of weight rows). The pixels
// of the whole batch are numbered image after image, so a block may span small images; blocks are
// whole 16-pixel panels, shared out evenly, so that tasks take the same time. When there are few
// pixel blocks the weight rows are split too, so that every thread gets work.
struct ForwardTiling {
  int64_t pixels, panels, pixel_blocks, row_block, row_blocks;

  explicit ForwardTiling(const Conv2dGeometry& g) {
    const int64_t K = g.out_channels_per_group();
    pixels = g.batch * g.out_plane();
    panels = (pixels + kNR - 1) / kNR;
    pixel_blocks = (panels + kPixelBlock / kNR - 1) / (kPixelBlock / kNR);
    const int64_t pixel_tasks = g.groups * pixel_blocks;
    const int64_t wanted = 2 * at::get_num_threads();
    int64_t splits = std::clamp<int64_t>((wanted + pixel_tasks - 1) / pixel_tasks, 1,
                                         (K + kMR - 1) / kMR);
    splits = std::max(splits, (K + kMaxRowBlock - 1) / kMaxRowBlock);
    row_block = round_up((K + splits - 1) / splits, kMR);
    row_blocks = (K + row_block - 1) / row_block;
  }
  int64_t tasks(const Conv2dGeometry& g) const { return g.groups * pixel_blocks * row_blocks; }
  // The first pixel of pixel block b, and its pixel count (at most kPixelBlock).
  std::pair<int64_t, int64_t> pixel_block(int64_t b) const {
    const int64_t first = b * panels / pixel_blocks * kNR;
    const int64_t end = std::min(pixels, (b + 1) * panels / pixel_blocks * kNR);
    return {first, end - first};
  }
};

} // namespace

void packed_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y) {
  const int64_t P = g.out_plane(), K = g.out_channels_per_group(),
                C = g.in_channels_per_group(), rows = g.column_rows();
  std::vector<GemmA> weights;
  weights.reserve(g.groups);
  for (int64_t group = 0; group < g.groups; ++group) {
    weights.emplace_back(w + group * K * rows, K, rows, rows);
  }
  const ForwardTiling tiling(g);
  const MicroKernel kernel = FASTCONV_SELECT_ISA_AVX512(f32_gemm_12x16);
  at::parallel_for(0, tiling.tasks(g), 1, [&](int64_t begin, int64_t end) {
    const Workspace<float> packed_columns(packed_b_elements(kPixelBlock));
    std::vector<float*> output_columns(kPixelBlock);
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
      const float* group_input = x + group * C * g.in_plane();
      const auto runs = pixel_runs(g, first, count);
      packed_gemm(
          kernel, weights[group], row_begin, row_end, count,
          [&](int64_t k0, int64_t kc, float* packed) {
            pack_columns(group_input, g, runs, count, k0, kc, packed);
          },
          packed_columns.data(), output_columns.data(), P,
          bias != nullptr ? bias + group * K : nullptr, /*accumulate=*/false);
    }
  });
}

int64_t packed_forward_workspace_bytes(const Conv2dGeometry& g, int64_t threads) {
  const ForwardTiling tiling(g);
  const int64_t K = g.out_channels_per_group();
  const int64_t weight_tails =
      K % kMR == 0 ? 0 : g.groups * workspace_bytes(kMR * g.column_rows(), sizeof(float));
  return std::min(threads, tiling.tasks(g)) *
      workspace_bytes(packed_b_elements(kPixelBlock), sizeof(float)) + weight_tails;
}

namespace {

// Weight-gradient columns per task (a multiple of kNR) and weight rows per task.
constexpr int64_t kWeightColumnBlock = 128;

// A small weight gradient (few tasks over its blocks) of a large batch is also split by images:
// chunks of kImagesPerChunk images are summed into separate partial gradients in parallel, which
// are then added in chunk order. The split depends on the geometry alone, never on the thread
// count, and the partial gradients together stay under kMaxPartialElements.
constexpr int64_t kImagesPerChunk = 8;
constexpr int64_t kMaxPartialElements = 1 << 20;

// The packed weight gradient's tasks: (chunk of images, group, block of grad_weight rows, block of
// its columns). Every grad_weight element is summed over the images and pixels in the same order
// whatever the thread count.
struct WeightBackwardTiling {
  int64_t image_chunks, row_block, row_blocks, column_block, column_blocks;

  explicit WeightBackwardTiling(const Conv2dGeometry& g) {
    const int64_t K = g.out_channels_per_group(), columns = g.column_rows();
    const int64_t chunks = (g.batch + kImagesPerChunk - 1) / kImagesPerChunk;
    image_chunks = chunks * g.out_channels * columns <= kMaxPartialElements ? chunks : 1;
    row_block = std::min(round_up(K, kMR), kMaxRowBlock);
    row_blocks = (K + row_block - 1) / row_block;
    column_block = kWeightColumnBlock;
    const int64_t wanted = 2 * at::get_num_threads();
    while (column_block > kNR && image_chunks * g.groups * row_blocks *
                                         ((columns + column_block - 1) / column_block) <
                                     wanted) {
      column_block /= 2;
    }
    column_blocks = (columns + column_block - 1) / column_block;
  }
  int64_t tasks(const Conv2dGeometry& g) const {
    return image_chunks * g.groups * row_blocks * column_blocks;
  }
};

} // namespace

void packed_weight_backward(const Conv2dGeometry& g, const float* x, const float* gy, float* gw) {
  const int64_t P = g.out_plane(), K = g.out_channels_per_group(),
                C = g.in_channels_per_group(), rows = g.column_rows();
  const int64_t weight_elements = g.out_channels * rows;
  const WeightBackwardTiling tiling(g);
  const Workspace<float> partials(tiling.image_chunks > 1 ? tiling.image_chunks * weight_elements : 0);
  const MicroKernel kernel = FASTCONV_SELECT_ISA_AVX512(f32_gemm_12x16);
  at::parallel_for(0, tiling.tasks(g), 1, [&](int64_t begin, int64_t end) {
    const Workspace<float> packed_columns(packed_b_elements(tiling.column_block));
    std::vector<float*> weight_columns(tiling.column_block);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t column_block = task % tiling.column_blocks;
      const int64_t row_block = task / tiling.column_blocks % tiling.row_blocks;
      const int64_t group = task / (tiling.column_blocks * tiling.row_blocks) % g.groups;
      const int64_t chunk = task / (tiling.column_blocks * tiling.row_blocks * g.groups);
      const int64_t first = column_block * tiling.column_block;
      const int64_t count = std::min(tiling.column_block, rows - first);
      const int64_t row_begin = row_block * tiling.row_block;
      const int64_t row_count = std::min(K, row_begin + tiling.row_block) - row_begin;
      float* sum = tiling.image_chunks > 1 ? partials.data() + chunk * weight_elements : gw;
      for (int64_t j = 0; j < count; ++j) {
        weight_columns[j] = sum + (group * K + row_begin) * rows + first + j;
      }
      const int64_t first_image = tiling.image_chunks > 1 ? chunk * kImagesPerChunk : 0;
      const int64_t end_image =
          tiling.image_chunks > 1 ? std::min(g.batch, first_image + kImagesPerChunk) : g.batch;
      for (int64_t n = first_image; n < end_image; ++n) {
        const float* image = x + (n * g.in_channels + group * C) * g.in_plane();
        const GemmA grad_rows(gy + (n * g.out_channels + group * K + row_begin) * P, row_count, P,
                              P);
        packed_gemm(
            kernel, grad_rows, 0, row_count, count,
            [&](int64_t k0, int64_t kc, float* packed) {
              pack_columns_transposed(image, g, k0, kc, first, count, packed);
            },
            packed_columns.data(), weight_columns.data(), rows, nullptr,
            /*accumulate=*/n > first_image);
      }
    }
  });
  if (tiling.image_chunks > 1) {
    at::parallel_for(0, weight_elements, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        float total = partials[i];
        for (int64_t chunk = 1; chunk < tiling.image_chunks; ++chunk) {
          total += partials[chunk * weight_elements + i];
        }
        gw[i] = total;
      }
    });
  }
}

} // namespace fastconv::cpu
