// Launch helpers shared by the CUDA kernels: one-dimensional grid-stride loops over int64 indices.
//
// Every kernel walks a flat int64 index with a grid-stride loop, so tensors past 2^31 elements need
// no special path and the grid never has to grow past kMaxBlocks (enough to fill any current GPU
// many times over). nvcc divides 64-bit integers on a 32-bit fast path when both operands fit, so
// the index arithmetic costs little on ordinary sizes.
#pragma once

#include <c10/cuda/CUDAException.h>

#include <algorithm>
#include <climits>
#include <cstdint>

namespace fastconv::cuda {

constexpr int kThreadsPerBlock = 256;

constexpr int64_t kMaxBlocks = int64_t{1} << 16;

inline unsigned int blocks_for(int64_t elements) {
  const int64_t blocks = (elements + kThreadsPerBlock - 1) / kThreadsPerBlock;
  return static_cast<unsigned int>(std::clamp<int64_t>(blocks, 1, kMaxBlocks));
}

// Whether a kernel whose offsets all stay below `extent` may do its index arithmetic in int32
// (several times cheaper than int64 division on the GPU), grid-stride steps past the end included.
inline bool fits_int32(int64_t extent) {
  return extent < INT32_MAX - kMaxBlocks * kThreadsPerBlock;
}

}  // namespace fastconv::cuda

#define FASTCONV_GRID_STRIDE_LOOP_T(index_t, i, n)                                       \
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<index_t>(blockDim.x) * gridDim.x)

#define FASTCONV_GRID_STRIDE_LOOP(i, n) FASTCONV_GRID_STRIDE_LOOP_T(int64_t, i, n)
