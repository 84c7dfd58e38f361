// The packed GEMM's im2col step (conv2d/packed/pack_columns.h): one row of the column matrix
// (one input channel and tap) written into the packed-B panels of a block of output pixels, each
// panel's 16 values gathered from the input by precomputed offsets. Gathering pays where an
// output row holds fewer pixels than a panel (ResNet's 14x14 and 7x7 stages), whose panels span
// rows and images, so that copying them run by run costs more. Builds, one per file:
// f32_gather_panels_{portable,avx2,avx512}.cpp; pick one with
// FASTCONV_SELECT_ISA_AVX512(f32_gather_panels) (isa.h).
//
// Every build writes the same values (a copy), so the choice never changes a result.
#pragma once

#include <cstdint>

#include "ops/cpu/isa.h"

namespace fastconv::cpu {

constexpr int64_t kGatherLanes = 16;  // a packed-B panel's width (kNR)

// For p < panels: out[p * out_stride + j] = base[offsets[16 p + j]] where bit j of masks[p] is
// set, else 0 (lanes reading padding, or past the block); a panel with consecutive[p] reads
// base[offsets[16 p] + j], all 16 lanes, as one vector. out is 64-byte aligned, out_stride a
// multiple of 16.
using GatherPanels = void (*)(const float* base, const int64_t* offsets, const uint16_t* masks,
                              const uint8_t* consecutive, int64_t panels, float* out,
                              int64_t out_stride);

void f32_gather_panels_portable(const float* base, const int64_t* offsets, const uint16_t* masks,
                                const uint8_t* consecutive, int64_t panels, float* out,
                                int64_t out_stride);
#if FASTCONV_X86
void f32_gather_panels_avx2(const float* base, const int64_t* offsets, const uint16_t* masks,
                            const uint8_t* consecutive, int64_t panels, float* out,
                            int64_t out_stride);
void f32_gather_panels_avx512(const float* base, const int64_t* offsets, const uint16_t* masks,
                              const uint8_t* consecutive, int64_t panels, float* out,
                              int64_t out_stride);
#endif

}  // namespace fastconv::cpu
