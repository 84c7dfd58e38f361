// Winograd F(2x2, 3x3) weight gradient (winograd.h). The forward's 2x2 output tile is
// Y = At [ U . V ] A with U = G g Gt and V = Bt d B (winograd_forward.cpp), so the gradient of a
// filter is
//
//   dg = Gt [ sum over tiles of  Z . V ]  G,    Z = A dY At   (dY: the tile's 2x2 grad_output)
//
// and at each of the 16 transform points the sum over tiles is a GEMM, depth = tiles:
// M[p] (C x K) = V[p] (C x tiles) * Z[p]^T (tiles x K). V[p] is the A operand, row-major (the
// input transform runs along a row of tiles, so its results come out tile after tile); Z[p] is
// packed B, 16 output channels per panel, transformed from grad_output packed once per call in
// 16-channel panels (pack_grad_output), so that each tile's 2x2 pixels are four vectors.
//
// A task owns a block of input channels and a block of output channels and goes over every tile
// in order, a block of tile rows at a time (transforming its own V and Z): each element of M is
// summed over the tiles in the same order whatever the thread count.

#include <algorithm>
#include <array>

#include "ops/cpu/common.h"
#include "ops/cpu/conv2d/packed/packed.h"
#include "ops/cpu/conv2d/packed/packed_gemm.h"
#include "ops/cpu/conv2d/winograd/winograd.h"
#include "ops/cpu/isa.h"
#include "ops/cpu/microkernels/f32_gemm.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"

namespace fastconv::cpu {
namespace {

constexpr int64_t kPoints = 16;
constexpr int64_t kTilesPerBlock = 256;  // about: whole rows of tiles
constexpr int64_t kMaxChannelBlock = 128;

struct Tiling {
  int64_t tiles_h, tiles_w, tile_rows, rows_per_block, blocks;
  int64_t c_block, c_blocks, k_block, k_blocks;

