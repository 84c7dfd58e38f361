"""What the tests share: comparison with torch (values, layouts, gradients, errors), tensor
layouts, the thread count, and runs under another CPU capability."""

import contextlib
import os
import subprocess
import sys
from collections import namedtuple

import torch

# (rtol, atol) per dtype for fastconv vs torch: the two sum in different orders.
TOLERANCES = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-4, 1e-4),
    torch.float16: (2e-2, 2e-2),
    torch.bfloat16: (5e-2, 5e-2),
    torch.complex128: (1e-10, 1e-10),  # a complex convolution is three real ones
    torch.complex64: (1e-4, 1e-4),
}


def assert_close(actual, expected, dtype=None, equal_nan=False):
    """Within the tolerance of `dtype` (default: expected's)."""
    rtol, atol = TOLERANCES[dtype or expected.dtype]
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, equal_nan=equal_nan)


def call(fn):
    """(result, None) or (None, exception) of fn()."""
    try:
        return fn(), None
    except Exception as error:  # noqa: BLE001  the exception is the result under test
        return None, error


def assert_same_error(fast_error, torch_error):
    assert fast_error is not None, f"torch raised {torch_error!r}, fastconv raised nothing"
    assert type(fast_error) is type(torch_error), f"{fast_error!r} vs torch's {torch_error!r}"
    assert str(fast_error) == str(torch_error)


def assert_raises_like_torch(fast_fn, torch_fn):
    _, torch_error = call(torch_fn)
    assert torch_error is not None, "the reference call did not fail: the test case is wrong"
    _, fast_error = call(fast_fn)
    assert_same_error(fast_error, torch_error)


# ------------------------------------------------------------------------------------- layouts


def is_channels_last(t):
    return (
        t.dim() == 4
        and t.is_contiguous(memory_format=torch.channels_last)
        and not t.is_contiguous()
    )


def strided(t):
    """The same values in a view that is neither contiguous nor channels_last: every other
    element of a twice-as-wide buffer."""
    wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
    wide[..., ::2] = t
    return wide[..., ::2]


def with_layout(t, layout):
    """The same values as `t`, laid out as 'contiguous', 'channels_last' or 'strided'."""
    if layout == "contiguous":
        return t.contiguous()
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
    if layout == "strided":
        return strided(t)
    raise ValueError(layout)


LAYOUTS = ["contiguous", "channels_last", "strided"]


# --------------------------------------------------------------------------- against torch

Run = namedtuple("Run", "inputs outputs")


def grads(fn, tensors, grad_output=None):
    """fn's output, the gradients of its tensor arguments, and the grad_output used (random if none
    is given)."""
    tensors = [t.detach().requires_grad_() if t is not None else None for t in tensors]
    out = fn(*tensors)
    grad_output = torch.randn_like(out) if grad_output is None else grad_output
    out.backward(grad_output)
    return out, [t.grad if t is not None else None for t in tensors], grad_output


def check_in_dtype(fast_fn, torch_fn, tensors, kwargs, dtype):
    """fast_fn(*tensors, **kwargs) in `dtype`, the tensors' (output and gradients in it): close to
    fast_fn's float64 result on the same rounded inputs, and to torch_fn's own result in `dtype`."""
    fast = lambda *t: fast_fn(*t, **kwargs)  # noqa: E731
    grad_output = torch.randn_like(torch_fn(*(t.double() for t in tensors), **kwargs))
    actual, actual_grads, _ = grads(fast, tensors, grad_output.to(dtype))
    assert actual.dtype == dtype and all(g.dtype == dtype for g in actual_grads)
    exact, exact_grads, _ = grads(fast, [t.double() for t in tensors], grad_output)
    assert_close(actual.double(), exact, dtype)
    assert_close(actual, torch_fn(*tensors, **kwargs), dtype)
    for a, e in zip(actual_grads, exact_grads):
        assert_close(a.double(), e, dtype)


