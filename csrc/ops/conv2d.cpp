// Schemas of the conv2d ops. Kernels: cpu/conv2d_kernel.cpp, cuda/conv2d_kernel.cu.
// Autograd and fake (meta) implementations are registered from Python: fastconv/_ops.py.
//
// The two backward ops are linear in each of their tensor arguments, so their own derivatives are
// again conv2d and the backward ops: gradients of any order need no further kernels.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(fastconv, m) {
  m.def(
      "conv2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, "
      "int[2] dilation, int groups) -> Tensor");
  // grad_input = the transposed convolution of grad_output with weight.
  m.def(
      "conv2d_input_backward(Tensor grad_output, Tensor weight, SymInt[4] input_size, "
      "int[2] stride, int[2] padding, int[2] dilation, int groups) -> Tensor");
  // grad_weight = grad_output correlated with input, summed over the batch.
  m.def(
      "conv2d_weight_backward(Tensor grad_output, Tensor input, SymInt[4] weight_size, "
      "int[2] stride, int[2] padding, int[2] dilation, int groups) -> Tensor");
}