  Tiling(const Conv2dGeometry& g, int64_t threads) {
    tiles_h = (g.out_h + 1) / 2, tiles_w = (g.out_w + 1) / 2;
    tile_rows = g.batch * tiles_h;  // rows of tiles over the batch, image after image
    rows_per_block = std::max<int64_t>(1, kTilesPerBlock / tiles_w);
    blocks = ceil_div(tile_rows, rows_per_block);
    // Channel blocks: at most kMaxChannelBlock, halved (input channels first) until every thread
    // has work. A split only regroups whole rows and columns of M.
    c_block = std::min(round_up(g.in_channels, kMR), round_up(kMaxChannelBlock, kMR));
    k_block = std::min(round_up(g.out_channels, 2 * kNR), kMaxChannelBlock);
    while (ceil_div(g.in_channels, c_block) * ceil_div(g.out_channels, k_block) < threads) {
      if (c_block > kMR && c_block >= k_block) {
        c_block = round_up(c_block / 2, kMR);
      } else if (k_block > 2 * kNR) {
        k_block = round_up(k_block / 2, 2 * kNR);
      } else {
        break;
      }
    }
    c_blocks = ceil_div(g.in_channels, c_block);
    k_blocks = ceil_div(g.out_channels, k_block);
  }
};

// V[p][c][t] for the channels [c0, c0 + rows) (rows past C zero) and the tiles of tile rows
// [row0, row1): t numbers them row after row. Per input row, its even and odd columns are split
// apart (zero outside the image), so that tile tw's patch columns are even[tw], odd[tw],
// even[tw + 1], odd[tw + 1]: the transform then runs over a row of tiles at unit stride.
FASTCONV_ALWAYS_INLINE void transform_inputs_impl(const Conv2dGeometry& g, const Tiling& tiling,
                                                  const float* x, int64_t c0, int64_t rows,
                                                  int64_t row0, int64_t row1, int64_t depth,
                                                  float* v, float* scratch) {
  const int64_t tw_count = tiling.tiles_w, span = tw_count + 1;
  const int64_t point_stride = point_stride_for(rows * depth);
  float* even = scratch;         // 4 x span
  float* odd = even + 4 * span;  // 4 x span
  // Columns 2m - pad_w (even[m]) and 2m + 1 - pad_w (odd[m]) inside the row: m in
  // [even_begin, even_end) and [odd_begin, odd_end).
  const auto first_m = [&](int64_t shift) {  // smallest m with 2m + shift - pad_w >= 0
    return std::clamp<int64_t>((g.pad_w - shift + 1) / 2, 0, span);
  };
  const auto end_m = [&](int64_t shift) {  // smallest m with 2m + shift - pad_w >= in_w
    return std::clamp<int64_t>((g.in_w + g.pad_w - shift + 1) / 2, 0, span);
  };
  const int64_t even_begin = first_m(0), even_end = std::max(even_begin, end_m(0));
  const int64_t odd_begin = first_m(1), odd_end = std::max(odd_begin, end_m(1));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = c0 + r;
    for (int64_t tile_row = row0; tile_row < row1; ++tile_row) {
      float* out = v + r * depth + (tile_row - row0) * tw_count;
      if (c >= g.in_channels) {
        for (int64_t p = 0; p < kPoints; ++p) std::fill_n(out + p * point_stride, tw_count, 0.f);
        continue;
      }
      const int64_t n = tile_row / tiling.tiles_h, th = tile_row % tiling.tiles_h;
      const float* plane = x + (n * g.in_channels + c) * g.in_plane();
      for (int64_t i = 0; i < 4; ++i) {
        const int64_t ih = 2 * th - g.pad_h + i;
        float* e = even + i * span;
        float* o = odd + i * span;
        if (ih < 0 || ih >= g.in_h) {
          std::fill_n(e, span, 0.f);
          std::fill_n(o, span, 0.f);
          continue;
        }
        const float* in = plane + ih * g.in_w;  // in[2m - pad_w] is even[m]
        std::fill_n(e, even_begin, 0.f);
        FASTCONV_NO_OVERLAP
        for (int64_t m = even_begin; m < even_end; ++m) e[m] = in[2 * m - g.pad_w];
        std::fill(e + even_end, e + span, 0.f);
        std::fill_n(o, odd_begin, 0.f);
        FASTCONV_NO_OVERLAP
        for (int64_t m = odd_begin; m < odd_end; ++m) o[m] = in[2 * m + 1 - g.pad_w];
        std::fill(o + odd_end, o + span, 0.f);
      }
      const float *e0 = even, *e1 = even + span, *e2 = even + 2 * span, *e3 = even + 3 * span;
      const float *o0 = odd, *o1 = odd + span, *o2 = odd + 2 * span, *o3 = odd + 3 * span;
      FASTCONV_NO_OVERLAP
      for (int64_t tw = 0; tw < tw_count; ++tw) {
        // Bt d: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3, for each patch column j.
        const float b00 = e0[tw] - e2[tw], b01 = o0[tw] - o2[tw];
        const float b02 = e0[tw + 1] - e2[tw + 1], b03 = o0[tw + 1] - o2[tw + 1];
        const float b10 = e1[tw] + e2[tw], b11 = o1[tw] + o2[tw];
        const float b12 = e1[tw + 1] + e2[tw + 1], b13 = o1[tw + 1] + o2[tw + 1];
        const float b20 = e2[tw] - e1[tw], b21 = o2[tw] - o1[tw];
        const float b22 = e2[tw + 1] - e1[tw + 1], b23 = o2[tw + 1] - o1[tw + 1];
        const float b30 = e1[tw] - e3[tw], b31 = o1[tw] - o3[tw];
        const float b32 = e1[tw + 1] - e3[tw + 1], b33 = o1[tw + 1] - o3[tw + 1];
        // (Bt d) B: the same over the columns.
        out[0 * point_stride + tw] = b00 - b02;
        out[1 * point_stride + tw] = b01 + b02;
        out[2 * point_stride + tw] = b02 - b01;
        out[3 * point_stride + tw] = b01 - b03;
        out[4 * point_stride + tw] = b10 - b12;
        out[5 * point_stride + tw] = b11 + b12;
        out[6 * point_stride + tw] = b12 - b11;
        out[7 * point_stride + tw] = b11 - b13;
        out[8 * point_stride + tw] = b20 - b22;
        out[9 * point_stride + tw] = b21 + b22;
        out[10 * point_stride + tw] = b22 - b21;
        out[11 * point_stride + tw] = b21 - b23;
        out[12 * point_stride + tw] = b30 - b32;
        out[13 * point_stride + tw] = b31 + b32;
        out[14 * point_stride + tw] = b32 - b31;
        out[15 * point_stride + tw] = b31 - b33;
      }
    }
  }
}

// Z[p] of the tiles of tile rows [row0, row1) for the output-channel panels [panel0, panel1), as
// packed B: z[((p * panels + q) * depth + t) * 16 + lane], from packed_gy (pack_grad_output: panel
// q, pixel n * P + oh * out_w + ow, 16 lanes); pixels past the output are zero.
FASTCONV_ALWAYS_INLINE void transform_grads_impl(const Conv2dGeometry& g, const Tiling& tiling,
                                                 const float* packed_gy, int64_t panel0,
                                                 int64_t panel1, int64_t row0, int64_t row1,
                                                 int64_t depth, float* z) {
  const int64_t P = g.out_plane(), panels = panel1 - panel0;
  const int64_t point_stride = point_stride_for(panels * depth * kNR);
  alignas(64) static constexpr float kZeros[kNR] = {};
  for (int64_t q = panel0; q < panel1; ++q) {
    const float* gy_panel = packed_gy + q * g.batch * P * kNR;
    for (int64_t tile_row = row0; tile_row < row1; ++tile_row) {
      const int64_t n = tile_row / tiling.tiles_h, th = tile_row % tiling.tiles_h;
      const int64_t oh = 2 * th;
      const float* row_0 = gy_panel + (n * P + oh * g.out_w) * kNR;
      const float* row_1 = oh + 1 < g.out_h ? row_0 + g.out_w * kNR : nullptr;
      for (int64_t tw = 0; tw < tiling.tiles_w; ++tw) {
        const int64_t ow = 2 * tw;
        const bool right = ow + 1 < g.out_w;
        const float* y00 = row_0 + ow * kNR;
        const float* y01 = right ? y00 + kNR : kZeros;
        const float* y10 = row_1 != nullptr ? row_1 + ow * kNR : kZeros;
        const float* y11 = row_1 != nullptr && right ? y10 + kNR : kZeros;
        float* out = z + ((q - panel0) * depth + (tile_row - row0) * tiling.tiles_w + tw) * kNR;
        FASTCONV_NO_OVERLAP
        for (int64_t l = 0; l < kNR; ++l) {
          // A dY: rows y0, y0 + y1, y0 - y1, -y1; then the same over the columns.
          const float r00 = y00[l], r01 = y01[l];
          const float r10 = y00[l] + y10[l], r11 = y01[l] + y11[l];
          const float r20 = y00[l] - y10[l], r21 = y01[l] - y11[l];
          const float r30 = -y10[l], r31 = -y11[l];
          out[0 * point_stride + l] = r00;
          out[1 * point_stride + l] = r00 + r01;
          out[2 * point_stride + l] = r00 - r01;
          out[3 * point_stride + l] = -r01;
          out[4 * point_stride + l] = r10;
          out[5 * point_stride + l] = r10 + r11;
          out[6 * point_stride + l] = r10 - r11;
          out[7 * point_stride + l] = -r11;
          out[8 * point_stride + l] = r20;
          out[9 * point_stride + l] = r20 + r21;
          out[10 * point_stride + l] = r20 - r21;
          out[11 * point_stride + l] = -r21;
          out[12 * point_stride + l] = r30;
          out[13 * point_stride + l] = r30 + r31;
          out[14 * point_stride + l] = r30 - r31;
          out[15 * point_stride + l] = -r31;
        }
      }
    }
  }
}

// The transforms' builds, one per ISA (isa.h): vector code of the width the CPU has.
using TransformInputs = void (*)(const Conv2dGeometry&, const Tiling&, const float*, int64_t,
                                 int64_t, int64_t, int64_t, int64_t, float*, float*);
using TransformGrads = void (*)(const Conv2dGeometry&, const Tiling&, const float*, int64_t,
                                int64_t, int64_t, int64_t, int64_t, float*);

void transform_inputs_portable(const Conv2dGeometry& g, const Tiling& tiling, const float* x,
                               int64_t c0, int64_t rows, int64_t row0, int64_t row1, int64_t depth,
                               float* v, float* scratch) {
  transform_inputs_impl(g, tiling, x, c0, rows, row0, row1, depth, v, scratch);
}
void transform_grads_portable(const Conv2dGeometry& g, const Tiling& tiling, const float* packed_gy,
                              int64_t panel0, int64_t panel1, int64_t row0, int64_t row1,
                              int64_t depth, float* z) {
  transform_grads_impl(g, tiling, packed_gy, panel0, panel1, row0, row1, depth, z);
}
#if FASTCONV_X86
FASTCONV_AVX2 void transform_inputs_avx2(const Conv2dGeometry& g, const Tiling& tiling,
                                         const float* x, int64_t c0, int64_t rows, int64_t row0,
                                         int64_t row1, int64_t depth, float* v, float* scratch) {
  transform_inputs_impl(g, tiling, x, c0, rows, row0, row1, depth, v, scratch);
}
FASTCONV_AVX2 void transform_grads_avx2(const Conv2dGeometry& g, const Tiling& tiling,
                                        const float* packed_gy, int64_t panel0, int64_t panel1,
                                        int64_t row0, int64_t row1, int64_t depth, float* z) {
  transform_grads_impl(g, tiling, packed_gy, panel0, panel1, row0, row1, depth, z);
}
FASTCONV_AVX512 void transform_inputs_avx512(const Conv2dGeometry& g, const Tiling& tiling,
                                             const float* x, int64_t c0, int64_t rows, int64_t row0,
                                             int64_t row1, int64_t depth, float* v,
                                             float* scratch) {
  transform_inputs_impl(g, tiling, x, c0, rows, row0, row1, depth, v, scratch);
}
FASTCONV_AVX512 void transform_grads_avx512(const Conv2dGeometry& g, const Tiling& tiling,
                                            const float* packed_gy, int64_t panel0, int64_t panel1,
                                            int64_t row0, int64_t row1, int64_t depth, float* z) {
  transform_grads_impl(g, tiling, packed_gy, panel0, panel1, row0, row1, depth, z);
}
#endif

// gw[k][c] = Gt M G, M the 4x4 of m[p * point_stride] (p = 4 i + j).
void transform_back(const float* m, int64_t point_stride, float* gw) {
  float r[3][4];  // Gt M
  for (int j = 0; j < 4; ++j) {
    const float m0 = m[(0 + j) * point_stride], m1 = m[(4 + j) * point_stride],
                m2 = m[(8 + j) * point_stride], m3 = m[(12 + j) * point_stride];
    r[0][j] = m0 + 0.5f * (m1 + m2);
    r[1][j] = 0.5f * (m1 - m2);
    r[2][j] = 0.5f * (m1 + m2) + m3;
  }
  for (int i = 0; i < 3; ++i) {  // (Gt M) G
    gw[i * 3 + 0] = r[i][0] + 0.5f * (r[i][1] + r[i][2]);
    gw[i * 3 + 1] = 0.5f * (r[i][1] - r[i][2]);
    gw[i * 3 + 2] = 0.5f * (r[i][1] + r[i][2]) + r[i][3];
  }
}

}  // namespace

