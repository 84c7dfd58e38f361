"""The harness of the hostile-argument table (hostile_cases.py) and of the differential fuzz
(test_fuzz.py): how fastconv's answer to a call is compared with torch's (results, errors, and the
documented differences a case may expect instead), and the worker processes the calls run in, so
that a crash or a hang fails its case and not the test run."""

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import traceback

import torch
import torch.nn.functional as F

from helpers import TOLERANCES

# Worker limits: a case must answer within CASE_TIMEOUT_S (torch answers all of them in well
# under a second) and a worker may not map more than MEMORY_LIMIT bytes, so that a workspace sized
# by the padding fails fast instead of swapping the machine.
CASE_TIMEOUT_S = 10.0
MEMORY_LIMIT = 4 << 30


# ------------------------------------------------------------------------------ comparison


def _tensors_equal(a, b):
    if a.dtype.is_floating_point or a.dtype.is_complex:
        rtol, atol = TOLERANCES.get(a.dtype, (0, 0))
        try:
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol, equal_nan=True)
            return True
        except AssertionError:
            return False
    return torch.equal(a, b)


def describe_mismatch(fast, ref, path="result"):
    """None if fastconv's result `fast` is torch's `ref`, else a description of the difference."""
    if isinstance(ref, torch.Tensor):
        if not isinstance(fast, torch.Tensor):
            return f"{path}: torch returned a tensor, fastconv {type(fast).__name__}"
        for attr in ("shape", "dtype", "device"):
            if getattr(fast, attr) != getattr(ref, attr):
                return f"{path}: {attr} {getattr(fast, attr)} vs torch's {getattr(ref, attr)}"
        if ref.device.type == "meta":
            return None
        if not _tensors_equal(fast.detach(), ref.detach()):
            return (
                f"{path}: values differ: {fast.detach().flatten()[:8].tolist()} vs torch's "
                f"{ref.detach().flatten()[:8].tolist()}"
            )
        return None
    if isinstance(ref, (tuple, list)):
        if not isinstance(fast, (tuple, list)) or len(fast) != len(ref):
            return f"{path}: {type(fast).__name__} vs torch's {type(ref).__name__} of {len(ref)}"
        for i, (a, b) in enumerate(zip(fast, ref)):
            mismatch = describe_mismatch(a, b, f"{path}[{i}]")
            if mismatch:
                return mismatch
        return None
    return None if fast == ref else f"{path}: {fast!r} vs torch's {ref!r}"


# torch's messages for errors raised while it parses Python arguments carry a C++ backtrace, with
# addresses that differ from process to process: compared without it.
_BACKTRACE = re.compile(
    r"\nException raised from .*?(?:(?:frame #\d+:[^\n]*|<omitting python frames>)\n?)+", re.S
)


def message(error):
    return _BACKTRACE.sub("", str(error))


def same_error(fast_error, ref_error):
    return type(fast_error) is type(ref_error) and message(fast_error) == message(ref_error)


def short_error(error):
    return f"{type(error).__name__}: {message(error)[:600]}"


# Unpooling with several invalid indices: torch names whichever its threads wrote last (it is
# not deterministic), fastconv names one of them deterministically. Where the indices hold more
# than one invalid value, fastconv's message may name another of them; with one, the same.
_INVALID_INDEX = re.compile(
    r"Found an invalid max index: (-?\d+) \(output volumes are of size (\d+)x(\d+)\)"
)


def invalid_indices(input, indices, kernel_size, stride=None, padding=0, output_size=None, dims=2):
    """The distinct invalid values in max_unpool2d's (dims 2) or max_unpool1d's (dims 1) indices,
    for the plane torch unpools into (None where that cannot be worked out: the call is malformed
    before the indices matter)."""
    try:
        from torch.nn.modules.utils import _pair, _single

        expand = _pair if dims == 2 else _single
        kernel = expand(kernel_size)
        size = F._unpool_output_size(
            input,
            kernel,
            expand(stride) if stride is not None else kernel,
            expand(padding),
            output_size,
        )
        plane = 1
        for s in size[-dims:]:
            plane *= int(s)
        flat = indices.detach().reshape(-1)
        return set(flat[(flat < 0) | (flat >= plane)].tolist())
    except Exception:  # noqa: BLE001
        return None


def with_invalid_indices(unpool, record, dims=2):
    """max_unpool2d (max_unpool1d with dims 1) that first adds the invalid values of its indices to
    `record`."""

    def wrapped(*args, **kwargs):
        found = invalid_indices(*args, **kwargs, dims=dims)
        if found:
            record.update(found)
        return unpool(*args, **kwargs)

    return wrapped


def _same_invalid_index_error(fast_error, ref_error, invalid):
    a = _INVALID_INDEX.fullmatch(message(fast_error))
    b = _INVALID_INDEX.fullmatch(message(ref_error))
    return (
        type(fast_error) is type(ref_error)
        and a is not None
        and b is not None
        and a.group(2, 3) == b.group(2, 3)
        and invalid is not None
        and len(invalid) > 1
        and int(a.group(1)) in invalid
    )


