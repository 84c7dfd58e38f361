"""The poolings of fastconv.functional (max, average and power-average, 2-d and 1-d, and max
unpooling): Python argument handling with torch's signatures, semantics and errors, ending in the
TorchScript-compatible cores (_max_pool2d_pairs, _max_unpool2d_core, _avg_pool2d_pairs,
_max_pool1d_core, _avg_pool1d_core, _max_unpool1d_core, _lp_pool2d_core, _lp_pool1d_core) that
fastconv.nn's modules call."""

import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch.jit.annotations import BroadcastingList1, BroadcastingList2
from torch.nn.modules.utils import _pair, _single

from . import _arguments, _op_calls
from ._ops import pool_output_size

IntOrPair = Union[int, Sequence[int]]


def _pool_pair(value, op: str, rule: str, allow_empty: bool = False) -> Optional[List[int]]:
    if isinstance(value, int):
        return [value, value]
    values = list(value)
    if allow_empty and not values:
        return None
    if len(values) == 1:
        return values * 2
    if len(values) != 2:
        raise RuntimeError(op + ": " + rule)
    return values


def _pool_pairs(op: str, kernel_size, stride, padding):
    """(kernel_size, stride, padding) as pairs, stride None where omitted or empty; torch's checks
    and errors, in its order. (Ints, the usual arguments, skip _pool_pair's call: a small pooling
    takes about 12 us in all.)"""
    if type(kernel_size) is int and stride is None and type(padding) is int:
        return [kernel_size, kernel_size], None, [padding, padding]
    kernel_size = _pool_pair(
        kernel_size, op, "kernel_size must either be a single int, or a tuple of two ints"
    )
    if stride is not None:
        stride = _pool_pair(
            stride,
            op,
            "stride must either be omitted, a single int, or a tuple of two ints",
            allow_empty=True,
        )
    padding = _pool_pair(padding, op, "padding must either be a single int, or a tuple of two ints")
    return kernel_size, stride, padding


def _max_pool2d_arguments_plain(
    input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
) -> bool:
    return (
        isinstance(input, torch.Tensor)
        and _arguments.is_plain_ints(kernel_size)
        and (stride is None or _arguments.is_plain_ints(stride))
        and _arguments.is_plain_ints(padding)
        and _arguments.is_plain_ints(dilation)
        and type(ceil_mode) is bool
        and type(return_indices) is bool
    )


def _max_pool2d_arguments_to_plain(
    input, kernel_size, stride, padding, dilation, ceil_mode, return_indices
) -> dict:
    return dict(
        input=input,
        kernel_size=_arguments.as_ints(kernel_size),
        stride=None if stride is None else _arguments.as_ints(stride),
        padding=_arguments.as_ints(padding),
        dilation=_arguments.as_ints(dilation),
        ceil_mode=bool(ceil_mode),
        return_indices=bool(return_indices),
    )


