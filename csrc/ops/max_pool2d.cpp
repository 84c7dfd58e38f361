// Schemas of the max-pool ops. Kernels: cpu/max_pool2d_kernel.cpp, cuda/max_pool2d_kernel.cu.
// Autograd and fake (meta) implementations are registered from Python: fastconv/_ops.py.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(fastconv, m) {
  // Returns (output, indices): the switches, int64, each the flat h*W+w position of the maximum
  // within its (n, c) plane, as torch's max_pool2d_with_indices.
  m.def(
      "max_pool2d_with_indices(Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, "
      "int[2] dilation, bool ceil_mode) -> (Tensor, Tensor)");
  // Routes grad_output back through the switches (summing where windows overlap).
  m.def(
      "max_pool2d_with_indices_backward(Tensor grad_output, Tensor input, int[2] kernel_size, "
      "int[2] stride, int[2] padding, int[2] dilation, bool ceil_mode, Tensor indices) -> Tensor");
}