# Documented differences: torch errors that are torch bugs, for which fastconv must raise a
# RuntimeError of its own (any message) rather than copy them.
# - int64's minimum in an int list is torch's SymInt sentinel: torch answers "SymIntArrayRef
#   expected to contain only concrete integers" instead of checking the value;
# - an output whose byte count overflows int64: torch wraps it and tries to allocate the wrapped
#   number of bytes (its message depends on the machine's memory).
# - oneDNN's internal failures, where its int32 dimensions overflow or a kernel dimension is zero
#   ("could not construct a memory descriptor", "could not create a primitive descriptor");
# - output sizes or strides computed with wrapped arithmetic: "invalid shape dimension -...",
#   "Stride calculation overflowed", "calculated output size -... is too small" (its depthwise
#   kernel's int32 sizes);
# - a zero kernel dimension with an empty batch and groups: torch's group split raises
#   IndexError "select(): index 0 out of range" (fastconv may raise that or a RuntimeError);
# - a bias of another dtype with padding='same' or 'valid': torch's answer depends on its backend.
TORCH_BUG_MESSAGES = re.compile(
    r"SymIntArrayRef expected to contain only concrete integers|"
    r"DefaultCPUAllocator: can't allocate memory|"
    r"could not construct a memory descriptor using a format tag|"
    r"could not create a primitive descriptor for the convolution|"
    # conv_transpose2d's oneDNN path on a negative output size or an empty kernel
    # (docs/compatibility.md: fastconv raises the slow kernel's words there)
    r"could not create a primitive descriptor for the deconvolution|"
    r"^numel: integer multiplication overflow$|"
    r"invalid shape dimension -\d+|"
    r"^Stride calculation overflowed$|"
    r"calculated output size -\d+ -?\d+ is too small|"
    r"calculated output size -?\d+ -\d+ is too small|"
    r"select\(\): index 0 out of range for tensor of size \[0\] at dimension 0|"
    # padding='same'/'valid' and a bias of another dtype: torch's slow path casts the bias, its
    # oneDNN path refuses with this; fastconv always gives conv2d's bias dtype error (README).
    r"and bias type \(torch\.\w+\) should be the same or input should be a MKLDNN tensor"
)


def _strides_wrap(result):
    """Documented difference: an empty result whose other dimensions hold 2**63 elements or more.
    torch's convolution returns it with strides that wrapped around int64; fastconv's allocation
    (torch's at::empty) refuses it with "Stride calculation overflowed"."""
    if not isinstance(result, torch.Tensor) or result.numel() != 0:
        return False
    elements = 1
    for size in result.shape:
        elements *= max(size, 1)
    return elements >= 2**63


def compare_calls(fast_fn, torch_fn, expect=None, invalid=None):
    """None if fast_fn() behaves as torch_fn() (or as `expect` says), else what differs. `invalid`:
    the invalid indices the calls unpool (see _INVALID_INDEX)."""
    ref, ref_error = torch_fn()
    fast, fast_error = fast_fn()
    if expect is not None:
        return expect(fast, fast_error, ref, ref_error)
    if ref_error is not None:
        if fast_error is None:
            return f"torch raised {short_error(ref_error)}; fastconv returned {summary(fast)}"
        if TORCH_BUG_MESSAGES.search(message(ref_error)) and isinstance(
            fast_error, (RuntimeError, type(ref_error))
        ):
            return None
        if not same_error(fast_error, ref_error) and not _same_invalid_index_error(
            fast_error, ref_error, invalid
        ):
            return (
                f"torch raised {short_error(ref_error)}; fastconv raised {short_error(fast_error)}"
            )
        return None
    if fast_error is not None:
        if _strides_wrap(ref) and message(fast_error) == "Stride calculation overflowed":
            return None
        return f"torch returned {summary(ref)}; fastconv raised {short_error(fast_error)}"
    mismatch = describe_mismatch(fast, ref)
    return None if mismatch is None else f"torch returned {summary(ref)}; fastconv: {mismatch}"


def summary(result):
    if isinstance(result, torch.Tensor):
        return f"tensor{list(result.shape)} {result.dtype} on {result.device}"
    if isinstance(result, (tuple, list)):
        return "(" + ", ".join(summary(r) for r in result) + ")"
    return repr(result)


# ------------------------------------------------------------------- documented differences
# A case's `expect`: expect(fast_result, fast_error, torch_result, torch_error) -> None or a
# mismatch description, in place of the comparison with torch.


def raises_runtime_error(fast, fast_error, ref, ref_error):
    """Documented difference (the case's `why` says which torch bug): fastconv must raise a
    RuntimeError where torch answers wrongly."""
    if isinstance(fast_error, RuntimeError):
        return None
    got = (
        f"raised {short_error(fast_error)}"
        if fast_error is not None
        else f"returned {summary(fast)}"
    )
    return f"expected a RuntimeError (torch's own answer is a bug, see the case), fastconv {got}"


