// The AVX2 builds of the float32 max_pool2d backward for disjoint windows (max_pool2d_vector.h):
// a gather instead of the scatter. Each input element lies in at most one window, so its gradient
// is that window's when the window's index names it, else 0: every element is written once, in
// order, with no zeroing pass and no read-modify-write. Indices that the forward would not give
// (outside their window) are detected by counting, and the plane or image is then redone by the
// generic scatter.
#include "ops/cpu/pool/max_pool2d_generic.h"
#include "ops/cpu/pool/max_pool2d_vector.h"

namespace fastconv::cpu {

#if FASTCONV_X86
namespace {

// Backward of non-overlapping 2-wide windows (kernel_w = stride_w = 2, kernel_h = stride_h, no
// padding or dilation: VGG's pools), float32, one plane, as a gather: each input element is in at
// most one window, so its gradient is that window's when the index points at it, else 0. Writes
// every element of the plane once, 16 at a time; no zeroing pass, no read-modify-write, no
// data-dependent branch. The sums are the scatter's (0 + g). Returns false, having written the
// plane, if some index inside the plane points outside its window (then the scatter must redo
// it): it counts the indices that matched and those inside the plane.
//
// One block: outputs [ow, ow + 8) of row oh, input row ih = oh * kernel_h + kh, input columns
// [2 ow, 2 ow + 16). Lanes below `skip` were done by the previous block (the last block of a row
// overlaps it): written again alike, but not counted again.
struct GatherCounts {
  __m256i matched, valid;
};

template <bool kOverlap>
FASTCONV_AVX2_INLINE void gather_block_2x2(const int64_t* s, const float* gy, float* gx,
                                           int64_t first_index, bool count_valid, int skip,
                                           __m256i plane_size, GatherCounts& counts) {
  const __m256i minus_one = _mm256_set1_epi64x(-1);
  const __m256i s_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s));
  const __m256i s_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 4));
  __m256 grad = _mm256_loadu_ps(gy);
  const __m256i expected_lo =
      _mm256_add_epi64(_mm256_set1_epi64x(first_index), _mm256_setr_epi64x(0, 2, 4, 6));
  const __m256i expected_hi = _mm256_add_epi64(expected_lo, _mm256_set1_epi64x(8));
  const __m256i one = _mm256_set1_epi64x(1);
  const __m256i m0_lo = _mm256_cmpeq_epi64(s_lo, expected_lo);
  const __m256i m0_hi = _mm256_cmpeq_epi64(s_hi, expected_hi);
  const __m256i m1_lo = _mm256_cmpeq_epi64(s_lo, _mm256_add_epi64(expected_lo, one));
  const __m256i m1_hi = _mm256_cmpeq_epi64(s_hi, _mm256_add_epi64(expected_hi, one));
  __m256i matched_lo = _mm256_add_epi64(m0_lo, m1_lo), matched_hi = _mm256_add_epi64(m0_hi, m1_hi);
  __m256i valid_lo = _mm256_setzero_si256(), valid_hi = _mm256_setzero_si256();
  if (count_valid) {  // 0 <= s < plane size
    valid_lo =
        _mm256_and_si256(_mm256_cmpgt_epi64(s_lo, minus_one), _mm256_cmpgt_epi64(plane_size, s_lo));
    valid_hi =
        _mm256_and_si256(_mm256_cmpgt_epi64(s_hi, minus_one), _mm256_cmpgt_epi64(plane_size, s_hi));
  }
  if constexpr (kOverlap) {
    const __m256i fresh_lo =
        _mm256_cmpgt_epi64(_mm256_setr_epi64x(0, 1, 2, 3), _mm256_set1_epi64x(skip - 1));
    const __m256i fresh_hi =
        _mm256_cmpgt_epi64(_mm256_setr_epi64x(4, 5, 6, 7), _mm256_set1_epi64x(skip - 1));
    matched_lo = _mm256_and_si256(matched_lo, fresh_lo);
    matched_hi = _mm256_and_si256(matched_hi, fresh_hi);
    valid_lo = _mm256_and_si256(valid_lo, fresh_lo);
    valid_hi = _mm256_and_si256(valid_hi, fresh_hi);
  }
  counts.matched = _mm256_sub_epi64(counts.matched, _mm256_add_epi64(matched_lo, matched_hi));
  counts.valid = _mm256_sub_epi64(counts.valid, _mm256_add_epi64(valid_lo, valid_hi));
  // Masks in lane order [0, 1, 4, 5, 2, 3, 6, 7]; the gradients put in that order too, so that
  // interleaving the two columns' values gives the 16 input columns in order.
  const __m256 m0 = _mm256_shuffle_ps(_mm256_castsi256_ps(m0_lo), _mm256_castsi256_ps(m0_hi),
                                      _MM_SHUFFLE(2, 0, 2, 0));
  const __m256 m1 = _mm256_shuffle_ps(_mm256_castsi256_ps(m1_lo), _mm256_castsi256_ps(m1_hi),
                                      _MM_SHUFFLE(2, 0, 2, 0));
  grad = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(grad), _MM_SHUFFLE(3, 1, 2, 0)));
  const __m256 zero = _mm256_setzero_ps();
  const __m256 v0 = _mm256_add_ps(_mm256_and_ps(grad, m0), zero);  // 0 + g: as the scatter
  const __m256 v1 = _mm256_add_ps(_mm256_and_ps(grad, m1), zero);
  _mm256_storeu_ps(gx, _mm256_unpacklo_ps(v0, v1));
  _mm256_storeu_ps(gx + 8, _mm256_unpackhi_ps(v0, v1));
}

