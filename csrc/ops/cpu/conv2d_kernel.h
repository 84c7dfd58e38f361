#pragma once

#include "../shape_checks.h"

namespace fastconv::cpu {

// Peak bytes of im2col workspace that the CPU conv2d forward allocates for this geometry with the
// current thread count (one column buffer per thread working on an image).
int64_t conv2d_workspace_bytes(const Conv2dGeometry& g, int64_t element_size);

} // namespace fastconv::cpu