def torch_or_exact_output_size(exact):
    """Documented difference: torch computes the pooling output size with int32 kernel and
    dilation, and its message names the wrapped size; fastconv may name the exact one instead."""

    def expect(fast, fast_error, ref, ref_error):
        if fast_error is not None and same_error(fast_error, ref_error):
            return None
        wanted = re.sub(
            r"Calculated output size: \((\d+)x(-?\d+)x",
            rf"Calculated output size: (\1x{exact}x",
            message(ref_error),
        )
        if isinstance(fast_error, RuntimeError) and message(fast_error) == wanted:
            return None
        got = fast_error or summary(fast)
        return f"expected {wanted!r} or torch's {message(ref_error)!r}, fastconv: {got!r}"

    return expect


def raises_not_implemented(fast, fast_error, ref, ref_error):
    """Documented difference (README, "Supported, and not yet"): fastconv has no integer or complex
    convolution kernels and says so, where torch computes one."""
    if isinstance(fast_error, NotImplementedError):
        return None
    got = short_error(fast_error) if fast_error else summary(fast)
    return f"expected NotImplementedError, fastconv: {got}"


def no_crash(shape):
    """For an op without a torch counterpart: a RuntimeError, or a tensor of `shape`."""

    def expect(fast, fast_error, ref, ref_error):
        if fast_error is not None:
            return (
                None
                if isinstance(fast_error, RuntimeError)
                else f"raised {short_error(fast_error)}"
            )
        if isinstance(fast, torch.Tensor) and list(fast.shape) == list(shape):
            return None
        return f"expected a RuntimeError or a tensor of size {list(shape)}, got {summary(fast)}"

    return expect


# ------------------------------------------------------------------------------------ workers


def limit_memory():
    """Cap this process's data at what it maps now plus MEMORY_LIMIT: relative to the present
    size, so that a sanitizer build's shadow memory (mapped at startup) still fits."""
    import resource

    mapped = 0
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmData:"):
                    mapped = int(line.split()[1]) * 1024
    except OSError:
        pass
    limit = mapped + MEMORY_LIMIT
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def serve(run_case):
    """A worker's loop: reads case names on stdin and answers one JSON line each, with
    run_case(name): None, or what differs. "__crash__" and "__hang__" test the harness itself."""
    limit_memory()
    import fastconv  # noqa: F401  imported before the first case, so that its time is not the case's

    print("READY", flush=True)
    for line in sys.stdin:
        name = line.rstrip("\n")
        if name == "__crash__":
            os.abort()
        if name == "__hang__":
            time.sleep(3600)
        try:
            verdict = run_case(name)
        except BaseException:  # noqa: BLE001  a failure of the harness is the case's failure
            verdict = "harness error: " + traceback.format_exc()
        print("RESULT " + json.dumps({"name": name, "verdict": verdict}), flush=True)


def worker_env():
    """The environment of a worker: this one, with the repository root first on the path."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


class _Worker:
    def __init__(self, script, env=None):
        env = worker_env() if env is None else env
        self.proc = subprocess.Popen(
            [sys.executable, script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            bufsize=1,
        )
        self.lines = queue.Queue()
        self.stderr = []
        threading.Thread(
            target=self._pump, args=(self.proc.stdout, self.lines), daemon=True
        ).start()
        threading.Thread(target=self._collect, daemon=True).start()

    @staticmethod
    def _pump(stream, q):
        for line in stream:
            q.put(line)
        q.put(None)

    def _collect(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def read(self, timeout):
        """The next line of the worker's stdout, None at its end, or TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError from None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def death(self):
        self.proc.wait(timeout=10)
        code = self.proc.returncode
        tail = "".join(self.stderr)[-800:]
        return f"the worker died (exit status {code}){': ' + tail if tail else ''}"


def run_cases(script, names, startup_timeout=120.0, case_timeout=CASE_TIMEOUT_S):
    """{name: None or a failure description} for each case, run in worker processes (`python
    script`, which serves them); a worker that crashes or hangs fails its case and a fresh one
    takes the rest."""
    results = {}
    pending = list(names)
    while pending:
        worker = _Worker(script)
        try:
            line = worker.read(startup_timeout)
            if line is None or not line.startswith("READY"):
                raise RuntimeError(f"the hostile-case worker did not start: {worker.death()}")
            while pending:
                name = pending[0]
                worker.proc.stdin.write(name + "\n")
                worker.proc.stdin.flush()
                try:
                    line = worker.read(case_timeout)
                except TimeoutError:
                    results[pending.pop(0)] = f"hang: no answer within {case_timeout:.0f} s"
                    break
                if line is None:
                    results[pending.pop(0)] = "crash: " + worker.death()
                    break
                record = json.loads(line[len("RESULT ") :])
                assert record["name"] == name, (record, name)
                results[pending.pop(0)] = record["verdict"]
        finally:
            worker.kill()
    return results
