"""Shared helpers: compare fastconv with torch.nn.functional on values, errors and gradients."""

import sys
from pathlib import Path

import pytest
import torch

# The example networks (examples/architectures.py) are the ones the tests check.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

# (rtol, atol) per dtype for fastconv vs torch: the two sum in different orders.
TOLERANCES = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-4, 1e-4),
    torch.float16: (2e-2, 2e-2),
    torch.bfloat16: (5e-2, 5e-2),
}


def assert_close(actual, expected, dtype=None):
    rtol, atol = TOLERANCES[dtype or expected.dtype]
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


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


def is_channels_last(t):
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def with_layout(t, layout):
    """The same values as `t`, laid out as 'contiguous', 'channels_last' or 'strided' (a view
    that is neither)."""
    if layout == "contiguous":
        return t.contiguous()
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
    if layout == "strided":  # every other element of a twice-as-wide buffer
        wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
        wide[..., ::2] = t
        return wide[..., ::2]
    raise ValueError(layout)


LAYOUTS = ["contiguous", "channels_last", "strided"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
