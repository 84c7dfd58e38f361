// The extension module fastconv._C. Loading it registers the ops of the `fastconv` namespace with
// PyTorch's dispatcher (schemas in ops/*.cpp, kernels in ops/cpu and ops/cuda); the module itself
// only reports how it was built and the CPU conv2d's workspace size.
#include <torch/extension.h>

#include "ops/cpu/conv2d_kernel.h"
#include "ops/cpu/cpu_capability.h"
#include "ops/shape_checks.h"

#ifdef FASTCONV_WITH_CUDA
#include <cuda.h>  // CUDA_VERSION
#endif

#ifndef FASTCONV_TORCH_VERSION
#error "setup.py defines FASTCONV_TORCH_VERSION"
#endif
#ifndef FASTCONV_CUDA_ARCHS
#define FASTCONV_CUDA_ARCHS ""
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("build_info", [] {
    pybind11::dict info;
    info["torch_version"] = FASTCONV_TORCH_VERSION;
#ifdef FASTCONV_WITH_CUDA
    info["cuda"] = true;
    info["cuda_version"] = std::to_string(CUDA_VERSION / 1000) + "." +
        std::to_string((CUDA_VERSION % 1000) / 10);
#else
    info["cuda"] = false;
    info["cuda_version"] = pybind11::none();
#endif
    info["cuda_archs"] = FASTCONV_CUDA_ARCHS;
    info["openmp"] =
#ifdef _OPENMP
        true;
#else
        false;
#endif
    // The CPU kernels' vector paths, chosen at run time (cpu/cpu_capability.h).
    info["cpu_gemm_kernel"] = fastconv::cpu::cpu_uses_avx2() ? "avx2_fma" : "portable";
    return info;
  }, "How this build of fastconv was compiled (torch version, CUDA, archs, OpenMP) and which CPU "
     "GEMM kernel it runs.");

  m.def("conv2d_cpu_workspace_bytes",
        [](const at::Tensor& input, const at::Tensor& weight, std::vector<int64_t> stride,
           std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
          const auto g = fastconv::check_conv2d(input, weight, std::nullopt, stride, padding,
                                                dilation, groups);
          return fastconv::cpu::conv2d_workspace_bytes(g, input.scalar_type());
        },
        "Peak workspace in bytes of the CPU conv2d forward for these arguments (meta "
        "tensors are enough), with the current thread count.");
}
