// parallel_for over ATen's intra-op thread pool, behind a header without torch's: the kernels
// include this one, and only parallel.cpp pays for ATen's.
#pragma once

#include <cstdint>

namespace fastconv::cpu {

namespace detail {
using RangeBody = void (*)(const void* body, int64_t begin, int64_t end);
void parallel_for(int64_t begin, int64_t end, int64_t grain, const void* body, RangeBody call);
}  // namespace detail

// at::parallel_for(begin, end, grain, f): f(b, e) over chunks of at least `grain` items, on the
// calling thread where the range is smaller than the grain or the call is already parallel.
template <typename F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
  detail::parallel_for(begin, end, grain, &f, [](const void* body, int64_t b, int64_t e) {
    (*static_cast<const F*>(body))(b, e);
  });
}

// at::get_num_threads().
int64_t num_threads();

}  // namespace fastconv::cpu
