"""Builds fastconv._C: CPU kernels always; CUDA kernels when a GPU is visible or FORCE_CUDA=1.

fastconv compiles against the torch already installed, so build without isolation:
    pip install --no-build-isolation .            (or -e . for development)
    python setup.py build_ext --inplace           (in place, incremental: what .ci/run does)

Environment:
  FORCE_CUDA=1            build the CUDA kernels even where no GPU is visible (fails if torch or
                          the toolkit lacks CUDA); CI sets it so that CUDA code compiles and links
  FORCE_CUDA=0            CPU only, even where a GPU is visible
  TORCH_CUDA_ARCH_LIST    GPU archs to compile for; default: the visible GPUs, else
                          DEFAULT_CUDA_ARCHS
  MAX_JOBS                parallel compile jobs (ninja)
  FASTCONV_SANITIZE=1     a CPU-only build under AddressSanitizer and UndefinedBehaviorSanitizer,
                          signed overflow included (-fno-wrapv; Python's flags have -fwrapv), any
                          report fatal; .ci/run's sanitizer stage builds it into build/sanitize
"""

import glob
import os
import shutil
import sys
import sysconfig

from setuptools import setup

NO_ISOLATION_HINT = """
fastconv compiles against the torch that is already installed, so it must be built without pip's
build isolation (an isolated build would use a different torch, or none):

    pip install --no-build-isolation .        (or: pip install --no-build-isolation -e .)

with torch, ninja and pybind11 installed first (pip install torch ninja pybind11 numpy).
"""


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
_cuda_home = (
    None if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") else find_cuda_home()
)
if _cuda_home:
    os.environ["CUDA_HOME"] = _cuda_home

try:
    import torch  # noqa: E402
except ImportError:  # pip's isolated build environment: torch is not there (pyproject lists none)
    sys.exit("error: torch is not importable while building fastconv.\n" + NO_ISOLATION_HINT)

from torch.utils.cpp_extension import (  # noqa: E402
    CUDA_HOME,
    BuildExtension,
    CppExtension,
    CUDAExtension,
)

DEFAULT_CUDA_ARCHS = "7.5;8.0;8.6;9.0+PTX"
ROOT = os.path.dirname(os.path.abspath(__file__))


def say(message: str) -> None:
    print(f"fastconv setup: {message}", file=sys.stderr, flush=True)


def build_with_cuda() -> bool:
    force = os.environ.get("FORCE_CUDA")
    if force == "1":
        if torch.version.cuda is None:
            raise RuntimeError("FORCE_CUDA=1, but the installed torch is a CPU-only build")
        if CUDA_HOME is None:
            raise RuntimeError("FORCE_CUDA=1, but no CUDA toolkit was found (set CUDA_HOME)")
        say("FORCE_CUDA=1: building the CPU and CUDA kernels")
        return True
    if force == "0":
        say("FORCE_CUDA=0: building the CPU kernels only")
        return False
    # As torchvision and extension-cpp do: compiling CUDA code for a machine with no GPU costs
    # minutes and gives nothing that runs there.
    gpu = torch.version.cuda is not None and torch.cuda.is_available()
    if gpu and CUDA_HOME is not None:
        say("a GPU is visible: building the CPU and CUDA kernels")
        return True
    why = "no GPU is visible" if not gpu else "no CUDA toolkit was found (set CUDA_HOME)"
    say(f"{why}: building the CPU kernels only (FORCE_CUDA=1 builds the CUDA kernels too)")
    return False


def cuda_library_headers() -> list:
    """Folders with cuBLAS & co headers when the toolkit lacks them (pip's nvidia-* wheels)."""
    if os.path.exists(os.path.join(CUDA_HOME, "include", "cublas_v2.h")):
        return []
    site = sysconfig.get_paths()["purelib"]
    found = sorted(glob.glob(os.path.join(site, "nvidia", "cu*", "include")))
    found += sorted(glob.glob(os.path.join(site, "nvidia", "*", "include")))
    return [d for d in found if os.path.exists(os.path.join(d, "cublas_v2.h"))][:1]


def sanitize() -> bool:
    return os.environ.get("FASTCONV_SANITIZE") == "1"


def csrc(*patterns: str) -> list:
    """Files under csrc/ (any depth), relative to the project, sorted."""
    return sorted(
        {
            os.path.relpath(path, ROOT)
            for pattern in patterns
            for path in glob.glob(os.path.join(ROOT, "csrc", "**", pattern), recursive=True)
        }
    )


