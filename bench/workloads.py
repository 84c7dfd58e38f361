"""What one benchmark case runs: its tensors, fastconv and the references as timeable calls for
each pass, the work each pass does (FLOPs or bytes), and the check that fastconv agrees with torch.

Implementations of a case (fastconv's first; each reference is compared with the fastconv
implementation that takes the same input, COUNTERPARTS):
  conv2d      fastconv | torch: default backend (oneDNN on CPU, cuDNN in benchmark mode on CUDA)
                       | torch_im2col: torch's own im2col + GEMM (oneDNN / cuDNN switched off)
  max_pool2d  fastconv (NCHW), fastconv_cl (channels_last)
                       | torch: F.max_pool2d on NCHW, against fastconv
                       | torch_cl: F.max_pool2d on channels_last, against fastconv_cl
"""

import contextlib
import functools
import math
from dataclasses import dataclass
from typing import Callable, ContextManager, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

import fastconv

from .suites import Case, Conv, Pool
from .timing import Candidate

PASSES = ("fwd", "bwd", "fwdbwd")
REFERENCES = {"conv2d": ("torch", "torch_im2col"), "max_pool2d": ("torch", "torch_cl")}
# fastconv's implementations per op, and which of them each reference is timed against.
FASTCONV_IMPLS = {"conv2d": ("fastconv",), "max_pool2d": ("fastconv", "fastconv_cl")}
COUNTERPARTS = {("max_pool2d", "torch_cl"): "fastconv_cl"}


def counterpart(op: str, reference: str) -> str:
    """The fastconv implementation that a reference's speedup is measured against."""
    return COUNTERPARTS.get((op, reference), "fastconv")


REFERENCE_DESCRIPTIONS = {
    (
        "conv2d",
        "torch",
    ): "torch's default conv2d backend (oneDNN on CPU, cuDNN benchmark mode on CUDA)",
    ("conv2d", "torch_im2col"): "torch's own im2col + GEMM path (oneDNN / cuDNN switched off)",
    ("max_pool2d", "torch"): "torch F.max_pool2d(return_indices=True), NCHW input",
    ("max_pool2d", "torch_cl"): "torch F.max_pool2d(return_indices=True), channels_last input "
    "(compared with fastconv_cl: fastconv on the same channels_last input)",
}
# Backward does two GEMMs of the forward's size (input and weight gradients).
FLOPS_PER_FORWARD = {"fwd": 1, "bwd": 2, "fwdbwd": 3}


class CorrectnessError(AssertionError):
    """fastconv's result differs from torch's beyond what rounding explains."""


@dataclass
class Impl:
    """One implementation of a case: op(*inputs) runs it, giving a tensor or a tuple whose first
    element is the differentiable output (max-pooling's indices follow it); inputs and
    grad_output are its own tensors (e.g. channels_last copies); context switches torch's backends
    for it (its backward too, as torch picks the backward's backend when it runs)."""

    name: str
    op: Callable[..., Union[torch.Tensor, Tuple[torch.Tensor, ...]]]
    inputs: Tuple[Optional[torch.Tensor], ...]
    grad_output: torch.Tensor
    context: Callable[[], ContextManager] = contextlib.nullcontext
    input_names: Sequence[str] = ("input", "weight", "bias")  # names the gradients

    def forward(self) -> torch.Tensor:
        result = self.op(*self.inputs)
        return result[0] if isinstance(result, tuple) else result

    @property
    def differentiable_inputs(self) -> Tuple[torch.Tensor, ...]:
        return tuple(t for t in self.inputs if t is not None and t.requires_grad)

    def candidate(self, pass_name: str) -> Candidate:
        """The call that times one pass: the forward without autograd (inference), the backward
        alone (through a graph built once, kept with retain_graph), or both."""
        if pass_name == "fwd":
            return Candidate(self.forward, _stacked(self.context, torch.no_grad))
        if pass_name == "bwd":
            with self.context():
                output = self.forward()
            return Candidate(
                lambda: torch.autograd.grad(
                    output, self.differentiable_inputs, self.grad_output, retain_graph=True
                ),
                self.context,
            )
        if pass_name == "fwdbwd":
            return Candidate(
                lambda: torch.autograd.grad(
                    self.forward(), self.differentiable_inputs, self.grad_output
                ),
                self.context,
            )
        raise ValueError(f"unknown pass {pass_name!r}; choose from {PASSES}")

    def results(self) -> Dict[str, torch.Tensor]:
        """Output and gradients, named after what they are the gradient of."""
        with self.context():
            output = self.forward()
            grads = torch.autograd.grad(output, self.differentiable_inputs, self.grad_output)
        names = [
            name
            for name, t in zip(self.input_names, self.inputs)
            if t is not None and t.requires_grad
        ]
        return {"output": output, **{f"grad_{name}": g for name, g in zip(names, grads)}}


