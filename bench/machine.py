"""What machine the benchmark ran on, and its practical peaks: a large GEMM's FLOP rate (what a
convolution could reach) and a copy's bandwidth beyond the cache (what a memory-bound pooling could
reach). The peaks are timed in the same interleaved rounds as each case (PeakCandidates), so that a
"fraction of peak" compares rates measured under the same load on a shared machine whose speed
drifts; measure_peaks gives the run's headline figures."""

import datetime
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import torch

import fastconv

from .timing import Candidate, Timer, interleaved


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def last_level_cache_bytes() -> Optional[int]:
    """Size of the CPU's largest cache (Linux sysfs of cpu0), or None where it cannot be read."""
    sizes = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        if text and text[-1] in units and text[:-1].isdigit():
            sizes.append(int(text[:-1]) * units[text[-1]])
        elif text.isdigit():
            sizes.append(int(text))
    return max(sizes) if sizes else None


def git_commit() -> Optional[str]:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).parent,
                timeout=10,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None


# The variables that cap each library's instruction set: with all three, an AVX-512 machine runs
# every party's AVX2 code (torch's ATen kernels and fastconv's follow ATEN_CPU_CAPABILITY).
ISA_VARIABLES: Dict[str, Dict[str, str]] = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
}

# One oneDNN convolution and one MKL GEMM, in a process of their own with the libraries' verbose
# output on: the first lines say which instruction set each picked.
_ISA_PROBE = """
import torch
x, w = torch.randn(1, 8, 8, 8), torch.randn(8, 8, 3, 3)
torch.ops.aten.mkldnn_convolution(x, w, None, [0, 0], [1, 1], [1, 1], 1)
torch.mm(torch.randn(64, 64), torch.randn(64, 64))
"""


def libraries_isa() -> Dict[str, str]:
    """The instruction set each library's CPU code runs here, under this process's environment:
    torch's ATen kernels (its CPU capability), fastconv's kernels, oneDNN's (from its verbose
    output) and MKL's (from its verbose banner, which names it on Intel CPUs only)."""
    isa = {
        "aten": torch.backends.cpu.get_cpu_capability(),
        "fastconv": fastconv.build_info()["cpu_gemm_kernel"],
        "onednn": "unknown",
        "mkl": "unknown",
    }
    env = dict(os.environ, ONEDNN_VERBOSE="1", MKL_VERBOSE="1", OMP_NUM_THREADS="1")
    try:
        lines = subprocess.run(
            [sys.executable, "-c", _ISA_PROBE],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return isa
    for line in lines:
        found = re.search(r"onednn_verbose.*,isa:(.*)$", line)
        if found:
            isa["onednn"] = found.group(1).strip()
        found = re.search(r"MKL_VERBOSE .*\((Intel\(R\) [^)]*)\) enabled processors", line)
        if found:
            isa["mkl"] = found.group(1)
    return isa


def machine_info(device: torch.device) -> dict:
    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": str(device),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "last_level_cache_bytes": last_level_cache_bytes(),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_version": torch.__version__,
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "fastconv_version": fastconv.__version__,
        "fastconv_path": str(Path(fastconv.__file__).parent),
        "fastconv_build_info": fastconv.build_info(),
        "git_commit": git_commit(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "isa": libraries_isa() if device.type == "cpu" else None,
        "isa_variables": {k: os.environ[k] for k in ISA_VARIABLES["avx2"] if k in os.environ},
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu_name=props.name,
            gpu_memory_bytes=props.total_memory,
            last_level_cache_bytes=getattr(props, "L2_cache_size", None) or None,
            gpu_multiprocessors=props.multi_processor_count,
            cudnn_version=torch.backends.cudnn.version(),
        )
    return info


def gemm_size(device: torch.device, dtype: torch.dtype) -> int:
    """The square GEMM whose rate is the peak: large enough to run at full speed (on 2 cores a
    1536^3 float32 GEMM reaches about 90% of a 2048^3 one's rate, a 1024^3 one 70%), short enough
    to be timed in every round of every case (about 0.1 s). Half types get a smaller one on the
    CPU, where without native support (AVX2) they run at about 1 GFLOP/s."""
    if device.type == "cuda":
        return 8192
    return 512 if dtype in (torch.float16, torch.bfloat16) else 2048


COPY_BYTES = 64 << 20  # the copy's source (float32), twice a 32 MiB last-level cache


class PeakCandidates:
    """The peak measurements as timeable calls, timed interleaved with each case's
    implementations: `gemm` (work: FLOPs) and `copy` (work: bytes read plus written)."""

    def __init__(self, device: torch.device, dtype: torch.dtype):
        size = self.gemm_size = gemm_size(device, dtype)
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        out = torch.empty(size, size, device=device, dtype=dtype)
        source = torch.randn(COPY_BYTES // 4, device=device)
        target = torch.empty_like(source)
        # Warmed up by measure_peaks; in a case's rounds a call is a sample (a GEMM takes 0.1 s on
        # 2 CPU cores, 25 ms on an H100; a copy 13 ms on the CPU, but 50 us on a GPU: calibrated).
        self.gemm = Candidate(lambda: torch.mm(a, b, out=out), iters=1)
        self.copy = Candidate(
            lambda: target.copy_(source), iters=1 if device.type == "cpu" else None
        )
        self.gemm_flops = 2 * size**3
        self.copy_bytes = 2 * source.numel() * source.element_size()
        self.gemm_dtype = str(dtype).replace("torch.", "")

    def for_op(self, op: str):
        """(candidate, work, unit of the rate) of the peak an op is measured against."""
        if op == "conv2d":
            return self.gemm, self.gemm_flops, "GFLOP/s"
        return self.copy, self.copy_bytes, "GB/s"


def measure_peaks(peaks: PeakCandidates, timer: Timer, repeats: int) -> dict:
    """GFLOP/s of the GEMM and GB/s of the copy (bytes read plus bytes written), each the median of
    `repeats` interleaved samples: the run's headline figures (fractions of peak use the
    measurements taken alongside each case)."""
    for candidate in (peaks.gemm, peaks.copy):  # warm-up
        candidate.fn()
    timings = interleaved(
        {"gemm": peaks.gemm, "copy": peaks.copy},
        timer,
        repeats=repeats,
        warmup=1,
        min_sample_seconds=0.1,
    )
    return {
        "gemm_size": peaks.gemm_size,
        "gemm_dtype": peaks.gemm_dtype,
        "gemm_gflops": peaks.gemm_flops / timings["gemm"].median / 1e9,
        "copy_bytes": peaks.copy_bytes,
        "copy_gbs": peaks.copy_bytes / timings["copy"].median / 1e9,
    }