FASTCONV_AVX2 bool gather_plane_2x2(const Pool2dGeometry& g, const float* gy, const int64_t* s,
                                    float* gx) {
  const int64_t W = g.in_w, H = g.in_h, KH = g.kernel_h, in_plane = g.in_plane();
  const int64_t both_inside = std::min(g.out_w, W / 2);  // outputs with both columns inside
  const int64_t full = both_inside / 8 * 8;
  const int rest = static_cast<int>(both_inside - full);
  const __m256i plane_size = _mm256_set1_epi64x(in_plane);
  GatherCounts counts{_mm256_setzero_si256(), _mm256_setzero_si256()};
  int64_t matched_tail = 0, valid_tail = 0;
  for (int64_t oh = 0; oh < g.out_h; ++oh) {
    const int64_t* s_row = s + oh * g.out_w;
    const float* gy_row = gy + oh * g.out_w;
    for (int64_t kh = 0; kh < KH && oh * KH + kh < H; ++kh) {
      const int64_t ih = oh * KH + kh;
      float* gx_row = gx + ih * W;
      for (int64_t ow = 0; ow < full; ow += 8) {
        gather_block_2x2<false>(s_row + ow, gy_row + ow, gx_row + 2 * ow, ih * W + 2 * ow, kh == 0,
                                0, plane_size, counts);
      }
      if (rest > 0) {
        const int64_t ow = both_inside - 8;
        gather_block_2x2<true>(s_row + ow, gy_row + ow, gx_row + 2 * ow, ih * W + 2 * ow, kh == 0,
                               8 - rest, plane_size, counts);
      }
      // The last column when the width is odd: in a window of its own (ceil mode) or in none.
      for (int64_t iw = 2 * both_inside; iw < W; ++iw) {
        const int64_t ow = iw / 2;
        float value = 0.0f;
        if (ow < g.out_w) {
          const int64_t index = s_row[ow];
          valid_tail += kh == 0 && inside(index, in_plane);
          if (index == ih * W + iw) {
            value = 0.0f + gy_row[ow];
            ++matched_tail;
          }
        }
        gx_row[iw] = value;
      }
    }
  }
  // Rows below the last window (odd height, floor mode).
  const int64_t covered = std::min(H, g.out_h * KH);
  zero_fill(gx + covered * W, (H - covered) * W);
  alignas(32) int64_t totals[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(totals), counts.matched);
  _mm256_store_si256(reinterpret_cast<__m256i*>(totals + 4), counts.valid);
  return totals[0] + totals[1] + totals[2] + totals[3] + matched_tail ==
      totals[4] + totals[5] + totals[6] + totals[7] + valid_tail;
}
}  // namespace

void backward_plane_2x2_f32_avx2(const Pool2dGeometry& g, const float* gy, const int64_t* s,
                                 float* gx) {
  if (!gather_plane_2x2(g, gy, s, gx)) {
    scatter_all(g, gy, s, gx, 1);
  }
}

