"""Builds fastconv._C: CPU kernels always, CUDA kernels when a CUDA toolkit is found or FORCE_CUDA=1.

Environment:
  FORCE_CUDA=1            build the CUDA kernels (fails if torch or the toolkit lacks CUDA)
  FORCE_CUDA=0            CPU only, even where a toolkit is found
  TORCH_CUDA_ARCH_LIST    GPU archs to compile for; default: the visible GPUs, else DEFAULT_CUDA_ARCHS
  MAX_JOBS                parallel compile jobs (ninja)
"""

import glob
import os
import shutil
import sysconfig

from setuptools import setup


def find_cuda_home():
    """The CUDA toolkit: nvcc's own folder, resolved through links, or /usr/local/cuda. torch takes
    the parent of the nvcc found on PATH as is, which is wrong where that nvcc is a link or a
    wrapper script in /usr/local/bin."""
    nvcc = shutil.which("nvcc")
    candidates = [os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))] if nvcc else []
    candidates.append("/usr/local/cuda")
    for folder in candidates:
        if os.path.exists(os.path.join(folder, "include", "cuda_runtime.h")):
            return folder
    return None


# Set before torch.utils.cpp_extension reads it.
_cuda_home = None if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") else find_cuda_home()
if _cuda_home:
    os.environ["CUDA_HOME"] = _cuda_home

import torch  # noqa: E402
from torch.utils.cpp_extension import (  # noqa: E402
    CUDA_HOME,
    BuildExtension,
    CppExtension,
    CUDAExtension,
)

DEFAULT_CUDA_ARCHS = "7.5;8.0;8.6;9.0+PTX"
ROOT = os.path.dirname(os.path.abspath(__file__))


def build_with_cuda() -> bool:
    force = os.environ.get("FORCE_CUDA")
    if force == "1":
        if torch.version.cuda is None:
            raise RuntimeError("FORCE_CUDA=1, but the installed torch is a CPU-only build")
        if CUDA_HOME is None:
            raise RuntimeError("FORCE_CUDA=1, but no CUDA toolkit was found (set CUDA_HOME)")
        return True
    if force == "0":
        return False
    return torch.version.cuda is not None and CUDA_HOME is not None


def cuda_library_headers() -> list:
    """Folders with cuBLAS & co headers when the toolkit lacks them (pip's nvidia-* wheels)."""
    if os.path.exists(os.path.join(CUDA_HOME, "include", "cublas_v2.h")):
        return []
    site = sysconfig.get_paths()["purelib"]
    found = sorted(glob.glob(os.path.join(site, "nvidia", "cu*", "include")))
    found += sorted(glob.glob(os.path.join(site, "nvidia", "*", "include")))
    return [d for d in found if os.path.exists(os.path.join(d, "cublas_v2.h"))][:1]


def extension():
    sources = sorted(glob.glob("csrc/**/*.cpp", recursive=True))
    cxx = ["-O3", "-fopenmp", f'-DFASTCONV_TORCH_VERSION="{torch.__version__}"']
    link = ["-fopenmp"]
    if not build_with_cuda():
        return CppExtension("fastconv._C", sources, extra_compile_args={"cxx": cxx},
                            extra_link_args=link)
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCHS
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "visible GPUs")
    defines = ["-DFASTCONV_WITH_CUDA", f'-DFASTCONV_CUDA_ARCHS="{archs}"']
    sources += sorted(glob.glob("csrc/**/*.cu", recursive=True))
    return CUDAExtension(
        "fastconv._C",
        sources,
        include_dirs=cuda_library_headers(),
        extra_compile_args={"cxx": cxx + defines, "nvcc": ["-O3"] + defines},
        extra_link_args=link,
    )


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
