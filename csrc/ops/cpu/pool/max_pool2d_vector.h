// The float32 max_pool2d kernels that have an AVX2 build, each with its portable counterpart of
// the same signature; the drivers (max_pool2d_kernel.cpp) pick one with FASTCONV_SELECT_ISA.
// The AVX2 builds hold in-plane indices in int32 lanes: only for planes of up to 2^31 - 1
// elements (int32_plane()).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "ops/cpu/isa.h"
#include "ops/geometry.h"

namespace fastconv::cpu {

inline bool int32_plane(const Pool2dGeometry& g) {
  return g.in_plane() <= std::numeric_limits<int32_t>::max();
}

// Forward, NCHW: planes [begin, end) (max_pool2d_forward_avx2.cpp).
void pool_planes_nchw_f32_portable(const Pool2dGeometry& g, const float* input, float* output,
                                   int64_t* indices, int64_t begin, int64_t end);
// Forward, channels_last: output pixels [begin, end) of the batch.
void pool_pixels_cl_f32_portable(const Pool2dGeometry& g, const float* input, float* output,
                                 int64_t* indices, int64_t begin, int64_t end);

// Whether backward_plane_2x2 applies: non-overlapping 2-wide windows (kernel_w = stride_w = 2,
// kernel_h = stride_h, no padding or dilation: VGG's pools), with rows of at least 8 outputs whose
// two columns lie inside (narrower planes scatter faster).
inline bool gather_2x2_applies(const Pool2dGeometry& g) {
  return g.kernel_w == 2 && g.stride_w == 2 && g.kernel_h == g.stride_h && g.pad_h == 0 &&
      g.pad_w == 0 && g.dilation_h == 1 && g.dilation_w == 1 && std::min(g.out_w, g.in_w / 2) >= 8;
}

// Backward, NCHW, one plane of such windows, written whole (max_pool2d_backward_avx2.cpp).
void backward_plane_2x2_f32_portable(const Pool2dGeometry& g, const float* gy, const int64_t* s,
                                     float* gx);

// Whether windows never overlap (each input element is in at most one): kernel <= stride, no
// dilation. Padding is at most half the kernel, so every window has a tap inside the input.
inline bool windows_disjoint(const Pool2dGeometry& g) {
  return g.kernel_h <= g.stride_h && g.kernel_w <= g.stride_w && g.dilation_h == 1 &&
      g.dilation_w == 1;
}

// Backward, channels_last, disjoint windows: input rows [row_lo, row_hi) of one image. Sets
// `matched` and `valid`: the image's totals over its bands agree when every index inside the plane
// lay in its window; otherwise the caller redoes the image with scatter_all.
void backward_band_cl_disjoint_f32_portable(const Pool2dGeometry& g, const float* gy,
                                            const int64_t* s, float* gx, int64_t row_lo,
                                            int64_t row_hi, int64_t& matched, int64_t& valid);

#if FASTCONV_X86
void pool_planes_nchw_f32_avx2(const Pool2dGeometry& g, const float* input, float* output,
                               int64_t* indices, int64_t begin, int64_t end);
void pool_pixels_cl_f32_avx2(const Pool2dGeometry& g, const float* input, float* output,
                             int64_t* indices, int64_t begin, int64_t end);
void backward_plane_2x2_f32_avx2(const Pool2dGeometry& g, const float* gy, const int64_t* s,
                                 float* gx);
void backward_band_cl_disjoint_f32_avx2(const Pool2dGeometry& g, const float* gy, const int64_t* s,
                                        float* gx, int64_t row_lo, int64_t row_hi, int64_t& matched,
                                        int64_t& valid);
#endif

}  // namespace fastconv::cpu