// The backward of disjoint windows on a channels_last float32 image, input rows [row_lo,
// row_hi), as a gather: an input pixel's gradient, channel by channel, is that of its window
// where the index points at the pixel, else 0 (0 + g: the scatter's sums). Every element is
// written once, 8 channels at a time, in order; no zeroing pass, no read-modify-write. Counts the
// indices that matched (`matched`) and, for the windows whose first tap lies in the band, those
// inside the plane (`valid`): equal totals over an image's bands mean every index inside the
// plane was in its window; otherwise the caller redoes the image with the scatter.
FASTCONV_AVX2 void backward_band_cl_disjoint_f32_avx2(const Pool2dGeometry& g, const float* gy,
                                                      const int64_t* s, float* gx, int64_t row_lo,
                                                      int64_t row_hi, int64_t& matched,
                                                      int64_t& valid) {
  const int64_t C = g.channels, W = g.in_w, in_plane = g.in_plane();
  const int64_t vector_c = C / 8 * 8;
  const __m256i minus_one = _mm256_set1_epi64x(-1), plane_size = _mm256_set1_epi64x(in_plane);
  const __m256 zero = _mm256_setzero_ps();
  __m256i matched_v = _mm256_setzero_si256(), valid_v = _mm256_setzero_si256();
  int64_t matched_s = 0, valid_s = 0;
  for (int64_t ih = row_lo; ih < row_hi; ++ih) {
    const int64_t oh = (ih + g.pad_h) / g.stride_h;
    const bool row_covered = (ih + g.pad_h) % g.stride_h < g.kernel_h && oh < g.out_h;
    const bool first_row = row_covered && ih == std::max<int64_t>(0, oh * g.stride_h - g.pad_h);
    for (int64_t iw = 0; iw < W; ++iw) {
      float* x = gx + (ih * W + iw) * C;
      const int64_t ow = (iw + g.pad_w) / g.stride_w;
      if (!row_covered || (iw + g.pad_w) % g.stride_w >= g.kernel_w || ow >= g.out_w) {
        zero_fill(x, C);  // in no window
        continue;
      }
      const bool count_valid = first_row && iw == std::max<int64_t>(0, ow * g.stride_w - g.pad_w);
      const int64_t o = (oh * g.out_w + ow) * C;
      const int64_t* s_o = s + o;
      const float* gy_o = gy + o;
      const int64_t position = ih * W + iw;
      const __m256i expected = _mm256_set1_epi64x(position);
      for (int64_t c = 0; c < vector_c; c += 8) {
        const __m256i s_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s_o + c));
        const __m256i s_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s_o + c + 4));
        const __m256i m_lo = _mm256_cmpeq_epi64(s_lo, expected);
        const __m256i m_hi = _mm256_cmpeq_epi64(s_hi, expected);
        matched_v = _mm256_sub_epi64(matched_v, _mm256_add_epi64(m_lo, m_hi));
        if (count_valid) {
          const __m256i in_lo = _mm256_and_si256(_mm256_cmpgt_epi64(s_lo, minus_one),
                                                 _mm256_cmpgt_epi64(plane_size, s_lo));
          const __m256i in_hi = _mm256_and_si256(_mm256_cmpgt_epi64(s_hi, minus_one),
                                                 _mm256_cmpgt_epi64(plane_size, s_hi));
          valid_v = _mm256_sub_epi64(valid_v, _mm256_add_epi64(in_lo, in_hi));
        }
        // The mask in lane order [0, 1, 4, 5, 2, 3, 6, 7], put back in order.
        const __m256 mask = _mm256_castpd_ps(_mm256_permute4x64_pd(
            _mm256_castps_pd(_mm256_shuffle_ps(_mm256_castsi256_ps(m_lo), _mm256_castsi256_ps(m_hi),
                                               _MM_SHUFFLE(2, 0, 2, 0))),
            _MM_SHUFFLE(3, 1, 2, 0)));
        _mm256_storeu_ps(x + c,
                         _mm256_add_ps(_mm256_and_ps(_mm256_loadu_ps(gy_o + c), mask), zero));
      }
      for (int64_t c = vector_c; c < C; ++c) {
        const bool hit = s_o[c] == position;
        matched_s += hit;
        valid_s += count_valid && inside(s_o[c], in_plane);
        x[c] = hit ? 0.0f + gy_o[c] : 0.0f;
      }
    }
  }
  alignas(32) int64_t totals[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(totals), matched_v);
  _mm256_store_si256(reinterpret_cast<__m256i*>(totals + 4), valid_v);
  matched = totals[0] + totals[1] + totals[2] + totals[3] + matched_s;
  valid = totals[4] + totals[5] + totals[6] + totals[7] + valid_s;
}
#endif

}  // namespace fastconv::cpu
