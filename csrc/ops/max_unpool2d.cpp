// Schemas of the max-unpool ops. Kernels: cpu/max_unpool2d_kernel.cpp, cuda/max_unpool2d_kernel.cu.
// Autograd and fake (meta) implementations are registered from Python: fastconv/_ops.py.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(fastconv, m) {
  // Scatters each input value to the position its switch names, in a zero plane of output_size.
  m.def("max_unpool2d(Tensor input, Tensor indices, int[2] output_size) -> Tensor");
  // The reverse: out[..., i] = grad_output[..., indices[..., i]] plane by plane. It is the backward
  // of max_unpool2d and also the double backward of max_pool2d (the gradient of its backward with
  // respect to grad_output), so both use this one gather.
  m.def("max_unpool2d_backward(Tensor grad_output, Tensor indices) -> Tensor");
}
