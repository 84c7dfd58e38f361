"""Side-by-side timing: warm-up, then interleaved rounds (A, B, C, A, B, C, ...), medians.

Interleaving spreads the machine's noise (other tenants, clock changes) evenly over the
candidates, so their ratio stays meaningful even where absolute times drift.
"""

import contextlib
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Dict, List, Optional

import torch


@dataclass
class Candidate:
    """A call to time, run inside `context` (e.g. torch's backend switches), entered once per
    sample rather than once per call so that switching costs stay out of the timing."""

    fn: Callable[[], object]
    context: Callable[[], ContextManager] = contextlib.nullcontext
    # Calls per sample when known in advance (a warm call that lasts a sample on its own): the
    # candidate then gets neither warm-up nor calibration calls.
    iters: Optional[int] = None


@dataclass
class Timing:
    samples: List[float] = field(default_factory=list)  # seconds per call, one per round
    iters: int = 1  # calls per sample

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)


class Timer:
    """Seconds per call of fn over `iters` back-to-back calls: wall clock on the CPU, CUDA events
    on the GPU (with synchronisation before and after, so queued work is neither counted nor
    missed)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def seconds_per_call(self, candidate: Candidate, iters: int) -> float:
        with candidate.context():
            if self.cuda:
                return self._cuda(candidate.fn, iters)
            start = time.perf_counter()
            for _ in range(iters):
                candidate.fn()
            return (time.perf_counter() - start) / iters

    @staticmethod
    def _cuda(fn, iters: int) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / iters


def interleaved(
    candidates: Dict[str, Candidate],
    timer: Timer,
    repeats: int,
    warmup: int,
    min_sample_seconds: float,
    max_iters: int = 10_000,
) -> Dict[str, Timing]:
    """Median-ready timings of every candidate.

    Each candidate is first warmed up (caches, lazily built kernels, cuDNN's autotuner), then gets
    enough calls per sample that a sample lasts `min_sample_seconds` (so timer resolution and
    per-call Python overhead of tiny layers do not dominate); then `repeats` rounds each time every
    candidate once, in turn.
    """
    timings = {}
    for name, candidate in candidates.items():
        if candidate.iters is not None:
            timings[name] = Timing(iters=candidate.iters)
            continue
        with candidate.context():
            for _ in range(warmup):
                candidate.fn()
        # A short call is timed twice, as one slowed by another process would leave too few calls
        # per sample; a call longer than a sample is a sample on its own.
        once = timer.seconds_per_call(candidate, 1)
        if once < min_sample_seconds:
            once = min(once, timer.seconds_per_call(candidate, 1))
        iters = min(max_iters, max(1, math.ceil(min_sample_seconds / max(once, 1e-9))))
        timings[name] = Timing(iters=iters)
    for _ in range(repeats):
        for name, candidate in candidates.items():
            timings[name].samples.append(timer.seconds_per_call(candidate, timings[name].iters))
    return timings