def _assert_same_tensor(actual, expected, exact, equal_nan):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, (
        f"{actual.shape} {actual.dtype} vs torch's {expected.shape} {expected.dtype}"
    )
    assert is_channels_last(actual) == is_channels_last(expected), "layout differs from torch's"
    if exact or not expected.dtype.is_floating_point:
        torch.testing.assert_close(actual, expected, rtol=0, atol=0, equal_nan=True)
    else:
        assert_close(actual, expected, equal_nan=equal_nan)


def check_against_torch(
    fast_fn,
    torch_fn,
    *inputs,
    kwargs=None,
    requires_grad=None,
    exact=False,
    equal_nan=False,
    backward=True,
    errors=False,
):
    """Calls fast_fn and torch_fn on leaf copies of `inputs` (tensors, None or other values), with
    **kwargs, and asserts that fastconv answers as torch does: each output (a tensor, or a tuple of
    them) of the same shape, dtype and layout (channels_last or not), with the same values: within
    TOLERANCES (NaN for NaN with equal_nan) or, where `exact` or not floating, bit for bit.

    requires_grad: which tensor inputs are differentiated: None for the floating ones, or the
    flag for all. With `backward`, for one random gradient of the first output, each of them gets
    torch's gradient (shape, dtype, layout of .grad, values within TOLERANCES). With `errors`, a
    call that torch refuses must raise the same exception (type and message); otherwise torch's
    error propagates (the test case is wrong).

    Returns (fastconv's Run, torch's Run) of the inputs and outputs, None where torch raised."""
    kwargs = kwargs or {}

    def leaves():
        return [
            t.detach().requires_grad_(
                t.is_floating_point() if requires_grad is None else requires_grad
            )
            if isinstance(t, torch.Tensor)
            else t
            for t in inputs
        ]

    fast_inputs, torch_inputs = leaves(), leaves()
    if errors:
        expected, torch_error = call(lambda: torch_fn(*torch_inputs, **kwargs))
        actual, fast_error = call(lambda: fast_fn(*fast_inputs, **kwargs))
        if torch_error is not None:
            assert_same_error(fast_error, torch_error)
            return None
        assert fast_error is None, f"fastconv raised {fast_error!r}"
    else:
        expected = torch_fn(*torch_inputs, **kwargs)
        actual = fast_fn(*fast_inputs, **kwargs)
    actual = tuple(actual) if isinstance(actual, tuple) else (actual,)
    expected = tuple(expected) if isinstance(expected, tuple) else (expected,)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        _assert_same_tensor(a, e, exact, equal_nan)

    differentiable = [
        i for i, t in enumerate(torch_inputs) if isinstance(t, torch.Tensor) and t.requires_grad
    ]
    if backward and differentiable:
        grad_output = torch.randn_like(expected[0])
        actual[0].backward(grad_output)
        expected[0].backward(grad_output)
        for i in differentiable:  # .grad: in the input's layout (autograd's layout contract)
            a, e = fast_inputs[i].grad, torch_inputs[i].grad
            if e is None:
                assert a is None, "fastconv gives a gradient where torch gives none"
            else:
                _assert_same_tensor(a, e, exact=False, equal_nan=equal_nan)
    return Run(fast_inputs, actual), Run(torch_inputs, expected)


# -------------------------------------------------------------------------- threads, CPU builds


@contextlib.contextmanager
def num_threads(count):
    """torch.set_num_threads(count) inside the with-block, the previous count restored after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def results_per_thread_count(fn, counts):
    """[fn() at each thread count in `counts`]."""
    results = []
    for count in counts:
        with num_threads(count):
            results.append(fn())
    return results


def run_with_cpu_capability(capability, script, *args, timeout=300):
    """`python -c script *args` with ATEN_CPU_CAPABILITY=capability, which picks the CPU builds
    torch and fastconv run ("default": the portable ones, as on a CPU without AVX2). Returns the
    finished process, its output captured as text."""
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability)
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
