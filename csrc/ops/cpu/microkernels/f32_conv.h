// The register-blocked inner kernels of the direct convolution (conv2d/direct/direct_forward.cpp
// and direct_weight_backward.cpp): a forward tile of 8 output channels x 48 output pixels (three
// 16-pixel vectors) summed straight from the zero-padded input planes, with no im2col; and a
// weight-gradient tile of 2 output channels x 9 taps of one input channel, 16 lanes each. Builds,
// one per file: f32_conv_8x48_{portable,avx2,avx512}.cpp and f32_conv_weight_2x9_{...}.cpp; pick
// one with FASTCONV_SELECT_ISA_AVX512(f32_conv_8x48) or (f32_conv_weight_2x9) (isa.h).
//
// The tile's pixels are consecutive positions q of a grid out_w + (the taps' reach) wide (a
// padded input row, at stride 1), so that tap t of every pixel reads in[q + tap_offsets[t]]: one
// unaligned vector load per 16 pixels and tap, each feeding 8 FMAs (one per output channel, the
// weight broadcast). The grid's extra columns are computed and not stored.
//
// Every output is start + the products over (input channel, tap) in that order, each added with
// one rounding (an FMA) in the AVX2 and AVX-512 builds: those give bitwise the same results. A
// call may cover a block of the input channels and add (`accumulate`) its sum, summed from zero,
// to the outputs the calls for the blocks before stored: blocked sums, so that a deep layer's
// output is not one running total over all its channels.
#pragma once

#include <cstdint>

#include "ops/cpu/isa.h"

namespace fastconv::cpu {

constexpr int64_t kConvTileChannels = 8;
constexpr int64_t kConvTileLanes = 16;   // pixels per vector
constexpr int64_t kConvTileVectors = 3;  // at most, per tile

// Where a tile's pixels go: per 16-pixel vector, runs of lanes that land in one output row, each
// stored with one masked store at out + offset (the address of lane 0, which the mask may skip).
struct ConvTileStores {
  int64_t vectors;  // 1 .. kConvTileVectors
  int64_t runs[kConvTileVectors];
  int64_t offset[kConvTileVectors][kConvTileLanes];
  uint32_t mask[kConvTileVectors][kConvTileLanes];  // bit l: lane l is stored
};

struct ConvTile {
  const float* input;      // input channel 0 at the tile's first pixel
  int64_t channel_stride;  // floats from one input channel's planes to the next
  int64_t channels;
  const int64_t* tap_offsets;  // per tap, relative to the pixel
  int64_t taps;
  const float* weights;  // [channels][taps][kConvTileChannels]
  const float* start;    // kConvTileChannels values (a bias), or null for zeros
  float* output;         // output channel 0 of the tile; stores.offset is relative to it
  int64_t output_channel_stride;
  int64_t rows;     // output channels kept, 1 .. kConvTileChannels
  bool accumulate;  // add the sum to the stored outputs (of the earlier blocks of channels)
};

using ConvMicroKernel = void (*)(const ConvTile& tile, const ConvTileStores& stores);

void f32_conv_8x48_portable(const ConvTile& tile, const ConvTileStores& stores);
#if FASTCONV_X86
void f32_conv_8x48_avx2(const ConvTile& tile, const ConvTileStores& stores);
void f32_conv_8x48_avx512(const ConvTile& tile, const ConvTileStores& stores);
#endif

// The weight gradient's tile: for output channels r < 2 and taps t < 9 of one input channel,
// sums[r][t][l] += grad_output[n][r][16 v + l] * input[n][16 v + l + tap_offsets[t]] over the
// images n < images and vectors v < vectors in that order, lane by lane, for the lanes of output
// pixels (each with one rounding, an FMA, in the AVX2 and AVX-512
// builds: bitwise the same sums); the caller adds up the 16 lanes. Every row and tap is computed:
// a caller with fewer repeats a row's pointer or a tap's offset and ignores those sums.
constexpr int64_t kWeightTileChannels = 2;
constexpr int64_t kWeightTileTaps = 9;

struct ConvWeightTile {
  const float* grad_output;          // output channel 0 of the tile, image 0
  int64_t grad_output_stride;        // floats from one output channel to the next
  int64_t grad_output_image_stride;  // and from one image to the next
  const float* input;                // the input channel's planes, image 0
  int64_t input_image_stride;
  const int64_t* tap_offsets;  // kWeightTileTaps of them
  // Per vector, bit l set where pixel 16 v + l is an output pixel: the other lanes of grad_output
  // and input are read as zeros (an input value there, met by a pixel outside the output, may be
  // an inf, and 0 x inf would poison the sum).
  const uint16_t* lanes;
  // Set, a build may read the other lanes of the input as they are, unmasked: the same sums where
  // every input value the tile reads is finite (0 x a finite value adds nothing). A caller that
  // sets it computes a tile whose sums are not all finite again without it.
  bool finite_input = false;
  int64_t images, vectors;
  float* sums;  // [kWeightTileChannels][kWeightTileTaps][kConvTileLanes]
};

using ConvWeightMicroKernel = void (*)(const ConvWeightTile& tile);

void f32_conv_weight_2x9_portable(const ConvWeightTile& tile);
#if FASTCONV_X86
void f32_conv_weight_2x9_avx2(const ConvWeightTile& tile);
void f32_conv_weight_2x9_avx512(const ConvWeightTile& tile);
#endif

}  // namespace fastconv::cpu
