#include "ops/cpu/parallel.h"

#include <ATen/Parallel.h>

namespace fastconv::cpu {

void detail::parallel_for(int64_t begin, int64_t end, int64_t grain, const void* body,
                          RangeBody call) {
  at::parallel_for(begin, end, grain, [&](int64_t b, int64_t e) { call(body, b, e); });
}

int64_t num_threads() { return at::get_num_threads(); }

}  // namespace fastconv::cpu
