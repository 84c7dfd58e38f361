"""Switches for fastconv's kernel choices, in the way of torch.backends:

    fastconv.backends.winograd.enabled = False       # 3x3 layers: the direct kernel or packed GEMM
    with fastconv.backends.direct.flags(enabled=False):
        y = fastconv.conv2d(x, w, padding=1)

winograd: float32 3x3 stride-1 convolutions (forward and input gradient) on the CPU, with at
least 48 input and output channels and one group (the weight gradient: 16), run by Winograd's
F(2x2, 3x3), which needs 16 multiplications per 2x2 outputs and channel pair instead of 36. Its
transforms use only 0, +-1 and +-1/2; the result differs from the direct sum by rounding only,
and tests/test_winograd.py holds its error against a float64 evaluation to at most 4x torch's
own float32 error.

direct: shallow float32 convolutions on the CPU (grouped ones such as ResNeXt's, few channels,
the stems; at most 1,152 weights per output channel, stride up to 4), forward, stride-1 input
gradient, and the weight gradient where a group has at most 32 output channels, summed straight
from zero-padded input planes instead of im2col columns. The sums are the same products in
another order: the results differ by rounding only. Off, these layers take the packed GEMM.

The switches are process-wide, as torch's are.
"""

import contextlib

from ._extension import _C

__all__ = ["winograd", "direct"]


class _PathFlags:
    def __init__(self, name: str, get, set_):
        self._name, self._get, self._set = name, get, set_

    @property
    def enabled(self) -> bool:
        return self._get()

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._set(bool(value))

    @contextlib.contextmanager
    def flags(self, enabled: bool = True):
        """Sets `enabled` inside the with-block and restores the previous value after it."""
        previous = self.enabled
        self.enabled = enabled
        try:
            yield
        finally:
            self.enabled = previous

    def __repr__(self) -> str:
        return f"fastconv.backends.{self._name}(enabled={self.enabled})"


winograd = _PathFlags("winograd", _C._winograd_enabled, _C._set_winograd_enabled)
direct = _PathFlags("direct", _C._direct_enabled, _C._set_direct_enabled)
