// Winograd F(2x2, 3x3) forward (winograd.h). With d a 4x4 input patch and g a 3x3 filter,
// the 2x2 outputs are  Y = At [ (G g Gt) . (Bt d B) ] A :
//
//   Bt = | 1  0 -1  0 |    G = | 1    0    0   |    At = | 1  1  1  0 |
//        | 0  1  1  0 |        | 1/2  1/2  1/2 |         | 0  1 -1 -1 |
//        | 0 -1  1  0 |        | 1/2 -1/2  1/2 |
//        | 0  1  0 -1 |        | 0    0    1   |
//
// Summed over input channels, the product at each of the 16 transform points is a GEMM:
// M[p] (K x tiles) = U[p] (K x C) * V[p] (C x tiles). A task takes a block of tiles (whole
// 16-tile panels, numbered over the batch), transforms their patches straight into the
// micro-kernel's panel order, runs the 16 GEMMs over a group of output channels, and transforms
// those back into the output.
#include "ops/cpu/conv2d/winograd/winograd.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "ops/cpu/common.h"
#include "ops/cpu/conv2d/packed/packed_gemm.h"
#include "ops/cpu/microkernels/f32_gemm.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"

namespace fastconv::cpu {
namespace {

constexpr int64_t kPoints = 16;  // of the 4x4 transform
// Tiles per task: at most kMaxTilePanels 16-tile panels. The GEMMs run point by point, so that
// only one point's transformed patches (C x tiles floats) need stay in L2 while that point's
// transformed filters stream past them, once per task.
constexpr int64_t kMaxTilePanels = 4;
// Output channels per back transform (a multiple of kMR): the products of a group, 16 x 48 x
// tiles floats, are transformed back together.
constexpr int64_t kChannelGroup = 48;

struct Tiling {
  int64_t tiles_h, tiles_w, tiles, panels, block, blocks, row_block, row_blocks;

