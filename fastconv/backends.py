"""Switches for fastconv's kernel choices, in the way of torch.backends:

    fastconv.backends.winograd.enabled = False       # 3x3 layers take the direct GEMM path
    with fastconv.backends.winograd.flags(enabled=False):
        y = fastconv.conv2d(x, w, padding=1)

winograd: float32 3x3 stride-1 convolutions (forward and input gradient) on the CPU, with at
least 16 input and output channels and one group, run by Winograd's F(2x2, 3x3), which needs 16
multiplications per 2x2 outputs and channel pair instead of 36. Its transforms use only 0, +-1
and +-1/2; the result differs from the direct sum by rounding only, and tests/test_winograd.py
holds its error against a float64 evaluation to at most 4x torch's own float32 error. The switch
is process-wide, as torch's are.
"""

import contextlib

from . import _C

__all__ = ["winograd"]


class _WinogradFlags:
    @property
    def enabled(self) -> bool:
        return _C._winograd_enabled()

    @enabled.setter
    def enabled(self, value: bool) -> None:
        _C._set_winograd_enabled(bool(value))

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
        return f"fastconv.backends.winograd(enabled={self.enabled})"


winograd = _WinogradFlags()