void winograd_weight_backward(const Conv2dGeometry& g, const float* x, const float* gy, float* gw) {
  const int64_t K = g.out_channels, C = g.in_channels;
  const Tiling tiling(g, num_threads());
  const int64_t k_padded = round_up(K, kNR);
  const Workspace<float> packed_gy(g.batch * k_padded * g.out_plane());
  pack_grad_output(g, gy, k_padded, packed_gy.data());
  const GemmKernels kernels = select_gemm_kernels();
  const TransformInputs transform_inputs = FASTCONV_SELECT_ISA_AVX512(transform_inputs);
  const TransformGrads transform_grads = FASTCONV_SELECT_ISA_AVX512(transform_grads);
  const int64_t max_depth = tiling.rows_per_block * tiling.tiles_w;
  parallel_for(0, tiling.c_blocks * tiling.k_blocks, 1, [&](int64_t begin, int64_t end) {
    const int64_t c_rows = tiling.c_block, k_cols = tiling.k_block;  // M block: c_rows x k_cols
    const Workspace<float> v(kPoints * point_stride_for(c_rows * max_depth));
    const Workspace<float> z(kPoints * point_stride_for(k_cols * max_depth));
    const int64_t m_stride = point_stride_for(c_rows * k_cols);
    const Workspace<float> m(kPoints * m_stride);
    const Workspace<float> scratch(8 * (tiling.tiles_w + 1));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t c0 = task / tiling.k_blocks * tiling.c_block;
      const int64_t k0 = task % tiling.k_blocks * tiling.k_block;
      const int64_t rows = std::min(c_rows, round_up(C - c0, kMR));
      const int64_t cols = std::min(k_cols, k_padded - k0);  // a multiple of kNR
      const int64_t panels = cols / kNR;
      for (int64_t block = 0; block < tiling.blocks; ++block) {
        const int64_t row0 = block * tiling.rows_per_block;
        const int64_t row1 = std::min(tiling.tile_rows, row0 + tiling.rows_per_block);
        const int64_t depth = (row1 - row0) * tiling.tiles_w;
        transform_inputs(g, tiling, x, c0, rows, row0, row1, depth, v.data(), scratch.data());
        transform_grads(g, tiling, packed_gy.data(), k0 / kNR, k0 / kNR + panels, row0, row1, depth,
                        z.data());
        for (int64_t p = 0; p < kPoints; ++p) {
          const float* v_p = v.data() + p * point_stride_for(rows * depth);
          const float* z_p = z.data() + p * point_stride_for(panels * depth * kNR);
          float* m_p = m.data() + p * m_stride;
          for (int64_t q = 0; q < panels; q += 2) {
            for (int64_t i0 = 0; i0 < rows; i0 += kMR) {
              kernels.run(q + 1 < panels, kMR, depth, v_p + i0 * depth, depth,
                          z_p + q * depth * kNR, depth * kNR, m_p + i0 * k_cols + q * kNR, k_cols,
                          nullptr, /*accumulate=*/block > 0);
            }
          }
        }
      }
      for (int64_t c = c0; c < std::min(C, c0 + rows); ++c) {
        for (int64_t k = k0; k < std::min(K, k0 + cols); ++k) {
          transform_back(m.data() + (c - c0) * k_cols + (k - k0), m_stride, gw + (k * C + c) * 9);
        }
      }
    }
  });
}

}  // namespace fastconv::cpu