# Folders whose .cpp files compile as one translation unit (a generated file in build/ includes
# them): each of them includes torch's heaviest headers (torch/library.h, torch/autograd.h), whose
# parsing, once per file, was most of the build's time. The files stay apart in the source tree.
UNITY_FOLDERS = ("csrc/ops", "csrc/ops/autograd")


def unity_sources(sources: list) -> list:
    kept = list(sources)
    for folder in UNITY_FOLDERS:
        members = [s for s in sources if os.path.dirname(s) == folder]
        if len(members) < 2:
            continue
        unity = os.path.join("build", "unity", folder.replace("/", "_") + ".cpp")
        text = "// Generated by setup.py (UNITY_FOLDERS): do not edit.\n" + "".join(
            f'#include "{os.path.join(ROOT, m)}"\n' for m in members
        )
        os.makedirs(os.path.dirname(os.path.join(ROOT, unity)), exist_ok=True)
        path = os.path.join(ROOT, unity)
        if (
            not os.path.exists(path) or open(path).read() != text
        ):  # unchanged: ninja rebuilds nothing
            with open(path, "w") as f:
                f.write(text)
        kept = [s for s in kept if s not in members] + [unity]
    return kept


def extension():
    sources = unity_sources(csrc("*.cpp"))
    # Listed so that a changed header alone makes setuptools rebuild (ninja then recompiles only
    # what includes it).
    headers = csrc("*.h", "*.hpp", "*.cuh")
    # -g0: Python's flags ask for debug info, which costs a third of the compile time of the files
    # that include torch's headers; the sanitizer build puts -g back.
    cxx = ["-O3", "-g0", "-fopenmp", f'-DFASTCONV_TORCH_VERSION="{torch.__version__}"']
    link = ["-fopenmp"]
    if sanitize():
        checks = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
        cxx += checks + ["-fno-wrapv", "-fno-omit-frame-pointer", "-O1", "-g"]
        link += checks
    include_dirs = [os.path.join(ROOT, "csrc")]  # includes are rooted at csrc/: "ops/cpu/isa.h"
    if sanitize() or not build_with_cuda():
        return CppExtension(
            "fastconv._C",
            sources,
            depends=headers,
            include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx},
            extra_link_args=link,
        )
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCHS
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "visible GPUs")
    say(f"CUDA archs: {archs}")
    defines = ["-DFASTCONV_WITH_CUDA", f'-DFASTCONV_CUDA_ARCHS="{archs}"']
    return CUDAExtension(
        "fastconv._C",
        sources + csrc("*.cu"),
        depends=headers,
        include_dirs=include_dirs + cuda_library_headers(),
        extra_compile_args={"cxx": cxx + defines, "nvcc": ["-O3"] + defines},
        extra_link_args=link,
    )


class BuildExtension(BuildExtension.with_options(use_ninja=True)):
    """torch's BuildExtension, made incremental everywhere: objects stay in build/ (pip's editable
    install would otherwise compile into a fresh temporary folder every time), and a build made
    against another torch or with other CUDA settings is redone, not skipped as up to date."""

    def finalize_options(self):
        super().finalize_options()
        if getattr(self, "editable_mode", False):  # the folders a plain build (or --inplace) uses
            plain = self.distribution.get_command_class("build")(self.distribution)
            plain.ensure_finalized()
            self.build_temp, self.build_lib = plain.build_temp, plain.build_platlib

    def run(self):
        config = (
            "\n".join(
                f"{key}={value}"
                for key, value in (
                    ("torch", torch.__version__),
                    ("python", sys.version.split()[0]),
                    ("cuda", any(s.endswith(".cu") for e in self.extensions for s in e.sources)),
                    ("archs", os.environ.get("TORCH_CUDA_ARCH_LIST", "")),
                    ("sanitize", sanitize()),
                )
            )
            + "\n"
        )
        stamp = os.path.join(self.build_temp, "fastconv-build-config.txt")
        previous = open(stamp).read() if os.path.exists(stamp) else None
        if previous != config:
            if previous is not None:
                say(
                    f"build settings changed since the last build in {self.build_temp}: "
                    "rebuilding all"
                )
            self.force = True
        say(
            f"compiling with MAX_JOBS={os.environ.get('MAX_JOBS', 'all cores')} "
            "(ninja prints a line per file; an up-to-date build compiles nothing)"
        )
        super().run()
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w") as f:
            f.write(config)


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension},
)