def _stacked(*contexts: Callable[[], ContextManager]) -> Callable[[], ContextManager]:
    @contextlib.contextmanager
    def entered():
        with contextlib.ExitStack() as stack:
            for context in contexts:
                stack.enter_context(context())
            yield

    return entered


@contextlib.contextmanager
def _disabled(backend):
    """Switches a torch.backends library off (only that: torch.backends.cudnn.flags() would also
    reset the TF32 settings, through the legacy API that torch refuses to mix with the new one)."""
    enabled = backend.enabled
    backend.enabled = False
    try:
        yield
    finally:
        backend.enabled = enabled


def torch_im2col_context(device: torch.device) -> Callable[[], ContextManager]:
    """Switches off the vendor libraries (oneDNN and NNPACK on the CPU, cuDNN on CUDA) so that
    torch falls back to its own im2col + GEMM (on CUDA, depthwise layers go to torch's own direct
    depthwise kernel instead)."""
    if device.type == "cuda":
        return functools.partial(_disabled, torch.backends.cudnn)
    return _stacked(
        functools.partial(_disabled, torch.backends.mkldnn),
        functools.partial(torch.backends.nnpack.flags, enabled=False),
    )


def normalized_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest deviation from the float64 reference, relative to the reference's largest value."""
    scale = reference.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
    return ((value.double() - reference).abs().max() / scale).item()


def check_against_reference(
    what: str,
    fastconv_results: Dict[str, torch.Tensor],
    torch_results: Dict[str, torch.Tensor],
    reference: Dict[str, torch.Tensor],
    sum_lengths: Dict[str, int],
    dtype: torch.dtype,
) -> Dict[str, dict]:
    """Each result of fastconv must be as close to the float64 reference as rounding allows: within
    eps * sqrt(n) (the statistical rounding error of an n-term sum at this dtype, relative to the
    largest value) or within 4x torch's own error, whichever is larger. Summation order differs
    between the implementations, so exact equality cannot be asked of them."""
    eps = torch.finfo(dtype).eps
    report = {}
    for name, expected in reference.items():
        fast_error = normalized_error(fastconv_results[name], expected)
        torch_error = normalized_error(torch_results[name], expected)
        tolerance = max(4 * torch_error, eps * math.sqrt(sum_lengths[name]))
        report[name] = {"fastconv": fast_error, "torch": torch_error, "tolerance": tolerance}
        if not fast_error <= tolerance:  # also catches NaN
            raise CorrectnessError(
                f"{what}: fastconv's {name} disagrees with torch: max error {fast_error:.3g} "
                f"(relative to the largest value, against a float64 reference) exceeds the "
                f"tolerance {tolerance:.3g}; torch's own error is {torch_error:.3g}"
            )
    return report


def random_tensor(shape, dtype, device, scale=1.0, requires_grad=False) -> torch.Tensor:
    # Drawn in float32 so every dtype sees the same values (up to rounding).
    t = (torch.randn(shape, device=device) * scale).to(dtype)
    return t.requires_grad_(requires_grad)


def cuda_workspace_bytes(impl: Impl) -> int:
    """Peak memory one forward allocates beyond its outputs: the workspace (CUDA only)."""
    with impl.context(), torch.no_grad():
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        result = impl.op(*impl.inputs)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    outputs = result if isinstance(result, tuple) else (result,)
    return max(0, peak - before - sum(t.numel() * t.element_size() for t in outputs))


