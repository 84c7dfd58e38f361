// The pointwise weight gradient: gw = grad_output x input^T per image, both matrices read in place.
// In NCHW a pixel plane is a row of each: gw[k][c] is the dot product of grad_output's plane k and
// the input's plane c, summed over the images. The packed GEMM would copy grad_output into 16-
// channel panels first (a pass over it as long as the GEMM on large planes with few channels: a
// 16 -> 96 layer at 112 x 112 spends more time packing than multiplying) and pad a few input
// channels to its 12-row tiles; the dot products need neither.
#include "ops/cpu/conv2d/pointwise/pointwise.h"

#include <algorithm>

#include "ops/cpu/common.h"
#include "ops/cpu/microkernels/f32_dot.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/workspace.h"

namespace fastconv::cpu {
namespace {

// Planes are taken in depth blocks of at most kMaxBlockDepth floats, and a task's outputs are at
// most kMaxBlockRowsA x kMaxBlockRowsB. Long blocks pay: blocks of 512 floats, whose rows stay in
// L2 while the task's tiles read them, ran 10-25% slower than blocks of 2,048 (AVX2, Zen 1: each
// tile's reduction of its lanes and the start of its 7 streams count per block).
constexpr int64_t kMaxBlockDepth = 2048;
constexpr int64_t kMaxBlockRowsA = 40 * kDotRowsA;
constexpr int64_t kMaxBlockRowsB = 32 * kDotRowsB;

struct PointwiseTiling {
  int64_t k_block, c_block, k_blocks, c_blocks, block_depth;

  PointwiseTiling(const Conv2dGeometry& g, int64_t threads) {
    const int64_t K = g.out_channels_per_group(), C = g.in_channels_per_group();
    k_blocks = ceil_div(K, kMaxBlockRowsA);
    c_blocks = ceil_div(C, kMaxBlockRowsB);
    // More, smaller blocks while the threads would not have equal shares of at most 8 tasks each
    // (3 tasks on 2 threads took 1.3x the time of 4); each output's sum is the same whichever
    // block computes it.
    const auto unbalanced = [&] {
      const int64_t tasks = g.groups * k_blocks * c_blocks;
      return tasks < threads || (tasks % threads != 0 && tasks < 8 * threads);
    };
    while (unbalanced()) {
      if (ceil_div(K, k_blocks) > kDotRowsA) {
        ++k_blocks;
      } else if (ceil_div(C, c_blocks) > kDotRowsB) {
        ++c_blocks;
      } else {
        break;
      }
    }
    k_block = round_up(ceil_div(K, k_blocks), kDotRowsA);
    c_block = round_up(ceil_div(C, c_blocks), kDotRowsB);
    k_blocks = ceil_div(K, k_block);
    c_blocks = ceil_div(C, c_block);
    // Equal depth blocks, whole octets but the last.
    const int64_t P = g.out_plane();
    block_depth = round_up(ceil_div(P, ceil_div(P, kMaxBlockDepth)), 8);
  }
  int64_t tasks(const Conv2dGeometry& g) const { return g.groups * k_blocks * c_blocks; }
};

}  // namespace

// Each output is summed in one order whatever the thread count: per image, its depth blocks' dot
// products (f32_dot.h) added one after another from zero, then the images' sums added in order.
// Short running totals keep the float32 error within torch's.
void pointwise_weight_backward(const Conv2dGeometry& g, const float* x, const float* gy,
                               float* gw) {
  const int64_t K = g.out_channels_per_group(), C = g.in_channels_per_group();
  const int64_t P = g.out_plane();
  const PointwiseTiling tiling(g, num_threads());
  const DotKernel dot = FASTCONV_SELECT_ISA(f32_dot_3x4);
  parallel_for(0, tiling.tasks(g), 1, [&](int64_t begin, int64_t end) {
    const Workspace<float> image_sums(tiling.k_block * tiling.c_block);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t c_index = task % tiling.c_blocks;
      const int64_t k_index = task / tiling.c_blocks % tiling.k_blocks;
      const int64_t group = task / (tiling.c_blocks * tiling.k_blocks);
      const int64_t k0 = k_index * tiling.k_block, k_count = std::min(tiling.k_block, K - k0);
      const int64_t c0 = c_index * tiling.c_block, c_count = std::min(tiling.c_block, C - c0);
      float* sums = image_sums.data();
      const int64_t ld = c_count;
      for (int64_t n = 0; n < g.batch; ++n) {
        std::fill_n(sums, k_count * ld, 0.f);
        const float* gy_rows = gy + (n * g.out_channels + group * K + k0) * P;
        const float* x_rows = x + (n * g.in_channels + group * C + c0) * P;
        for (int64_t d0 = 0; d0 < P; d0 += tiling.block_depth) {
          const int64_t depth = std::min(tiling.block_depth, P - d0);
          for (int64_t k = 0; k < k_count; k += kDotRowsA) {
            for (int64_t c = 0; c < c_count; c += kDotRowsB) {
              dot(std::min(kDotRowsA, k_count - k), std::min(kDotRowsB, c_count - c), depth,
                  gy_rows + k * P + d0, P, x_rows + c * P + d0, P, sums + k * ld + c, ld);
            }
          }
        }
        for (int64_t k = 0; k < k_count; ++k) {
          float* out = gw + (group * K + k0 + k) * C + c0;
          const float* image = sums + k * ld;
          if (n == 0) {
            std::copy_n(image, c_count, out);
          } else {
            for (int64_t c = 0; c < c_count; ++c) out[c] += image[c];
          }
        }
      }
    }
  });
}

}  // namespace fastconv::cpu
