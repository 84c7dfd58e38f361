#pragma once

#include "../shape_checks.h"

namespace fastconv::cpu {

// Peak bytes of workspace that the CPU conv2d forward allocates for this geometry and dtype with
// the current thread count: a packed block of columns per thread for float32 (plus zero-padded
// weight rows), an im2col band per thread working on an image for other dtypes.
int64_t conv2d_workspace_bytes(const Conv2dGeometry& g, c10::ScalarType dtype);

} // namespace fastconv::cpu
