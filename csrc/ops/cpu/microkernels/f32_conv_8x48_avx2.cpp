// The 8x48 direct-convolution micro-kernel for AVX2+FMA. Its 16 ymm registers hold 4 output
// channels x 24 pixels (12 accumulators, three input vectors, one broadcast weight), so it runs
// the tile as up to 2 x 2 such pieces, each over the whole depth: every output is summed as the
// AVX-512 build sums it.
#include "ops/cpu/microkernels/f32_conv.h"

namespace fastconv::cpu {

#if FASTCONV_X86
namespace {

constexpr int kRows = static_cast<int>(kConvTileChannels);

// The lanes of ymm vector `vector` that run `run` stores (bit l: lane l): lanes 8 (vector % 2) ..
// + 7 of the 16-lane vector vector / 2.
FASTCONV_AVX2_INLINE int lanes_of(const ConvTileStores& stores, int vector, int64_t run) {
  return static_cast<int>(stores.mask[vector / 2][run] >> (8 * (vector % 2))) & 0xff;
}

// Output channels [row0, row0 + 4) x ymm vectors [vector0, vector0 + kVectors) of the tile.
template <int kVectors>
FASTCONV_AVX2_INLINE void piece_4xv(const ConvTile& t, const ConvTileStores& stores, int row0,
                                    int vector0) {
  __m256 acc[4][kVectors];
  for (int m = 0; m < 4; ++m) {
    const __m256 start =
        t.start != nullptr ? _mm256_set1_ps(t.start[row0 + m]) : _mm256_setzero_ps();
    for (int j = 0; j < kVectors; ++j) acc[m][j] = start;
  }
  const float* w = t.weights + row0;
  const int64_t* offsets = t.tap_offsets;
  for (int64_t c = 0; c < t.channels; ++c) {
    const float* plane = t.input + c * t.channel_stride + vector0 * 8;
    for (int64_t tap = 0; tap < t.taps; ++tap, w += kRows) {
      const float* in = plane + offsets[tap];
      __m256 v[kVectors];
      for (int j = 0; j < kVectors; ++j) v[j] = _mm256_loadu_ps(in + j * 8);
      for (int m = 0; m < 4; ++m) {
        const __m256 wm = _mm256_broadcast_ss(w + m);
        for (int j = 0; j < kVectors; ++j) acc[m][j] = _mm256_fmadd_ps(wm, v[j], acc[m][j]);
      }
    }
  }
  // The sums leave the registers through a buffer: indexing acc by the run-time row count below
  // would make the compiler keep acc in memory, storing every accumulator at every step.
  alignas(32) float sums[4][kVectors][8];
  for (int m = 0; m < 4; ++m) {
    for (int j = 0; j < kVectors; ++j) _mm256_store_ps(sums[m][j], acc[m][j]);
  }
  for (int m = 0; m < 4 && row0 + m < t.rows; ++m) {
    float* out = t.output + (row0 + m) * t.output_channel_stride;
    for (int j = 0; j < kVectors; ++j) {
      const int vector = vector0 + j;
      for (int64_t r = 0; r < stores.runs[vector / 2]; ++r) {
        float* target = out + stores.offset[vector / 2][r] + 8 * (vector % 2);
        const int lanes = lanes_of(stores, vector, r);
        // Whole vectors by plain loads and stores, the lanes of a partial one by scalars: masked
        // moves are microcoded on AMD's Zen (a masked store costs tens of cycles).
        if (lanes == 0xff) {
          const __m256 sum = _mm256_load_ps(sums[m][j]);
          _mm256_storeu_ps(target,
                           t.accumulate ? _mm256_add_ps(_mm256_loadu_ps(target), sum) : sum);
          continue;
        }
        for (int l = 0; l < 8; ++l) {
          if ((lanes >> l & 1) != 0) {
            target[l] = t.accumulate ? target[l] + sums[m][j][l] : sums[m][j][l];
          }
        }
      }
    }
  }
}

template <int kVectors>
FASTCONV_AVX2_INLINE void half_rows(const ConvTile& t, const ConvTileStores& stores, int row0) {
  // ymm vectors 2 * stores.vectors: 6 = 3 + 3, 4 = 2 + 2, 2.
  if (kVectors == 3) {
    piece_4xv<3>(t, stores, row0, 0);
    piece_4xv<3>(t, stores, row0, 3);
  } else if (kVectors == 2) {
    piece_4xv<2>(t, stores, row0, 0);
    piece_4xv<2>(t, stores, row0, 2);
  } else {
    piece_4xv<2>(t, stores, row0, 0);
  }
}

}  // namespace

FASTCONV_AVX2 void f32_conv_8x48_avx2(const ConvTile& tile, const ConvTileStores& stores) {
  for (int row0 = 0; row0 < kRows && row0 < tile.rows; row0 += 4) {
    switch (stores.vectors) {
      case 3:
        half_rows<3>(tile, stores, row0);
        break;
      case 2:
        half_rows<2>(tile, stores, row0);
        break;
      default:
        half_rows<1>(tile, stores, row0);
        break;
    }
  }
}
#endif

}  // namespace fastconv::cpu