class ConvWorkload:
    def __init__(self, case: Case, device: torch.device, dtype: torch.dtype):
        layer: Conv = case.layer
        self.case, self.layer, self.device, self.dtype = case, layer, device, dtype
        self.args = ([layer.stride] * 2, [layer.padding] * 2, [layer.dilation] * 2, layer.groups)
        fan_in = layer.c // layer.groups * layer.r * layer.s
        # Weights scaled as a trained network's would be, so outputs stay near unit size.
        self.x = random_tensor(
            (case.batch, layer.c, layer.h, layer.w), dtype, device, requires_grad=True
        )
        self.w = random_tensor(
            (layer.k, layer.c // layer.groups, layer.r, layer.s),
            dtype,
            device,
            fan_in**-0.5,
            requires_grad=True,
        )
        self.b = random_tensor((layer.k,), dtype, device, 0.1, True) if layer.bias else None
        self.gy = random_tensor((case.batch, layer.k, layer.out_h, layer.out_w), dtype, device)
        inputs = (self.x, self.w, self.b)
        stride, padding, dilation, groups = self.args
        self.impls = {
            "fastconv": Impl(
                "fastconv",
                lambda x, w, b: fastconv.conv2d(x, w, b, stride, padding, dilation, groups),
                inputs,
                self.gy,
            ),
            "torch": Impl("torch", self._torch_conv, inputs, self.gy),
            "torch_im2col": Impl(
                "torch_im2col", self._torch_conv, inputs, self.gy, torch_im2col_context(device)
            ),
        }

    def _torch_conv(self, x, w, b):
        return F.conv2d(x, w, b, *self.args)

    def work(self, pass_name: str) -> float:
        """FLOPs of a pass."""
        return self.layer.forward_flops(self.case.batch) * FLOPS_PER_FORWARD[pass_name]

    def footprint_bytes(self) -> int:
        """Bytes of the forward's tensors: input, weight, output."""
        layer, n = self.layer, self.case.batch
        elements = (
            n * layer.c * layer.h * layer.w
            + self.w.numel()
            + n * layer.k * layer.out_h * layer.out_w
        )
        return elements * self.x.element_size()

    def check(self) -> Dict[str, dict]:
        leaves = [
            None if t is None else t.detach().double().requires_grad_()
            for t in (self.x, self.w, self.b)
        ]
        reference = Impl("float64", self._torch_conv, tuple(leaves), self.gy.double()).results()
        layer, batch = self.layer, self.case.batch
        sum_lengths = {
            "output": layer.c // layer.groups * layer.r * layer.s,
            "grad_input": layer.k // layer.groups * layer.r * layer.s,
            "grad_weight": batch * layer.out_h * layer.out_w,
            "grad_bias": batch * layer.out_h * layer.out_w,
        }
        return check_against_reference(
            f"{self.case.suite}/{self.case.label} ({layer.describe()}, {_dtype_name(self.dtype)})",
            self.impls["fastconv"].results(),
            self.impls["torch"].results(),
            reference,
            sum_lengths,
            self.dtype,
        )

    def workspace_bytes(self, impl_name: str) -> Optional[int]:
        if self.device.type == "cuda":
            return cuda_workspace_bytes(self.impls[impl_name])
        if impl_name == "fastconv":
            meta = [t.detach().to("meta") for t in (self.x, self.w)]
            return fastconv._C.conv2d_cpu_workspace_bytes(*meta, *self.args)
        return None  # torch's CPU allocations cannot be watched from here

    def backend(self, impl_name: str) -> str:
        """Which of torch's convolution backends a reference runs on (it falls back from oneDNN
        for some dtypes, e.g. float64, or bfloat16 without AVX-512)."""
        if impl_name == "fastconv":
            return "fastconv"
        impl = self.impls[impl_name]
        try:
            with impl.context():
                backend = torch._C._select_conv_backend(
                    self.x,
                    self.w,
                    self.b,
                    *self.args[:3],
                    False,
                    [0, 0],
                    self.layer.groups,
                    None if self.b is None else list(self.b.shape),
                )
            return str(backend).split(".")[-1]
        except (AttributeError, RuntimeError, TypeError):  # private API: may change
            return "unknown"


class PoolWorkload:
    def __init__(self, case: Case, device: torch.device, dtype: torch.dtype):
        layer: Pool = case.layer
        self.case, self.layer, self.device, self.dtype = case, layer, device, dtype
        self.args = (layer.kernel, layer.stride, layer.padding)
        self.x = random_tensor(
            (case.batch, layer.c, layer.h, layer.w), dtype, device, requires_grad=True
        )
        self.gy = random_tensor((case.batch, layer.c, layer.out_h, layer.out_w), dtype, device)
        x_cl = self.x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
        gy_cl = self.gy.contiguous(memory_format=torch.channels_last)
        self.impls = {
            "fastconv": Impl(
                "fastconv", self._fastconv_pool, (self.x,), self.gy, input_names=("input",)
            ),
            "fastconv_cl": Impl(
                "fastconv_cl", self._fastconv_pool, (x_cl,), gy_cl, input_names=("input",)
            ),
            "torch": Impl("torch", self._torch_pool, (self.x,), self.gy, input_names=("input",)),
            "torch_cl": Impl("torch_cl", self._torch_pool, (x_cl,), gy_cl, input_names=("input",)),
        }

    def _fastconv_pool(self, x):
        return fastconv.max_pool2d(x, *self.args, return_indices=True)

    def _torch_pool(self, x):
        return F.max_pool2d(x, *self.args, return_indices=True)

    def work(self, pass_name: str) -> float:
        """Bytes a pass must move, each tensor once: forward reads the input and writes the values
        and the int64 indices; backward reads the output gradient and the indices and writes the
        input's gradient (the same for every layout). Against the copy's bandwidth (bytes read plus
        bytes written, machine.measure_peaks) this is the fraction of a memory-bound pass's
        attainable speed; it can pass 100% when the tensors fit in the cache."""
        element = torch.empty((), dtype=self.dtype).element_size()
        n, layer = self.case.batch, self.layer
        inputs = n * layer.c * layer.h * layer.w
        outputs = n * layer.c * layer.out_h * layer.out_w
        forward = inputs * element + outputs * (element + 8)
        backward = outputs * (element + 8) + inputs * element
        return {"fwd": forward, "bwd": backward, "fwdbwd": forward + backward}[pass_name]

    def footprint_bytes(self) -> int:
        """Bytes of the forward's tensors (input, values, indices); the backward's (output
        gradient, indices, input gradient) are the same size."""
        return int(self.work("fwd"))

    def check(self) -> Dict[str, dict]:
        """fastconv's values and indices must be torch's exactly, on NCHW and on channels_last
        input; gradients within rounding of a float64 reference."""
        what = (
            f"{self.case.suite}/{self.case.label} ({self.layer.describe()}, "
            f"{_dtype_name(self.dtype)})"
        )
        report = {}
        for fast_name, torch_name in (("fastconv", "torch"), ("fastconv_cl", "torch_cl")):
            x = self.impls[fast_name].inputs[0].detach()
            output, indices = self._fastconv_pool(x)
            expected, expected_indices = self._torch_pool(x)
            if not torch.equal(indices, expected_indices):
                differ = (indices != expected_indices).nonzero()
                raise CorrectnessError(
                    f"{what}: {fast_name}'s indices differ from torch's at {len(differ)} of "
                    f"{indices.numel()} outputs, first at {differ[0].tolist()}: "
                    f"{indices[tuple(differ[0])].item()} vs "
                    f"{expected_indices[tuple(differ[0])].item()}"
                )
            if not torch.equal(output, expected):
                raise CorrectnessError(
                    f"{what}: {fast_name}'s max values differ from torch's (same indices)"
                )
            if output.is_contiguous() != expected.is_contiguous():
                raise CorrectnessError(f"{what}: {fast_name}'s output layout differs from torch's")
            # Overlapping windows add up to ceil(kernel / stride)^2 gradients per input.
            overlap = math.ceil(self.layer.kernel / self.layer.stride) ** 2
            x64 = x.double().requires_grad_()
            reference = Impl(
                "float64",
                self._torch_pool,
                (x64,),
                self.impls[fast_name].grad_output.double(),
                input_names=("input",),
            ).results()
            del reference["output"]
            checked = check_against_reference(
                f"{what} [{fast_name}]",
                self.impls[fast_name].results(),
                self.impls[torch_name].results(),
                reference,
                {"grad_input": overlap},
                self.dtype,
            )
            report.update(
                {
                    f"{name}{'_cl' if fast_name == 'fastconv_cl' else ''}": value
                    for name, value in checked.items()
                }
            )
        report["indices"] = {"identical": True}
        return report

    def workspace_bytes(self, impl_name: str) -> Optional[int]:
        return cuda_workspace_bytes(self.impls[impl_name]) if self.device.type == "cuda" else None

    def backend(self, impl_name: str) -> str:
        return {
            "fastconv": "fastconv NCHW",
            "fastconv_cl": "fastconv channels_last",
            "torch": "aten NCHW",
            "torch_cl": "aten channels_last",
        }[impl_name]


def make_workload(case: Case, device: torch.device, dtype: torch.dtype):
    return (ConvWorkload if case.layer.op == "conv2d" else PoolWorkload)(case, device, dtype)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")
