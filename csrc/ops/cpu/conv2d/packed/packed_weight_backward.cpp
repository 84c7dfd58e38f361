// The float32 weight gradient on our packed GEMM (packed.h).
#include "ops/cpu/conv2d/packed/packed.h"

#include <algorithm>
#include <utility>

#include "ops/cpu/common.h"
#include "ops/cpu/conv2d/packed/pack_columns.h"
#include "ops/cpu/conv2d/packed/packed_gemm.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"

namespace fastconv::cpu {
namespace {

// The weight gradient is computed transposed, gw^T [C*kh*kw x K] = columns [C*kh*kw x pixels] *
// grad_output^T [pixels x K]: the column matrix's rows are stretches of input rows, built by
// copies (column_row), while the transposed operand is grad_output, 1/(kh*kw) of the column
// matrix's size, packed into 16-channel panels once per call. The other way round, the column
// matrix itself had to be scattered into panel order, which cost as much as the GEMM.
//
// Tasks are (chunk of images, group, block of column rows, block of output channels). A small
// weight gradient of a large batch is also split by images: chunks of kImagesPerChunk images are
// summed into separate partial gradients in parallel, then added in chunk order. The split
// depends on the geometry alone, never on the thread count, and the partial gradients together
// stay under kMaxPartialElements; every element is summed over its images and pixels in the same
// order whatever the thread count.
constexpr int64_t kImagesPerChunk = 8;
constexpr int64_t kMaxPartialElements = 1 << 20;
constexpr int64_t kMaxRowsPerTask = 96;    // column rows: their kKC-deep block (96 KiB) stays in L2
constexpr int64_t kMinInPlaceDepth = 128;  // pixels per plane (packed_weight_backward)
// The weight gradient's depth blocks (pixels) are at most half the forward's kKC: each is summed
// from zero in registers, and its sums run over a whole batch's pixels, so shorter running
// totals keep its float32 error within twice torch's (a 1x1 2048 -> 512 layer at 7x7, batch 8:
// 392 pixels in two blocks gave 2.3x).
constexpr int64_t kWeightGradientKC = kKC / 2;

struct WeightBackwardTiling {
  int64_t image_chunks, k_padded, rows_padded, row_block, row_blocks, row_panels, k_block, k_blocks;

  WeightBackwardTiling(const Conv2dGeometry& g, int64_t threads) {
    const int64_t rows = g.column_rows();
    k_padded = round_up(g.out_channels_per_group(), kNR);
    rows_padded = round_up(rows, kMR);
    const int64_t chunks = ceil_div(g.batch, kImagesPerChunk);
    image_chunks = chunks * g.groups * rows_padded * k_padded <= kMaxPartialElements ? chunks : 1;
    // Smaller blocks where there are few tasks; they only regroup the sums, so the results stay
    // the same. Each task reads its channels' grad_output over the whole depth and builds its
    // rows' columns: the larger side is split, so that a layer with few column rows and many
    // channels (a pointwise layer, the stem) does not read all of grad_output once per 12 rows.
    row_block = std::min(rows_padded, kMaxRowsPerTask);
    k_block = k_padded;
    while (image_chunks * g.groups * ceil_div(rows, row_block) * ceil_div(k_padded, k_block) <
           2 * threads) {
      if (k_block > 2 * kNR && k_block >= row_block) {
        k_block = round_up(k_block / 2, 2 * kNR);
      } else if (row_block > kMR) {
        row_block = round_up(row_block / 2, kMR);
      } else {
        break;
      }
    }
    // The row panels shared out evenly (147 rows in blocks of 48 left a block of 3, and one
    // thread twice the other's work); row_block is then the largest block.
    row_blocks = ceil_div(rows, row_block);
    row_panels = rows_padded / kMR;
    row_block = ceil_div(row_panels, row_blocks) * kMR;
    k_blocks = ceil_div(k_padded, k_block);
  }
  // The first column row of row block b, and its row count (at most row_block).
  std::pair<int64_t, int64_t> rows_of(int64_t b, int64_t rows) const {
    const int64_t first = b * row_panels / row_blocks * kMR;
    const int64_t end = std::min(rows, (b + 1) * row_panels / row_blocks * kMR);
    return {first, end - first};
  }
  int64_t tasks(const Conv2dGeometry& g) const {
    return image_chunks * g.groups * row_blocks * k_blocks;
  }
  // gw^T of one (chunk, group): rows_padded x k_padded.
  int64_t sum_elements() const { return rows_padded * k_padded; }
};

// gw[k][r] = sum[r][k] for the r < row_count and k < K of a block of gw^T (row stride ld),
// gw's rows being `rows` apart; 16 x 16 blocks at a time, so that both sides are read and written
// along rows.
void store_transposed(const float* sum, int64_t ld, int64_t row_count, int64_t K, float* gw,
                      int64_t rows) {
  for (int64_t r0 = 0; r0 < row_count; r0 += kNR) {
    const int64_t tile_rows = std::min(kNR, row_count - r0);
    for (int64_t k0 = 0; k0 < K; k0 += kNR) {
      const int64_t tile_k = std::min(kNR, K - k0);
      alignas(64) float block[kNR][kNR];
      for (int64_t r = 0; r < tile_rows; ++r) {
        std::copy_n(sum + (r0 + r) * ld + k0, kNR, block[r]);
      }
      for (int64_t k = 0; k < tile_k; ++k) {
        float* out = gw + (k0 + k) * rows + r0;
        for (int64_t r = 0; r < tile_rows; ++r) out[r] = block[r][k];
      }
    }
  }
}

// gw = the chunks' gw^T (sums: per chunk and group, rows_padded x k_padded) added in chunk order,
// per group and 16 rows.
void add_chunks(const Conv2dGeometry& g, const WeightBackwardTiling& tiling, float* sums,
                float* gw) {
  const int64_t rows = g.column_rows(), K = g.out_channels_per_group();
  const int64_t row_tiles = ceil_div(rows, kNR);
  parallel_for(0, g.groups * row_tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end; ++index) {
      const int64_t group = index / row_tiles, row0 = index % row_tiles * kNR;
      const int64_t tile_rows = std::min(kNR, rows - row0);
      float* total = sums + group * tiling.sum_elements() + row0 * tiling.k_padded;
      for (int64_t chunk = 1; chunk < tiling.image_chunks; ++chunk) {
        const float* part = total + chunk * g.groups * tiling.sum_elements();
        for (int64_t i = 0; i < tile_rows * tiling.k_padded; ++i) total[i] += part[i];
      }
      store_transposed(total, tiling.k_padded, tile_rows, K, gw + group * K * rows + row0, rows);
    }
  });
}