  Tiling(const Conv2dGeometry& g, int64_t threads) {
    tiles_h = (g.out_h + 1) / 2, tiles_w = (g.out_w + 1) / 2;
    tiles = g.batch * tiles_h * tiles_w;
    panels = ceil_div(tiles, kNR);
    blocks = std::max<int64_t>(ceil_div(panels, kMaxTilePanels), 1);
    // Few blocks: split the output channels as well, so that every thread gets work; each split
    // transforms its block's patches again. Splitting only regroups whole rows of the GEMMs, so
    // the sums do not change.
    const RowBlocks rows =
        split_rows(g.out_channels, blocks, 2 * threads, std::numeric_limits<int64_t>::max());
    row_block = rows.block, row_blocks = rows.count;
    // Then smaller blocks of tiles where few tasks would leave a thread waiting.
    blocks = balanced_blocks(blocks, row_blocks, panels, threads);
    block = std::max<int64_t>(ceil_div(panels, blocks), 1) * kNR;  // the largest
  }
  int64_t tasks() const { return blocks * row_blocks; }
  // The first tile of block b and its tile count: whole panels, shared out evenly.
  std::pair<int64_t, int64_t> tiles_of(int64_t b) const {
    return panel_block(b, blocks, panels, tiles);
  }
  // Groups of kChannelGroup output channels in a row block.
  int64_t channel_groups() const { return ceil_div(row_block, kChannelGroup); }
};

// U[p][k][c] = (G g Gt)[p] of filter (k, c), rows padded with zeros to a multiple of kMR so that
// every micro-kernel call reads whole panels.
void transform_filters(const Conv2dGeometry& g, const float* w, float* u, int64_t padded_k) {
  const int64_t K = g.out_channels, C = g.in_channels;
  // The 16 points of a filter land padded_k x C floats apart, which for 512 x 512 channels is
  // 1 MiB: stored filter by filter, their 16 lines all fell in one L1 set and the transform cost
  // more than the GEMMs. A run of kRun channels is transformed into a local block first, then
  // stored as 16 runs of whole lines.
  constexpr int64_t kRun = 64;
  const int64_t runs = ceil_div(C, kRun);
  parallel_for(0, K * runs, 16, [&](int64_t begin, int64_t end) {
    alignas(64) float block[kPoints][kRun];
    for (int64_t index = begin; index < end; ++index) {
      const int64_t k = index / runs, c0 = index % runs * kRun, count = std::min(kRun, C - c0);
      for (int64_t c = 0; c < count; ++c) {
        const float* f = w + (k * C + c0 + c) * 9;
        float gf[4][3];  // G g
        for (int j = 0; j < 3; ++j) {
          gf[0][j] = f[j];
          gf[1][j] = 0.5f * (f[j] + f[3 + j] + f[6 + j]);
          gf[2][j] = 0.5f * (f[j] - f[3 + j] + f[6 + j]);
          gf[3][j] = f[6 + j];
        }
        for (int i = 0; i < 4; ++i) {
          block[i * 4][c] = gf[i][0];
          block[i * 4 + 1][c] = 0.5f * (gf[i][0] + gf[i][1] + gf[i][2]);
          block[i * 4 + 2][c] = 0.5f * (gf[i][0] - gf[i][1] + gf[i][2]);
          block[i * 4 + 3][c] = gf[i][2];
        }
      }
      for (int64_t p = 0; p < kPoints; ++p) {
        std::copy_n(block[p], count, u + (p * padded_k + k) * C + c0);
      }
    }
  });
}

// The block's tiles, cut where a row of tiles ends: each run is tiles [tw_begin, tw_end) of tile
// row `th` of image `image`, and its first tile is the block's `offset`-th.
struct TileRun {
  int64_t image, th, tw_begin, tw_end, offset;
};

// The run that starts at tile t (first <= t < first + count).
FASTCONV_ALWAYS_INLINE TileRun run_at(const Tiling& tiling, int64_t first, int64_t count,
                                      int64_t t) {
  const int64_t per_image = tiling.tiles_h * tiling.tiles_w;
  const int64_t r = t % per_image, tw = r % tiling.tiles_w;
  const int64_t length = std::min(tiling.tiles_w - tw, first + count - t);
  return {t / per_image, r / tiling.tiles_w, tw, tw + length, t - first};
}

// Scratch floats per task for the transforms: rows of up to 2 * tiles_w + 2 padded columns, and
// rows of the block's tiles.
int64_t transform_scratch_elements(const Tiling& tiling) {
  return 8 * (2 * tiling.tiles_w + 2) + 16 * tiling.block;
}

// V[p] of the block's tiles into `v` (kPoints blocks of C x padded_count floats, each in 16-tile
// panels as the micro-kernel reads B). Channel by channel: each run of tiles shares its four
// input rows, so Bt goes over those rows at unit stride; their even and odd columns are then laid
// out by the block's tile order (unused lanes zero), so that B's column sums run over whole
// 16-tile panels.
FASTCONV_ALWAYS_INLINE void transform_patches_impl(const Conv2dGeometry& g, const Tiling& tiling,
                                                   const float* x, int64_t first, int64_t count,
                                                   int64_t padded_count, float* v, float* scratch) {
  const int64_t C = g.in_channels, H = g.in_h, W = g.in_w;
  const int64_t point_stride = C * padded_count;
  const int64_t padded_w = 2 * tiling.tiles_w + 2;
  float* rows = scratch;               // 4 x padded_w: the patch rows, zero outside the input
  float* mixed = rows + 4 * padded_w;  // 4 x padded_w: Bt applied over the rows
  // 4 x 4 x padded_count: per row of Bt d, the columns 2tw, 2tw + 2, 2tw + 1, 2tw + 3 of each tile.
  float* columns = mixed + 4 * padded_w;
  std::fill_n(columns, 16 * padded_count, 0.f);
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t next = first; next < first + count;) {
      const TileRun run = run_at(tiling, first, count, next);
      next += run.tw_end - run.tw_begin;
      const int64_t q_begin = 2 * run.tw_begin, q_end = 2 * run.tw_end + 2;  // padded columns
      const int64_t h0 = 2 * run.th - g.pad_h;
      // Input columns [w_begin, w_end) fall inside the image.
      const int64_t w_begin = std::clamp<int64_t>(q_begin - g.pad_w, 0, W);
      const int64_t w_end = std::clamp<int64_t>(q_end - g.pad_w, 0, W);
      const float* plane = x + (run.image * C + c) * H * W;
      for (int i = 0; i < 4; ++i) {
        float* row = rows + i * padded_w;
        std::fill(row + q_begin, row + q_end, 0.f);
        if (h0 + i >= 0 && h0 + i < H && w_begin < w_end) {
          std::copy(plane + (h0 + i) * W + w_begin, plane + (h0 + i) * W + w_end,
                    row + w_begin + g.pad_w);
        }
      }
      const float *r0 = rows, *r1 = rows + padded_w, *r2 = rows + 2 * padded_w,
                  *r3 = rows + 3 * padded_w;
      float *m0 = mixed, *m1 = mixed + padded_w, *m2 = mixed + 2 * padded_w,
            *m3 = mixed + 3 * padded_w;
      FASTCONV_NO_OVERLAP
      for (int64_t q = q_begin; q < q_end; ++q) {
        m0[q] = r0[q] - r2[q];
        m1[q] = r1[q] + r2[q];
        m2[q] = r2[q] - r1[q];
        m3[q] = r1[q] - r3[q];
      }
      for (int i = 0; i < 4; ++i) {
        const float* m = mixed + i * padded_w + 2 * run.tw_begin;
        float* c0 = columns + (4 * i + 0) * padded_count + run.offset;
        float* c2 = columns + (4 * i + 1) * padded_count + run.offset;
        float* c1 = columns + (4 * i + 2) * padded_count + run.offset;
        float* c3 = columns + (4 * i + 3) * padded_count + run.offset;
        FASTCONV_NO_OVERLAP
        for (int64_t t = 0; t < run.tw_end - run.tw_begin; ++t) {
          c0[t] = m[2 * t];
          c1[t] = m[2 * t + 1];
          c2[t] = m[2 * t + 2];
          c3[t] = m[2 * t + 3];
        }
      }
    }
    // (Bt d) B, a whole panel of tiles at a time.
    for (int64_t panel = 0; panel * kNR < padded_count; ++panel) {
      float* out = v + panel * C * kNR + c * kNR;
      for (int i = 0; i < 4; ++i) {
        const float* c0 = columns + (4 * i + 0) * padded_count + panel * kNR;
        const float* c2 = columns + (4 * i + 1) * padded_count + panel * kNR;
        const float* c1 = columns + (4 * i + 2) * padded_count + panel * kNR;
        const float* c3 = columns + (4 * i + 3) * padded_count + panel * kNR;
        float* p0 = out + (i * 4 + 0) * point_stride;
        float* p1 = out + (i * 4 + 1) * point_stride;
        float* p2 = out + (i * 4 + 2) * point_stride;
        float* p3 = out + (i * 4 + 3) * point_stride;
        FASTCONV_NO_OVERLAP
        for (int64_t l = 0; l < kNR; ++l) {
          p0[l] = c0[l] - c2[l];
          p1[l] = c1[l] + c2[l];
          p2[l] = c2[l] - c1[l];
          p3[l] = c1[l] - c3[l];
        }
      }
    }
  }
}

