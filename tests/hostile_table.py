"""The shared parts of the hostile-argument tables (hostile_cases.py and the per-family tables it
loads): the case registry, the inputs the cases draw (from one generator, reseeded before every
call so that torch and fastconv see the same values) and the argument values they try."""

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F


@dataclass
class Case:
    name: str
    fn: Callable
    # None: compare with torch. Otherwise expect(fast_result, fast_error, torch_result,
    # torch_error) -> None or a mismatch description, for a documented difference from torch.
    expect: Optional[Callable] = None
    why: str = ""
    # A known defect of fastconv's: the case fails until it is fixed (test_hostile_inputs.py marks
    # it xfail(strict=True), so that the fix shows); the reason names the defect.
    defect: str = ""


CASES = {}


def case(name, fn, expect=None, why=""):
    assert name not in CASES, name
    CASES[name] = Case(name, fn, expect, why)


def document(names, expect, why):
    """Gives the cases `names` (already in the table) a documented difference from torch."""
    for name in names:
        CASES[name].expect, CASES[name].why = expect, why


def defect(names, reason):
    """Marks the cases `names` (already in the table) as failing on a known defect of fastconv's."""
    for name in names:
        CASES[name].defect = reason


# ------------------------------------------------------------------------------------- inputs

_generator = torch.Generator()


def x(*shape, dtype=torch.float32, cl=False, grad=False):
    t = torch.randn(*shape, generator=_generator, dtype=torch.float64).to(dtype)
    if cl:
        t = t.contiguous(memory_format=torch.channels_last)
    return t.requires_grad_(grad)


def ints(*shape, dtype, high=100, cl=False):
    t = torch.randint(0, high, shape, generator=_generator).to(dtype)
    return t.contiguous(memory_format=torch.channels_last) if cl else t


def meta(*shape, dtype=torch.float32):
    return torch.empty(*shape, dtype=dtype, device="meta")


def pooled(shape=(1, 2, 4, 4), kernel=2, **kwargs):
    """(values, indices) of torch's max_pool2d: the unpooling inputs, the same for both
    libraries."""
    return F.max_pool2d(x(*shape), kernel, return_indices=True, **kwargs)


def grads(output, *inputs):
    """Gradients of the sum of output (or of its first element, a pooling's values)."""
    if isinstance(output, tuple):
        output = output[0]
    return torch.autograd.grad(output.sum(), inputs, allow_unused=True)


# Huge and negative argument values, by label.
BIG = {
    "2**31-1": 2**31 - 1,
    "2**31": 2**31,
    "2**32": 2**32,
    "2**62": 2**62,
    "2**63-1": 2**63 - 1,
    "2**63": 2**63,
    "-1": -1,
    "-2**31": -(2**31),
    "-2**63": -(2**63),
}


def forms(value):
    """The ways a value is passed: alone, and as the first or the second of a pair."""
    return {"": value, "(v,1)": (value, 1), "(1,v)": (1, value)}
