// Window arithmetic of max- and average pooling, written once for the CPU and CUDA kernels
// (C10_HOST_DEVICE).
#pragma once

#include <ATen/NumericUtils.h>
#include <c10/macros/Macros.h>

#include <cstdint>

namespace fastconv {

// Taps of output position `o` along one dimension that fall inside the input: the first one
// (begin) and a bound (end); taps are begin, begin + dilation, ... < end. The first tap inside is
// the window's initial index.
struct WindowTaps {
  int64_t begin, end;
};

C10_HOST_DEVICE inline WindowTaps window_taps(int64_t o, int64_t stride, int64_t pad,
                                              int64_t kernel, int64_t dilation, int64_t size) {
  int64_t begin = o * stride - pad;
  const int64_t span_end = begin + (kernel - 1) * dilation + 1;
  const int64_t end = span_end < size ? span_end : size;
  if (begin < 0) {  // the first tap at or after 0
    begin += (-begin + dilation - 1) / dilation * dilation;
  }
  return {begin, end};
}

// The outputs along one dimension whose window span covers input position i: [first, last].
struct CoveringWindows {
  int64_t first, last;
};

C10_HOST_DEVICE inline CoveringWindows covering_windows(int64_t i, int64_t stride, int64_t pad,
                                                        int64_t kernel, int64_t dilation,
                                                        int64_t outputs) {
  const int64_t reach = i + pad - (kernel - 1) * dilation;  // start of the leftmost window
  const int64_t first = reach <= 0 ? 0 : (reach + stride - 1) / stride;
  const int64_t last = (i + pad) / stride < outputs - 1 ? (i + pad) / stride : outputs - 1;
  return {first, last};
}

// An average-pooling window along one dimension (no dilation): the taps inside the input,
// [begin, end), and the size of the window clipped to the padded input, `padded`, as torch counts
// it for count_include_pad (a ceil_mode window may reach past the right padding).
struct AvgWindow {
  int64_t begin, end, padded;
};

C10_HOST_DEVICE inline AvgWindow avg_window(int64_t o, int64_t stride, int64_t pad, int64_t kernel,
                                            int64_t size) {
  const int64_t start = o * stride - pad;
  const int64_t padded_end = start + kernel < size + pad ? start + kernel : size + pad;
  return {start > 0 ? start : 0, padded_end < size ? padded_end : size, padded_end - start};
}

// torch's divisor of a window: divisor_override (0: none), else the padded window's size with
// count_include_pad, else the number of taps inside the input.
C10_HOST_DEVICE inline int64_t avg_divisor(const AvgWindow& rows, const AvgWindow& cols,
                                           bool count_include_pad, int64_t divisor_override) {
  if (divisor_override != 0) {
    return divisor_override;
  }
  return count_include_pad ? rows.padded * cols.padded
                           : (rows.end - rows.begin) * (cols.end - cols.begin);
}

// torch's rule: a larger value or a NaN takes over the maximum and its index, so ties keep the
// first index in window order (row by row) and the last NaN wins.
template <typename scalar_t, typename acc_t>
C10_HOST_DEVICE inline bool replaces_max(scalar_t value, acc_t best) {
  return static_cast<acc_t>(value) > best || at::_isnan(value);
}

}  // namespace fastconv