// Output channels [k0, k0 + rows) of the block's tiles from their products m (kPoints blocks of
// kChannelGroup x padded_count floats, tiles contiguous): y = At M A + bias over whole panels,
// then written run by run, two output rows at a time, clipped where the last tile hangs over
// the output.
FASTCONV_ALWAYS_INLINE void transform_products_impl(const Conv2dGeometry& g, const Tiling& tiling,
                                                    const float* m, int64_t padded_count,
                                                    int64_t k0, int64_t rows, int64_t first,
                                                    int64_t count, const float* bias, float* y,
                                                    float* scratch) {
  const int64_t point_stride = kChannelGroup * padded_count;
  const int64_t OH = g.out_h, OW = g.out_w;
  float* sums = scratch;                 // 8 x padded_count: At M, 2 rows x 4 columns
  float* out = sums + 8 * padded_count;  // 4 x padded_count: y00, y01, y10, y11 per tile
  for (int64_t r = 0; r < rows; ++r) {
    const float* mr = m + r * padded_count;
    for (int j = 0; j < 4; ++j) {
      const float* p0 = mr + (0 * 4 + j) * point_stride;
      const float* p1 = mr + (1 * 4 + j) * point_stride;
      const float* p2 = mr + (2 * 4 + j) * point_stride;
      const float* p3 = mr + (3 * 4 + j) * point_stride;
      float* top = sums + j * padded_count;
      float* bottom = sums + (4 + j) * padded_count;
      FASTCONV_NO_OVERLAP
      for (int64_t t = 0; t < padded_count; ++t) {
        top[t] = p0[t] + p1[t] + p2[t];
        bottom[t] = p1[t] - p2[t] - p3[t];
      }
    }
    const float b = bias != nullptr ? bias[k0 + r] : 0.f;
    for (int i = 0; i < 2; ++i) {
      const float* s0 = sums + (4 * i + 0) * padded_count;
      const float* s1 = sums + (4 * i + 1) * padded_count;
      const float* s2 = sums + (4 * i + 2) * padded_count;
      const float* s3 = sums + (4 * i + 3) * padded_count;
      float* left = out + (2 * i) * padded_count;
      float* right = out + (2 * i + 1) * padded_count;
      FASTCONV_NO_OVERLAP
      for (int64_t t = 0; t < padded_count; ++t) {
        left[t] = s0[t] + s1[t] + s2[t] + b;
        right[t] = s1[t] - s2[t] - s3[t] + b;
      }
    }
    for (int64_t next = first; next < first + count;) {
      const TileRun run = run_at(tiling, first, count, next);
      next += run.tw_end - run.tw_begin;
      const int64_t n_tiles = run.tw_end - run.tw_begin;
      // Tiles whose two output columns are both inside; the last may have only its left one.
      const int64_t whole = (std::min(OW, 2 * run.tw_end) - 2 * run.tw_begin) / 2;
      float* plane = y + (run.image * g.out_channels + k0 + r) * OH * OW;
      for (int i = 0; i < 2 && 2 * run.th + i < OH; ++i) {
        float* row = plane + (2 * run.th + i) * OW + 2 * run.tw_begin;
        const float* left = out + (2 * i) * padded_count + run.offset;
        const float* right = out + (2 * i + 1) * padded_count + run.offset;
        FASTCONV_NO_OVERLAP
        for (int64_t t = 0; t < whole; ++t) {
          row[2 * t] = left[t];
          row[2 * t + 1] = right[t];
        }
        if (whole < n_tiles) row[2 * whole] = left[whole];
      }
    }
  }
}

