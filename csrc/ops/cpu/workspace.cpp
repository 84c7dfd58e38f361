#include "ops/cpu/workspace.h"

#include <c10/util/Exception.h>

namespace fastconv::cpu {

void throw_workspace_out_of_memory(int64_t bytes) {
  TORCH_CHECK(false, "fastconv: out of memory for a ", bytes, "-byte CPU workspace");
}

}  // namespace fastconv::cpu
