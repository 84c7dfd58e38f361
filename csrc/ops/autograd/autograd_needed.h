// Whether an autograd kernel must record anything for these inputs. Where it need not (grad mode
// off, or no input requiring a gradient, and no forward-mode tangent), the kernel calls the op
// below the Autograd key at once, as torch's generated autograd kernels do: Function::apply would
// still build a context and save the inputs and arguments, a few microseconds of a small call.
#pragma once

#include <torch/csrc/autograd/functions/utils.h>

namespace fastconv {

template <typename... Tensors>
bool autograd_needed(const Tensors&... inputs) {
  // A forward-mode tangent goes to Function::apply, which refuses it as before (C++ custom
  // Functions have no jvp); fastconv's Python layer takes such calls through its own formulas.
  return torch::autograd::compute_requires_grad(inputs...) ||
      (torch::autograd::isFwGradDefined(inputs) || ...);
}

}  // namespace fastconv