// Builds of the two transforms per ISA: the loops above are written for the compiler to
// vectorise, so each build is the same code compiled for wider vectors.
void transform_patches_portable(const Conv2dGeometry& g, const Tiling& tiling, const float* x,
                                int64_t first, int64_t count, int64_t padded_count, float* v,
                                float* scratch) {
  transform_patches_impl(g, tiling, x, first, count, padded_count, v, scratch);
}
void transform_products_portable(const Conv2dGeometry& g, const Tiling& tiling, const float* m,
                                 int64_t padded_count, int64_t k0, int64_t rows, int64_t first,
                                 int64_t count, const float* bias, float* y, float* scratch) {
  transform_products_impl(g, tiling, m, padded_count, k0, rows, first, count, bias, y, scratch);
}
#if FASTCONV_X86
FASTCONV_AVX2 void transform_patches_avx2(const Conv2dGeometry& g, const Tiling& tiling,
                                          const float* x, int64_t first, int64_t count,
                                          int64_t padded_count, float* v, float* scratch) {
  transform_patches_impl(g, tiling, x, first, count, padded_count, v, scratch);
}
FASTCONV_AVX2 void transform_products_avx2(const Conv2dGeometry& g, const Tiling& tiling,
                                           const float* m, int64_t padded_count, int64_t k0,
                                           int64_t rows, int64_t first, int64_t count,
                                           const float* bias, float* y, float* scratch) {
  transform_products_impl(g, tiling, m, padded_count, k0, rows, first, count, bias, y, scratch);
}
FASTCONV_AVX512 void transform_patches_avx512(const Conv2dGeometry& g, const Tiling& tiling,
                                              const float* x, int64_t first, int64_t count,
                                              int64_t padded_count, float* v, float* scratch) {
  transform_patches_impl(g, tiling, x, first, count, padded_count, v, scratch);
}
FASTCONV_AVX512 void transform_products_avx512(const Conv2dGeometry& g, const Tiling& tiling,
                                               const float* m, int64_t padded_count, int64_t k0,
                                               int64_t rows, int64_t first, int64_t count,
                                               const float* bias, float* y, float* scratch) {
  transform_products_impl(g, tiling, m, padded_count, k0, rows, first, count, bias, y, scratch);
}
#endif

int64_t patch_elements(const Conv2dGeometry& g, const Tiling& tiling) {
  return kPoints * g.in_channels * tiling.block;
}

int64_t product_elements(const Tiling& tiling) {
  return tiling.channel_groups() * kPoints * kChannelGroup * tiling.block;
}