// The tasks of packed_weight_backward: each computes one block of gw^T, (chunk, group, block of
// column rows, block of output channels), over its chunk's pixels in depth blocks.
class WeightBackwardTasks {
 public:
  WeightBackwardTasks(const Conv2dGeometry& g, const WeightBackwardTiling& tiling,
                      const InputPlanes& input, const float* x, const float* packed_gy, float* sums,
                      float* gw)
      : g_(g),
        tiling_(tiling),
        input_(input),
        x_(x),
        packed_gy_(packed_gy),
        sums_(sums),
        gw_(gw),
        kernels_(select_gemm_kernels()) {
    const int64_t P = g.out_plane();
    // The depth is the chunk's pixels, image after image (small images share a depth block), in
    // equal blocks of at most kKC.
    chunk_images_ = sums != nullptr ? kImagesPerChunk : g.batch;
    // A pointwise layer's column rows are the input's own planes: its A panels are read in place
    // (kMR channel planes, the plane as row stride; a last partial panel is still copied, so that
    // no read passes the input), in depth blocks within one image, which saves the copies' third
    // of the GEMM's time on densenet's and ResNet's bottleneck layers. Planes smaller than
    // kMinInPlaceDepth keep the copies, whose depth blocks span images.
    in_place_ = g.is_pointwise() && P >= kMinInPlaceDepth;
    const int64_t span = in_place_ ? P : std::min(chunk_images_, g.batch) * P;
    block_depth_ = span > 0 ? block_depth_of(span, kWeightGradientKC) : 0;
  }

  // Floats of a task's A block: its column rows over one depth block, row-major (rows past the
  // matrix stay zero). Read in place, only a last partial panel is copied.
  int64_t a_elements() const {
    const bool copies = !in_place_ || g_.column_rows() % kMR != 0;
    return copies ? tiling_.row_block * block_depth_ : 0;
  }

  // Task `task`, with `a` (a_elements(), zeroed), `task_sum` (row_block x k_block, unchunked) and
  // `partial` (row_block x k_block) as scratch.
  // as scratch.
  void run(int64_t task, float* a, float* task_sum, float* partial) const {
    const Conv2dGeometry& g = g_;
    const int64_t P = g.out_plane(), K = g.out_channels_per_group(), rows = g.column_rows();
    const int64_t k_block = task % tiling_.k_blocks;
    const int64_t row_block = task / tiling_.k_blocks % tiling_.row_blocks;
    const int64_t group = task / (tiling_.k_blocks * tiling_.row_blocks) % g.groups;
    const int64_t chunk = task / (tiling_.k_blocks * tiling_.row_blocks * g.groups);
    const auto [row_begin, row_count] = tiling_.rows_of(row_block, rows);
    const int64_t k_begin = k_block * tiling_.k_block;
    const int64_t k_end = std::min(tiling_.k_padded, k_begin + tiling_.k_block);
    // The task's block of gw^T, row stride ld.
    const bool chunked = sums_ != nullptr;
    const int64_t ld = chunked ? tiling_.k_padded : tiling_.k_block;
    float* sum = chunked ? sums_ + (chunk * g.groups + group) * tiling_.sum_elements() +
            row_begin * tiling_.k_padded + k_begin
                         : task_sum;
    const int64_t first_image = chunk * chunk_images_;
    const int64_t depth = (std::min(g.batch, first_image + chunk_images_) - first_image) * P;
    for (int64_t d0 = 0, kc = 0; d0 < depth; d0 += kc) {
      kc = std::min(block_depth_, in_place_ ? P - d0 % P : depth - d0);
      // Blocked sums: each depth block is summed from zero (in the micro-kernel's registers, or
      // in `partial`) and then added to the task's sum, so that no output is one running total
      // over the whole batch's pixels (whose rounding error grows with their count).
      const int64_t k_count = k_end - k_begin;
      float* block_sum = d0 == 0 ? sum : partial;
      const int64_t block_ld = d0 == 0 ? ld : k_count;
      multiply_depth_block(group, first_image, row_begin, row_count, k_begin, k_end, d0, kc, a,
                           block_sum, block_ld);
      if (d0 > 0) {
        add_tile(partial, k_count, row_count, k_count, sum, ld);
      }
    }
    if (!chunked) {
      if (depth == 0) std::fill_n(sum, tiling_.row_block * tiling_.k_block, 0.f);
      store_transposed(sum, ld, row_count, std::min(K, k_end) - k_begin,
                       gw_ + (group * K + k_begin) * rows + row_begin, rows);
    }
  }

