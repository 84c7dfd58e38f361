// How an op's frontend (ops/<op>.cpp) reaches the kernels of the tensor's backend: each backend
// folder implements the functions an op's <op>_kernels.h declares, in namespaces fastconv::cpu and
// fastconv::cuda, and the frontend calls them through FASTCONV_CALL_BACKEND.
#pragma once

#include <torch/library.h>

#ifdef FASTCONV_WITH_CUDA
#define FASTCONV_CALL_BACKEND(tensor, fn, ...) \
  ((tensor).is_cuda() ? ::fastconv::cuda::fn(__VA_ARGS__) : ::fastconv::cpu::fn(__VA_ARGS__))
#else
#define FASTCONV_CALL_BACKEND(tensor, fn, ...) ::fastconv::cpu::fn(__VA_ARGS__)
#endif

// Registers an op's frontend, `register_fn(torch::Library&)`, for every backend of this build.
#ifdef FASTCONV_WITH_CUDA
#define FASTCONV_REGISTER_FRONTEND(register_fn)            \
  TORCH_LIBRARY_IMPL(fastconv, CPU, m) { register_fn(m); } \
  TORCH_LIBRARY_IMPL(fastconv, CUDA, m) { register_fn(m); }
#else
#define FASTCONV_REGISTER_FRONTEND(register_fn) \
  TORCH_LIBRARY_IMPL(fastconv, CPU, m) { register_fn(m); }
#endif