int64_t filter_elements(const Conv2dGeometry& g) {
  return kPoints * round_up(g.out_channels, kMR) * g.in_channels;
}

}  // namespace

bool winograd_supported(const Conv2dGeometry& g) {
  return g.kernel_h == 3 && g.kernel_w == 3 && g.stride_h == 1 && g.stride_w == 1 &&
      g.dilation_h == 1 && g.dilation_w == 1 && g.groups == 1;
}

void winograd_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                      float* y) {
  if (winograd_dilated_supported(g)) {
    winograd_dilated_forward(g, x, w, bias, y);
    return;
  }
  const int64_t K = g.out_channels, C = g.in_channels, padded_k = round_up(K, kMR);
  const Tiling tiling(g, num_threads());
  const Workspace<float> filters(filter_elements(g), /*zeroed=*/true);
  transform_filters(g, w, filters.data(), padded_k);
  const GemmKernels kernels = select_gemm_kernels();
  const auto transform_patches = FASTCONV_SELECT_ISA_AVX512(transform_patches);
  const auto transform_products = FASTCONV_SELECT_ISA_AVX512(transform_products);
  parallel_for(0, tiling.tasks(), 1, [&](int64_t begin, int64_t end) {
    const Workspace<float> patches(patch_elements(g, tiling));
    const Workspace<float> products(product_elements(tiling));
    const Workspace<float> scratch(transform_scratch_elements(tiling));
    for (int64_t task = begin; task < end; ++task) {
      const auto [first, count] = tiling.tiles_of(task / tiling.row_blocks);
      const int64_t padded_count = round_up(count, kNR);
      const int64_t row_begin = task % tiling.row_blocks * tiling.row_block;
      const int64_t row_end = std::min(K, row_begin + tiling.row_block);
      transform_patches(g, tiling, x, first, count, padded_count, patches.data(), scratch.data());
      // Products of channel group q at point p: products + (q * kPoints + p) * group_stride.
      const int64_t group_stride = kChannelGroup * padded_count;
      for (int64_t p = 0; p < kPoints; ++p) {
        const float* v = patches.data() + p * C * padded_count;
        for (int64_t k0 = row_begin; k0 < row_end; k0 += kChannelGroup) {
          const int64_t rows = std::min(kChannelGroup, row_end - k0);
          const float* u = filters.data() + (p * padded_k + k0) * C;
          float* m =
              products.data() + ((k0 - row_begin) / kChannelGroup * kPoints + p) * group_stride;
          // Depth blocks of at most kKC channels keep an A and a B panel in L1; continuing a
          // tile's sum from memory does not change it.
          for (int64_t c0 = 0; c0 < C; c0 += kKC) {
            const int64_t depth = std::min(kKC, C - c0);
            for (int64_t i0 = 0; i0 < rows; i0 += kMR) {
              // Panels two at a time (the 12x32 tile), the last alone when their count is odd.
              for (int64_t panel = 0; panel * kNR < padded_count; panel += 2) {
                kernels.run((panel + 2) * kNR <= padded_count, std::min(kMR, rows - i0), depth,
                            u + i0 * C + c0, C, v + (panel * C + c0) * kNR, C * kNR,
                            m + i0 * padded_count + panel * kNR, padded_count, nullptr,
                            /*accumulate=*/c0 > 0);
              }
            }
          }
        }
      }
      for (int64_t k0 = row_begin; k0 < row_end; k0 += kChannelGroup) {
        const int64_t rows = std::min(kChannelGroup, row_end - k0);
        transform_products(
            g, tiling, products.data() + (k0 - row_begin) / kChannelGroup * kPoints * group_stride,
            padded_count, k0, rows, first, count, bias, y, scratch.data());
      }
    }
  });
}

int64_t winograd_forward_workspace_bytes(const Conv2dGeometry& g, int64_t threads) {
  if (winograd_dilated_supported(g)) return winograd_dilated_forward_workspace_bytes(g, threads);
  const Tiling tiling(g, threads);
  return workspace_bytes(filter_elements(g), sizeof(float)) +
      std::min(threads, tiling.tasks()) *
      (workspace_bytes(patch_elements(g, tiling), sizeof(float)) +
       workspace_bytes(product_elements(tiling), sizeof(float)) +
       workspace_bytes(transform_scratch_elements(tiling), sizeof(float)));
}

}  // namespace fastconv::cpu