@_arguments.parsed_like(F.max_pool2d, _max_pool2d_arguments_plain, _max_pool2d_arguments_to_plain)
def max_pool2d(
    input: torch.Tensor,
    kernel_size: IntOrPair,
    stride: Optional[IntOrPair] = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """2-D max pooling as torch.nn.functional.max_pool2d, recording the indices of the maxima.

    With return_indices=True returns (output, indices): int64, for each output the flat position
    h * W + w of its maximum within its (n, c) plane, identical to torch's.
    """
    kernel_size, stride, padding = _pool_pairs("max_pool2d", kernel_size, stride, padding)
    stride = kernel_size if stride is None else stride
    dilation = _pool_pair(
        dilation, "max_pool2d", "dilation must be either a single int, or a tuple of two ints"
    )
    # Already pairs, and eager Python (not TorchScript): straight to the eager call, without
    # _max_pool2d_pairs' _pair calls (a noticeable share of a small pooling's time).
    output, indices = _op_calls.max_pool2d_with_indices_eager(
        input, kernel_size, stride, padding, dilation, ceil_mode
    )
    return (output, indices) if return_indices else output


def _max_pool2d_pairs(
    input: torch.Tensor,
    kernel_size: BroadcastingList2[int],
    stride: BroadcastingList2[int],
    padding: BroadcastingList2[int],
    dilation: BroadcastingList2[int],
    ceil_mode: bool,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(values, indices); kernel_size, stride (empty: the kernel's), padding, dilation as ints or
    pairs (what torch.nn.MaxPool2d holds)."""
    if not torch.jit.is_scripting():
        _arguments.refuse_non_tensor("max_pool2d", input)
    kernel_pair = _pair(kernel_size)
    stride_pair = _pair(stride)
    if len(stride_pair) == 0:
        stride_pair = kernel_pair
    return _op_calls.max_pool2d_with_indices(
        input, kernel_pair, stride_pair, _pair(padding), _pair(dilation), ceil_mode
    )


def _unpool2d_output_size(
    input: torch.Tensor,
    kernel_size: BroadcastingList2[int],
    stride: Optional[BroadcastingList2[int]],
    padding: BroadcastingList2[int],
    output_size: Optional[List[int]],
) -> List[int]:
    """torch's steps (its _unpool_output_size, with its ValueErrors): the size max-pooling came
    from, or output_size, which must lie within a stride of it; stride None: the kernel's."""
    kernel_pair = _pair(kernel_size)
    stride_pair = kernel_pair if stride is None else _pair(stride)
    return F._unpool_output_size(input, kernel_pair, stride_pair, _pair(padding), output_size)


def _max_unpool2d_parsed(input, indices, size) -> torch.Tensor:
    """ops.max_unpool2d, after torch's parser on arguments it may refuse (its errors for them)."""
    if not (
        isinstance(input, torch.Tensor)
        and isinstance(indices, torch.Tensor)
        and isinstance(size, (list, tuple))
        and _arguments.is_plain_ints(size)
    ):
        _arguments.raise_like_torch(torch._C._nn.max_unpool2d, input, indices, size)
        size = _arguments.as_ints(size)
    return _op_calls.max_unpool2d(input, indices, list(size))


def max_unpool2d(
    input: torch.Tensor,
    indices: torch.Tensor,
    kernel_size: IntOrPair,
    stride: Optional[IntOrPair] = None,
    padding: IntOrPair = 0,
    output_size: Optional[Sequence[int]] = None,
) -> torch.Tensor:
    """Partial inverse of max_pool2d, as torch.nn.functional.max_unpool2d: each value goes to the
    position its index names in a zero-filled plane; everything else stays zero."""
    size = _unpool2d_output_size(input, kernel_size, stride, padding, output_size)
    return _max_unpool2d_parsed(input, indices, size)


def _max_unpool2d_core(
    input: torch.Tensor,
    indices: torch.Tensor,
    kernel_size: BroadcastingList2[int],
    stride: Optional[BroadcastingList2[int]],
    padding: BroadcastingList2[int],
    output_size: Optional[List[int]],
) -> torch.Tensor:
    """max_unpool2d with kernel_size, stride (None: the kernel's) and padding as ints or pairs."""
    size = _unpool2d_output_size(input, kernel_size, stride, padding, output_size)
    return _op_calls.max_unpool2d(input, indices, [int(s) for s in size])


# ------------------------------------------------------------------------------- average pooling


def _avg_pool2d_arguments_plain(
    input,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
) -> bool:
    return (
        isinstance(input, torch.Tensor)
        and _arguments.is_plain_ints(kernel_size)
        and (stride is None or _arguments.is_plain_ints(stride))
        and _arguments.is_plain_ints(padding)
        and type(ceil_mode) is bool
        and type(count_include_pad) is bool
        and (divisor_override is None or _arguments.is_plain_int(divisor_override))
    )


def _avg_pool2d_arguments_to_plain(
    input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
) -> dict:
    return dict(
        input=input,
        kernel_size=_arguments.as_ints(kernel_size),
        stride=None if stride is None else _arguments.as_ints(stride),
        padding=_arguments.as_ints(padding),
        ceil_mode=bool(ceil_mode),
        count_include_pad=bool(count_include_pad),
        divisor_override=None if divisor_override is None else _arguments.as_ints(divisor_override),
    )


@_arguments.parsed_like(F.avg_pool2d, _avg_pool2d_arguments_plain, _avg_pool2d_arguments_to_plain)
def avg_pool2d(
    input: torch.Tensor,
    kernel_size: IntOrPair,
    stride: Optional[IntOrPair] = None,
    padding: IntOrPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Optional[int] = None,
) -> torch.Tensor:
    """2-D average pooling as torch.nn.functional.avg_pool2d: each output is the sum of its window
    over divisor_override, else over the window's size within the zero-padded input
    (count_include_pad) or the number of its elements inside the input."""
    kernel_size, stride, padding = _pool_pairs("avg_pool2d", kernel_size, stride, padding)
    return _avg_pool2d_pairs(
        input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )


def _avg_pool2d_pairs(
    input: torch.Tensor,
    kernel_size: BroadcastingList2[int],
    stride: Optional[BroadcastingList2[int]],
    padding: BroadcastingList2[int],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Optional[int],
) -> torch.Tensor:
    """kernel_size, stride (None or empty: the kernel's) and padding as ints or pairs (what
    torch.nn.AvgPool2d holds)."""
    if not torch.jit.is_scripting():
        _arguments.refuse_non_tensor("avg_pool2d", input)
    kernel_pair = _pair(kernel_size)
    stride_pair = kernel_pair if stride is None else _pair(stride)
    if len(stride_pair) == 0:
        stride_pair = kernel_pair
    return _op_calls.avg_pool2d(
        input,
        kernel_pair,
        stride_pair,
        _pair(padding),
        ceil_mode,
        count_include_pad,
        divisor_override,
    )


# ----------------------------------------------------------------------- 1-d pooling on the 2-d ops
# torch runs its 1-d pooling on its 2-d kernels, the length as the width of one-row planes
# (unpooling: the height of one-column planes), and raises its own 1-d errors first.


def _check_pool1d_arguments(
    op: str, input: torch.Tensor, arguments: List[Tuple[str, List[int]]]
) -> None:
    """torch's checkDimRange and check1d (its avg_pool1d and max_pool1d_with_indices)."""
    if input.dim() < 2 or input.dim() > 3:
        raise RuntimeError(
            f"Expected 2 to 3 dimensions, but got {input.dim()}-dimensional tensor for "
            f"argument #1 'self' (while checking arguments for {op})"
        )
    for name, values in arguments:
        if len(values) != 1:
            raise RuntimeError(
                f"{op}() argument '{name}' should contain one int (got {len(values)})"
            )


def _check_max_pool1d(
    input: torch.Tensor,
    kernel_size: List[int],
    stride: List[int],
    padding: List[int],
    dilation: List[int],
    ceil_mode: bool,
) -> int:
    """torch.max_pool1d's checks (its check_max_pool1d), in its order; returns the output length.
    stride: empty for the kernel's."""
    if not (
        (input.dim() == 2 and input.shape[0] != 0 and input.shape[1] != 0)
        or (input.dim() == 3 and input.shape[1] != 0 and input.shape[2] != 0)
    ):
        raise RuntimeError(
            "max_pool1d: Expected 2D or 3D (batch mode) tensor with optional 0 dim batch "
            f"size for input, but got:{list(input.shape)}"
        )
    sizes = [
        (len(kernel_size), "kernel_size must be an int, list of ints or tuple of ints"),
        (max(len(stride), 1), "stride must be None, an int, list of ints, or tuple of ints"),
        (len(padding), "padding must be an int, list of ints, or tuple of ints"),
        (len(dilation), "dilation must be an int, list of ints or tuple of ints"),
    ]
    for size, rule in sizes:
        if size != 1:
            raise RuntimeError(f"max_pool1d() {rule} of size 1 but got size {size}")
    k, s = kernel_size[0], stride[0] if len(stride) == 1 else kernel_size[0]
    p, d = padding[0], dilation[0]
    if k <= 0:
        raise RuntimeError(f"max_pool1d() kernel_size must be greater than zero, but got {k}")
    if s <= 0:
        raise RuntimeError(f"max_pool1d() stride must be greater than zero, but got {s}")
    if p < 0:
        raise RuntimeError(f"max_pool1d() padding must be non-negative, but got {p}")
    if p > k // 2:
        raise RuntimeError(
            f"max_pool1d() padding should be at most half of kernel size, but got "
            f"padding={p} and kernel_size={k}"
        )
    if d <= 0:
        raise RuntimeError(f"max_pool1d() dilation must be greater than zero, but got {d}")
    length = pool_output_size(input.shape[-1], k, s, p, d, ceil_mode)
    if length <= 0:
        raise RuntimeError(f"max_pool1d() Invalid computed output size: {length}")
    return length


def _max_pool1d_core(
    input: torch.Tensor,
    kernel_size: BroadcastingList1[int],
    stride: List[int],
    padding: BroadcastingList1[int],
    dilation: BroadcastingList1[int],
    ceil_mode: bool,
    return_indices: bool,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(values, indices, flat over the length); stride empty for the kernel's. Without indices,
    torch.max_pool1d's checks and dtypes; with them, torch.max_pool1d_with_indices's."""
    if not torch.jit.is_scripting():
        _arguments.refuse_non_tensor("max_pool1d", input)
    kernel_size, padding, dilation = _single(kernel_size), _single(padding), _single(dilation)
    # torch's own 1-d kernel (CPU, no indices, no gradient) gives a contiguous output; the 2-d op
    # would keep a length-major input's layout.
    one_d_kernel = False
    if return_indices:
        stride = kernel_size if len(stride) == 0 else stride
        _check_pool1d_arguments(
            "max_pool1d",
            input,
            [
                ("kernel_size", kernel_size),
                ("stride", stride),
                ("padding", padding),
                ("dilation", dilation),
            ],
        )
        k, s, d = kernel_size[0], stride[0], dilation[0]
    else:
        length = _check_max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode)
        if not input.is_floating_point():
            torch.max_pool1d(torch.zeros([1, 1, 1], dtype=input.dtype), [1])  # torch's dtype error
        k, s, d = kernel_size[0], stride[0] if len(stride) == 1 else kernel_size[0], dilation[0]
        if not (input.requires_grad and torch.is_grad_enabled()):
            one_d_kernel = input.device.type == "cpu"
            # torch computes this case with a 1-d kernel that holds no argument in int: a stride or
            # dilation past the 2-d op's int range that cannot change the result is brought within
            # it (a stride past int32 leaves one window, as int32's largest does).
            if length == 1:
                s = min(s, 2147483647)  # 2**31 - 1 (a float to TorchScript)
            if k == 1:
                d = 1
    output, indices = _op_calls.max_pool2d_with_indices(
        input.unsqueeze(-2), [1, k], [1, s], [0, padding[0]], [1, d], ceil_mode
    )
    if one_d_kernel:
        return output.squeeze(-2).contiguous(), indices.squeeze(-2)
    return output.squeeze(-2), indices.squeeze(-2)


@_arguments.parsed_like(F.max_pool1d, _max_pool2d_arguments_plain, _max_pool2d_arguments_to_plain)
def max_pool1d(
    input: torch.Tensor,
    kernel_size: Union[int, Sequence[int]],
    stride: Optional[Union[int, Sequence[int]]] = None,
    padding: Union[int, Sequence[int]] = 0,
    dilation: Union[int, Sequence[int]] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """1-D max pooling as torch.nn.functional.max_pool1d; with return_indices=True returns
    (output, indices), each index the position of the maximum along the length."""
    output, indices = _max_pool1d_core(
        input,
        _single(kernel_size),
        [] if stride is None else list(_single(stride)),
        _single(padding),
        _single(dilation),
        ceil_mode,
        return_indices,
    )
    return (output, indices) if return_indices else output


def _avg_pool1d_core(
    input: torch.Tensor,
    kernel_size: BroadcastingList1[int],
    stride: List[int],
    padding: BroadcastingList1[int],
    ceil_mode: bool,
    count_include_pad: bool,
) -> torch.Tensor:
    """torch.avg_pool1d; stride empty for the kernel's."""
    if not torch.jit.is_scripting():
        _arguments.refuse_non_tensor("avg_pool1d", input)
    kernel_size, padding = _single(kernel_size), _single(padding)
    stride = kernel_size if len(stride) == 0 else stride
    _check_pool1d_arguments(
        "avg_pool1d",
        input,
        [("kernel_size", kernel_size), ("stride", stride), ("padding", padding)],
    )
    output = _op_calls.avg_pool2d(
        input.unsqueeze(-2),
        [1, kernel_size[0]],
        [1, stride[0]],
        [0, padding[0]],
        ceil_mode,
        count_include_pad,
        None,
    )
    return output.squeeze(-2)


def _avg_pool1d_arguments_to_plain(
    input, kernel_size, stride, padding, ceil_mode, count_include_pad
) -> dict:
    plain = _avg_pool2d_arguments_to_plain(
        input, kernel_size, stride, padding, ceil_mode, count_include_pad, None
    )
    del plain["divisor_override"]
    return plain


@_arguments.parsed_like(
    torch.avg_pool1d, _avg_pool2d_arguments_plain, _avg_pool1d_arguments_to_plain
)
def avg_pool1d(
    input: torch.Tensor,
    kernel_size: Union[int, Sequence[int]],
    stride: Optional[Union[int, Sequence[int]]] = None,
    padding: Union[int, Sequence[int]] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> torch.Tensor:
    """1-D average pooling as torch.nn.functional.avg_pool1d."""
    return _avg_pool1d_core(
        input,
        _single(kernel_size),
        [] if stride is None else list(_single(stride)),
        _single(padding),
        ceil_mode,
        count_include_pad,
    )


def max_unpool1d(
    input: torch.Tensor,
    indices: torch.Tensor,
    kernel_size: Union[int, Sequence[int]],
    stride: Optional[Union[int, Sequence[int]]] = None,
    padding: Union[int, Sequence[int]] = 0,
    output_size: Optional[Sequence[int]] = None,
) -> torch.Tensor:
    """Partial inverse of max_pool1d, as torch.nn.functional.max_unpool1d."""
    kernel = _single(kernel_size)
    size = F._unpool_output_size(
        input, kernel, kernel if stride is None else _single(stride), _single(padding), output_size
    )
    return _max_unpool2d_parsed(
        input.unsqueeze(-1), indices.unsqueeze(-1), list(size) + [1]
    ).squeeze(-1)


def _max_unpool1d_core(
    input: torch.Tensor,
    indices: torch.Tensor,
    kernel_size: BroadcastingList1[int],
    stride: BroadcastingList1[int],
    padding: BroadcastingList1[int],
    output_size: Optional[List[int]],
) -> torch.Tensor:
    """max_unpool1d with the arguments torch.nn.MaxUnpool1d holds."""
    size = F._unpool_output_size(
        input, _single(kernel_size), _single(stride), _single(padding), output_size
    )
    return _op_calls.max_unpool2d(
        input.unsqueeze(-1), indices.unsqueeze(-1), [int(s) for s in size] + [1]
    ).squeeze(-1)


# ---------------------------------------------------------------------------- power-average pooling
# torch's lp_pool: (sum of x**p over the window) ** (1/p), computed as average pooling of x**p times
# the window's size; the sign of that sum is kept and only its non-negative part differentiated, as
# torch's sign(out) * relu(abs(out)) does. p = +-inf is max-pooling of |x|.


def _lp_from_average(average: torch.Tensor, norm_type: float, window: int) -> torch.Tensor:
    return (torch.sign(average) * torch.relu(torch.abs(average))).mul(window).pow(1.0 / norm_type)


def _lp_pool_core(
    input: torch.Tensor, norm_type: float, kernel: List[int], stride: List[int], ceil_mode: bool
) -> torch.Tensor:
    """lp pooling over one kernel value (1-d) or two (2-d); stride empty for the kernel's."""
    if norm_type == float("inf"):
        return _max_pool_nd(input.abs(), kernel, stride, ceil_mode)
    if norm_type == -float("inf"):
        return -_max_pool_nd(-input.abs(), kernel, stride, ceil_mode)
    if len(kernel) == 1:
        average = _avg_pool1d_core(input.pow(norm_type), kernel, stride, 0, ceil_mode, True)
    else:
        average = _avg_pool2d_pairs(input.pow(norm_type), kernel, stride, 0, ceil_mode, True, None)
    window = 1
    for k in kernel:
        window *= k
    return _lp_from_average(average, norm_type, window)


def _max_pool_nd(
    input: torch.Tensor, kernel: List[int], stride: List[int], ceil_mode: bool
) -> torch.Tensor:
    if len(kernel) == 1:
        return _max_pool1d_core(input, kernel, stride, 0, 1, ceil_mode, False)[0]
    return _max_pool2d_pairs(input, kernel, stride, 0, 1, ceil_mode)[0]


def _lp_pool2d_core(
    input: torch.Tensor,
    norm_type: float,
    kernel_size: BroadcastingList2[int],
    stride: Optional[BroadcastingList2[int]],
    ceil_mode: bool,
) -> torch.Tensor:
    """lp_pool2d with the arguments torch.nn.LPPool2d holds."""
    strides = torch.jit.annotate(List[int], []) if stride is None else _pair(stride)
    return _lp_pool_core(input, norm_type, _pair(kernel_size), strides, ceil_mode)


def _lp_pool1d_core(
    input: torch.Tensor,
    norm_type: float,
    kernel_size: int,
    stride: Optional[BroadcastingList1[int]],
    ceil_mode: bool,
) -> torch.Tensor:
    """lp_pool1d with the arguments torch.nn.LPPool1d holds."""
    strides = torch.jit.annotate(List[int], []) if stride is None else _single(stride)
    return _lp_pool_core(input, norm_type, [kernel_size], strides, ceil_mode)


def _check_norm_type(norm_type) -> bool:
    """torch's check of norm_type; whether it is +-inf (max-pooling of |x|)."""
    if not isinstance(norm_type, (int, float)):
        return False
    if norm_type == 0:
        raise ValueError(f"norm_type must be a non-zero value, but got {norm_type}")
    return abs(norm_type) == float("inf")


# The public functions follow torch's steps on fastconv's public pooling functions, so that bad
# arguments meet the same checks in the same order.


def _lp_pool(max_pool, avg_pool, input, norm_type, kernel_size, stride, ceil_mode, window_sides):
    """torch's lp_pool1d and lp_pool2d on fastconv's public max_pool and avg_pool (1-d or 2-d).
    The window's size is taken after pooling, as torch does: a bad kernel_size gets the pool's
    argument error."""
    if _check_norm_type(norm_type):  # +-inf
        if norm_type > 0:
            return max_pool(input.abs(), kernel_size, stride, 0, 1, ceil_mode)
        return -max_pool(-input.abs(), kernel_size, stride, 0, 1, ceil_mode)
    if stride is not None:
        average = avg_pool(input.pow(norm_type), kernel_size, stride, 0, ceil_mode)
    else:
        average = avg_pool(input.pow(norm_type), kernel_size, padding=0, ceil_mode=ceil_mode)
    return _lp_from_average(average, norm_type, math.prod(window_sides))


def lp_pool2d(
    input: torch.Tensor,
    norm_type: float,
    kernel_size: IntOrPair,
    stride: Optional[IntOrPair] = None,
    ceil_mode: bool = False,
) -> torch.Tensor:
    """2-D power-average pooling as torch.nn.functional.lp_pool2d (p = 2: L2 pooling)."""
    kw, kh = _pair(kernel_size)  # torch unpacks first (its ValueError), multiplies after pooling
    return _lp_pool(
        max_pool2d, avg_pool2d, input, norm_type, kernel_size, stride, ceil_mode, (kw, kh)
    )


def lp_pool1d(
    input: torch.Tensor,
    norm_type: float,
    kernel_size: int,
    stride: Optional[Union[int, Sequence[int]]] = None,
    ceil_mode: bool = False,
) -> torch.Tensor:
    """1-D power-average pooling as torch.nn.functional.lp_pool1d."""
    return _lp_pool(
        max_pool1d, avg_pool1d, input, norm_type, kernel_size, stride, ceil_mode, [kernel_size]
    )
