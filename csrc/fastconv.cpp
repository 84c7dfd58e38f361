// The extension module fastconv._C. Loading it registers the ops of the `fastconv` namespace with
// PyTorch's dispatcher (schemas in ops/*.cpp, kernels in ops/cpu and ops/cuda); the module itself
// only reports how it was built.
#include <torch/extension.h>

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
    return info;
  }, "How this build of fastconv was compiled: torch version, CUDA, archs, OpenMP.");
}