 private:
  // sum = the column rows [row_begin, + row_count) over the chunk's pixels [d0, d0 + kc) times
  // grad_output's panels of channels [k_begin, k_end).
  void multiply_depth_block(int64_t group, int64_t first_image, int64_t row_begin,
                            int64_t row_count, int64_t k_begin, int64_t k_end, int64_t d0,
                            int64_t kc, float* a, float* sum, int64_t ld) const {
    const Conv2dGeometry& g = g_;
    const int64_t P = g.out_plane(), C = g.in_channels_per_group();
    // In place, the rows from here on are copied: a last partial panel.
    const int64_t copied_from = in_place_ ? row_count / kMR * kMR : 0;
    // A: the column rows over pixels [d0, d0 + kc) of the chunk, one image's stretch at a time.
    for (int64_t d = d0; d < d0 + kc;) {
      const int64_t n = first_image + d / P, p = d % P, length = std::min(P - p, d0 + kc - d);
      for (int64_t r = copied_from; r < row_count; ++r) {
        column_row(input_, group * C, g, n, row_begin + r, p, length, a + r * kc + (d - d0));
      }
      d += length;
    }
    const auto a_panel = [&](int64_t i0) {
      return i0 < copied_from
          ? x_ + ((first_image + d0 / P) * g.in_channels + group * C + row_begin + i0) * P + d0 % P
          : a + i0 * kc;
    };
    const auto lda = [&](int64_t i0) { return i0 < copied_from ? P : kc; };
    const float* group_gy = packed_gy_ + group * (tiling_.k_padded / kNR) * g.batch * P * kNR;
    // Two panels of output channels at a time, the last alone when their count is odd.
    const int64_t panel_stride = g.batch * P * kNR;
    for (int64_t k0 = k_begin; k0 < k_end; k0 += 2 * kNR) {
      const float* b = group_gy + ((k0 / kNR * g.batch + first_image) * P + d0) * kNR;
      for (int64_t i0 = 0; i0 < row_count; i0 += kMR) {
        kernels_.run(k0 + kNR < k_end, std::min(kMR, row_count - i0), kc, a_panel(i0), lda(i0), b,
                     panel_stride, sum + i0 * ld + (k0 - k_begin), ld, nullptr,
                     /*accumulate=*/false);
      }
    }
  }

  const Conv2dGeometry& g_;
  const WeightBackwardTiling& tiling_;
  const InputPlanes& input_;
  const float* x_;
  const float* packed_gy_;
  float* sums_;  // per (chunk, group) gw^T, or null where tasks store into gw
  float* gw_;
  const GemmKernels kernels_;
  int64_t chunk_images_, block_depth_;
  bool in_place_;
};

}  // namespace

void packed_weight_backward(const Conv2dGeometry& g, const float* x, const float* gy, float* gw) {
  const WeightBackwardTiling tiling(g, num_threads());
  const InputPlanes input(g, x);
  const Workspace<float> packed_gy(g.batch * g.groups * tiling.k_padded * g.out_plane());
  pack_grad_output(g, gy, tiling.k_padded, packed_gy.data());
  // With several image chunks, gw^T per (chunk, group), rows_padded x k_padded, summed at the end;
  // with one, each task's block of gw^T is stored into gw while it is still in cache.
  const bool chunked = tiling.image_chunks > 1;
  const Workspace<float> sums(chunked ? tiling.image_chunks * g.groups * tiling.sum_elements() : 0);
  const WeightBackwardTasks tasks(g, tiling, input, x, packed_gy.data(),
                                  chunked ? sums.data() : nullptr, gw);
  parallel_for(0, tiling.tasks(g), 1, [&](int64_t begin, int64_t end) {
    const Workspace<float> a(tasks.a_elements(), /*zeroed=*/true);
    const Workspace<float> task_sum(chunked ? 0 : tiling.row_block * tiling.k_block);
    const Workspace<float> partial(tiling.row_block * tiling.k_block);
    for (int64_t task = begin; task < end; ++task) {
      tasks.run(task, a.data(), task_sum.data(), partial.data());
    }
  });
  if (chunked) {
    add_chunks(g, tiling, sums.data(), gw);
  }
}

}  // namespace fastconv::cpu
