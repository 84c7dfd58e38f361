"""fastconv's functional API: the signatures, semantics and errors of torch.nn.functional.

These wrappers turn Python-level arguments (ints or pairs, padding strings, unbatched input) into
the fixed arguments of the ops in torch.ops.fastconv, raising torch's errors for malformed ones;
the ops check everything else in C++ (csrc/ops/shape_checks.cpp).

The public functions are for eager Python (their argument handling is not TorchScript). Each ends
in a TorchScript-compatible core, which fastconv.nn's modules call directly, so that converted
models script. The convolutions live in _conv_functional.py, the poolings in _pool_functional.py.
"""

from ._conv_functional import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from ._pool_functional import (
    avg_pool1d,
    avg_pool2d,
    lp_pool1d,
    lp_pool2d,
    max_pool1d,
    max_pool2d,
    max_unpool1d,
    max_unpool2d,
)

__all__ = [
    "conv2d",
    "conv_transpose2d",
    "conv1d",
    "conv_transpose1d",
    "max_pool2d",
    "max_unpool2d",
    "avg_pool2d",
    "lp_pool2d",
    "max_pool1d",
    "avg_pool1d",
    "max_unpool1d",
    "lp_pool1d",
]
