"""The one place fastconv's Python calls its ops, per op: the path a call takes.

- TorchScript: torch.ops (the only path it compiles);
- torch.compile: torch.ops, which it traces (fake kernels: fastconv/_ops.py);
- a torch.func transform or forward-mode AD active: the Python autograd of fastconv/_transforms.py;
- otherwise, eager: conv2d and max-pooling straight into _C (skipping torch.ops' own cost, a large
  share of a small call's), the others through torch.ops; their autograd is C++.
Complex convolutions are three real ones, as torch computes them (_complex_convolution).
"""

from typing import List, Optional, Tuple

import torch

from . import _transforms
from ._extension import _C, ops


def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    stride: List[int],
    padding: List[int],
    dilation: List[int],
    groups: int,
) -> torch.Tensor:
    if torch.jit.is_scripting():
        if _is_complex_convolution(input, weight, bias):
            return _complex_convolution(
                False, input, weight, bias, stride, padding, [0, 0], groups, dilation
            )
        return ops.conv2d(input, weight, bias, stride, padding, dilation, groups)
    # The eager path's checks, cheapest first: a small convolution costs tens of microseconds.
    if input.is_complex() and _is_complex_convolution(input, weight, bias):
        return _complex_convolution(
            False, input, weight, bias, stride, padding, [0, 0], groups, dilation
        )
    return _real_conv2d_eager(input, weight, bias, stride, padding, dilation, groups)


def _real_conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    stride: List[int],
    padding: List[int],
    dilation: List[int],
    groups: int,
) -> torch.Tensor:
    if torch.jit.is_scripting():
        return ops.conv2d(input, weight, bias, stride, padding, dilation, groups)
    return _real_conv2d_eager(input, weight, bias, stride, padding, dilation, groups)


@torch.jit.unused
def _real_conv2d_eager(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    stride: List[int],
    padding: List[int],
    dilation: List[int],
    groups: int,
) -> torch.Tensor:
    if torch.compiler.is_compiling():
        return ops.conv2d(input, weight, bias, stride, padding, dilation, groups)
    if _transforms.active():
        return _transforms.conv2d(input, weight, bias, stride, padding, dilation, groups)
    return _C._conv2d_eager(input, weight, bias, stride, padding, dilation, groups)


def conv_transpose2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    stride: List[int],
    padding: List[int],
    output_padding: List[int],
    groups: int,
    dilation: List[int],
) -> torch.Tensor:
    if _is_complex_convolution(input, weight, bias):
        return _complex_convolution(
            True, input, weight, bias, stride, padding, output_padding, groups, dilation
        )
    return _real_conv_transpose2d(
        input, weight, bias, stride, padding, output_padding, groups, dilation
    )


def _real_conv_transpose2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    stride: List[int],
    padding: List[int],
    output_padding: List[int],
    groups: int,
    dilation: List[int],
) -> torch.Tensor:
    if not torch.jit.is_scripting():
        if _transforms_active():
            return _transforms.conv_transpose2d(
                input, weight, bias, stride, padding, output_padding, groups, dilation
            )
    return ops.conv_transpose2d(
        input, weight, bias, stride, padding, output_padding, groups, dilation
    )


def _is_complex_convolution(
    input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]
) -> bool:
    """Complex input with weights (and bias) of its dtype; other mixes reach the op, which raises
    torch's errors for them."""
    return (
        input.is_complex()
        and weight.dtype == input.dtype
        and (bias is None or bias.dtype == input.dtype)
    )


def _complex_convolution(
    transposed: bool,
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    stride: List[int],
    padding: List[int],
    output_padding: List[int],
    groups: int,
    dilation: List[int],
) -> torch.Tensor:
    """conv(x, w, b) for complex x = xr + i xi, w, b by Gauss's trick, as torch: with
    a = conv(xr, wr, br), b = conv(xi, wi, 0), c = conv(xr + xi, wr + wi, br + bi),
    conv(x, w, b) = a - b + i (c - a - b). Autograd goes through the real convolutions."""
    x = torch.view_as_real(input.resolve_conj())
    w = torch.view_as_real(weight.resolve_conj())
    x_r, x_i, w_r, w_i = x[..., 0], x[..., 1], w[..., 0], w[..., 1]
    b_r: Optional[torch.Tensor] = None
    b_sum: Optional[torch.Tensor] = None
    if bias is not None:
        b = torch.view_as_real(bias.resolve_conj())
        b_r = b[..., 0]
        b_sum = b_r + b[..., 1]
    if transposed:
        a = _real_conv_transpose2d(x_r, w_r, b_r, stride, padding, output_padding, groups, dilation)
        b = _real_conv_transpose2d(
            x_i, w_i, None, stride, padding, output_padding, groups, dilation
        )
        c = _real_conv_transpose2d(
            x_r + x_i, w_r + w_i, b_sum, stride, padding, output_padding, groups, dilation
        )
    else:
        a = _real_conv2d(x_r, w_r, b_r, stride, padding, dilation, groups)
        b = _real_conv2d(x_i, w_i, None, stride, padding, dilation, groups)
        c = _real_conv2d(x_r + x_i, w_r + w_i, b_sum, stride, padding, dilation, groups)
    return torch.complex(a - b, c - a - b)


def max_pool2d_with_indices(
    input: torch.Tensor,
    kernel_size: List[int],
    stride: List[int],
    padding: List[int],
    dilation: List[int],
    ceil_mode: bool,
) -> Tuple[torch.Tensor, torch.Tensor]:
    if torch.jit.is_scripting():
        return ops.max_pool2d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
    return max_pool2d_with_indices_eager(input, kernel_size, stride, padding, dilation, ceil_mode)


@torch.jit.unused
def max_pool2d_with_indices_eager(
    input: torch.Tensor,
    kernel_size: List[int],
    stride: List[int],
    padding: List[int],
    dilation: List[int],
    ceil_mode: bool,
) -> Tuple[torch.Tensor, torch.Tensor]:
    if torch.compiler.is_compiling():
        return ops.max_pool2d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
    if _transforms.active():
        return _transforms.max_pool2d_with_indices(
            input, kernel_size, stride, padding, dilation, ceil_mode
        )
    return _C._max_pool2d_with_indices_eager(
        input, kernel_size, stride, padding, dilation, ceil_mode
    )


def max_unpool2d(
    input: torch.Tensor, indices: torch.Tensor, output_size: List[int]
) -> torch.Tensor:
    if not torch.jit.is_scripting():
        if _transforms_active():
            return _transforms.max_unpool2d(input, indices, output_size)
    return ops.max_unpool2d(input, indices, output_size)


def avg_pool2d(
    input: torch.Tensor,
    kernel_size: List[int],
    stride: List[int],
    padding: List[int],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Optional[int],
) -> torch.Tensor:
    if not torch.jit.is_scripting():
        if _transforms_active():
            return _transforms.avg_pool2d(
                input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
            )
    return ops.avg_pool2d(
        input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )


@torch.jit.unused
def _transforms_active() -> bool:
    return not torch.compiler.is_compiling() and _transforms.active()
