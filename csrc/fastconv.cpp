// The extension module fastconv._C. Loading it registers the ops of the `fastconv` namespace with
// PyTorch's dispatcher (schemas and frontends in ops/*.cpp, kernels in ops/cpu and ops/cuda); the
// module itself reports how it was built, and gives the tests and the benchmark a view of the CPU
// conv2d's path choice and workspace.
#include <torch/python.h>

#include "ops/autograd/conv2d_calls.h"
#include "ops/autograd/pool_calls.h"
#include "ops/conv2d_kernels.h"
#include "ops/cpu/conv2d/conv2d_path.h"
#include "ops/cpu/isa.h"
#include "ops/cpu/workspace.h"
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
  // Eager calls of the two most frequent small ops, for fastconv's Python layer: the op through
  // the dispatcher's typed handle (autograd, autocast and tracing included), without torch.ops'
  // Python overload resolution and argument boxing, which cost a small convolution about 4 us
  // (a third of it). torch.compile and TorchScript call torch.ops.fastconv as usual.
  m.def(
      "_conv2d_eager",
      [](const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
         std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
         int64_t groups) {
        return fastconv::conv2d_op(
            input, weight, bias,
            {std::move(stride), std::move(padding), std::move(dilation), groups});
      },
      pybind11::call_guard<pybind11::gil_scoped_release>(),
      "torch.ops.fastconv.conv2d for eager calls.");
  m.def(
      "_max_pool2d_with_indices_eager",
      [](const at::Tensor& input, std::vector<int64_t> kernel_size, std::vector<int64_t> stride,
         std::vector<int64_t> padding, std::vector<int64_t> dilation, bool ceil_mode) {
        return fastconv::max_pool2d_op(input,
                                       {std::move(kernel_size), std::move(stride),
                                        std::move(padding), std::move(dilation), ceil_mode});
      },
      pybind11::call_guard<pybind11::gil_scoped_release>(),
      "torch.ops.fastconv.max_pool2d_with_indices for eager calls.");

  m.def(
      "build_info",
      [] {
        pybind11::dict info;
        info["torch_version"] = FASTCONV_TORCH_VERSION;
#ifdef FASTCONV_WITH_CUDA
        info["cuda"] = true;
        info["cuda_version"] =
            std::to_string(CUDA_VERSION / 1000) + "." + std::to_string((CUDA_VERSION % 1000) / 10);
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
        // The CPU kernels' vector builds, chosen at run time (cpu/isa.h).
        info["cpu_gemm_kernel"] = fastconv::cpu::cpu_uses_avx512() ? "avx512f"
            : fastconv::cpu::cpu_uses_avx2()                       ? "avx2_fma"
                                                                   : "portable";
        return info;
      },
      "How this build of fastconv was compiled (torch version, CUDA, archs, OpenMP) and which CPU "
      "GEMM kernel it runs.");

  m.def(
      "conv2d_cpu_workspace_bytes",
      [](const at::Tensor& input, const at::Tensor& weight, std::vector<int64_t> stride,
         std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
        const auto g =
            fastconv::check_conv2d(input, weight, std::nullopt, stride, padding, dilation, groups);
        return fastconv::cpu::conv2d_forward_workspace_bytes(g, input.scalar_type());
      },
      "Peak workspace in bytes of the CPU conv2d forward for these arguments (meta "
      "tensors are enough), with the current thread count.");

  using fastconv::cpu::Conv2dPass;
  using fastconv::cpu::Conv2dPath;
  constexpr Conv2dPass kPasses[] = {Conv2dPass::forward, Conv2dPass::input_backward,
                                    Conv2dPass::weight_backward};

  m.def(
      "_conv2d_cpu_paths",
      [=](const at::Tensor& input, const at::Tensor& weight, std::vector<int64_t> stride,
          std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
        const auto g =
            fastconv::check_conv2d(input, weight, std::nullopt, stride, padding, dilation, groups);
        pybind11::dict paths;
        // A channels_last output: the passes the channels_last kernels take where the input is
        // channels_last too (grad_output having the output's layout).
        const bool channels_last =
            fastconv::conv2d_output_memory_format(input, weight) == at::MemoryFormat::ChannelsLast;
        for (const auto pass : kPasses) {
          const bool native = channels_last && fastconv::cpu::channels_last_supported(g, input);
          paths[name_of(pass)] = name_of(native ? fastconv::cpu::channels_last_path(g, input)
                                                : choose_path(pass, g, input.scalar_type()));
        }
        return paths;
      },
      "Testing hook: the CPU kernel path each conv2d pass takes for these arguments (with "
      "channels_last input, those of the channels_last kernels where they apply).");

  m.def(
      "_conv2d_cpu_path_runs",
      [=] {
        pybind11::dict runs;
        for (const auto pass : kPasses) {
          for (int path = 0; path < fastconv::cpu::kConv2dPaths; ++path) {
            const auto p = static_cast<Conv2dPath>(path);
            runs[pybind11::make_tuple(name_of(pass), name_of(p))] = runs_of(pass, p);
          }
        }
        return runs;
      },
      "Testing hook: {(pass, path): times run} of the CPU conv2d kernels in this process.");

  m.def("_winograd_enabled", &fastconv::cpu::winograd_enabled,
        "Whether 3x3 stride-1 float32 convolutions on the CPU may take the Winograd path "
        "(fastconv.backends.winograd.enabled).");
  m.def("_set_winograd_enabled", &fastconv::cpu::set_winograd_enabled, pybind11::arg("enabled"),
        "Allow or forbid the Winograd path (fastconv.backends.winograd.enabled).");
  m.def("_direct_enabled", &fastconv::cpu::direct_enabled,
        "Whether shallow float32 convolutions on the CPU may take the direct path "
        "(fastconv.backends.direct.enabled).");
  m.def("_set_direct_enabled", &fastconv::cpu::set_direct_enabled, pybind11::arg("enabled"),
        "Allow or forbid the direct path (fastconv.backends.direct.enabled).");

  m.def(
      "_cpu_workspace_peak_bytes",
      [](bool reset) {
        const int64_t peak = fastconv::cpu::workspace_peak_bytes();
        if (reset) {
          fastconv::cpu::reset_workspace_peak();
        }
        return peak;
      },
      pybind11::arg("reset") = false,
      "Testing hook: the most CPU kernel workspace bytes alive at once since the last reset.");
}
