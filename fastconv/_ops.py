"""Fake (meta) implementations and the autocast rule of the ops that fastconv._C defines.

Each op's kernels live in C++ (csrc/ops/cpu, csrc/ops/cuda), and so does its autograd
(csrc/ops/autograd, registered at the Autograd key so that a call costs no Python); here are only
- the fake implementations: output shapes and layouts for torch.compile and meta tensors;
- the autocast rule of conv2d and conv_transpose2d (torch.autocast).
"""

import torch
from torch._prims_common import suggest_memory_format

from ._extension import ops


def _is_channels_last(t: torch.Tensor) -> bool:
    # The same rule as is_channels_last in csrc/ops/shape_checks.cpp: torch's
    # suggest_memory_format() == ChannelsLast.
    return t.dim() == 4 and suggest_memory_format(t) == torch.channels_last


def _layout(channels_last: bool):
    return torch.channels_last if channels_last else torch.contiguous_format


def _check_same_device(*tensors, expected=None):
    """Mixed devices reach the fake (meta) kernels, as meta tensors take precedence: raise as torch
    does rather than answer on one of them."""
    tensors = [t for t in tensors if t is not None]
    expected = expected if expected is not None else tensors[0].device
    for t in tensors:
        if t.device != expected:
            raise RuntimeError(
                f"Tensor on device {t.device} is not on the expected device {expected}!"
            )


def pool_output_size(
    size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool
) -> int:
    out = (
        size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    ) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:  # last window must start in the input
        out -= 1
    return out


# ---------------------------------------------------------------------------------------- conv2d


@torch.library.register_fake("fastconv::conv2d")
def _conv2d_fake(input, weight, bias, stride, padding, dilation, groups):
    if input.device.type != "meta":  # torch takes a meta input with weights elsewhere
        _check_same_device(input, weight, bias)
    # torch's own meta checks, so that meta tensors get torch's errors, and torch's output shape
    # (no output channels for an input without channels).
    reference = torch.ops.aten.convolution.default(
        input, weight, bias, stride, padding, dilation, False, [0, 0], groups
    )
    size = reference.shape
    layout = _layout(_is_channels_last(input) or _is_channels_last(weight))
    return input.new_empty(size).contiguous(memory_format=layout)


@torch.library.register_fake("fastconv::conv2d_input_backward")
def _conv2d_input_backward_fake(grad_output, weight, input_size, stride, padding, dilation, groups):
    _check_same_device(grad_output, weight)
    layout = _layout(_is_channels_last(grad_output))
    return grad_output.new_empty(input_size).contiguous(memory_format=layout)


@torch.library.register_fake("fastconv::conv2d_weight_backward")
def _conv2d_weight_backward_fake(
    grad_output, input, weight_size, stride, padding, dilation, groups
):
    _check_same_device(grad_output, input)
    return grad_output.new_empty(weight_size)


@torch.library.register_fake("fastconv::conv_transpose2d")
def _conv_transpose2d_fake(input, weight, bias, stride, padding, output_padding, groups, dilation):
    if input.device.type != "meta":
        _check_same_device(input, weight, bias)
    # torch's own meta checks and output shape.
    reference = torch.ops.aten.convolution.default(
        input, weight, bias, stride, padding, dilation, True, output_padding, groups
    )
    layout = _layout(_is_channels_last(input) or _is_channels_last(weight))
    return input.new_empty(reference.shape).contiguous(memory_format=layout)


# ------------------------------------------------------------------------------------ max_pool2d


@torch.library.register_fake("fastconv::max_pool2d_with_indices")
def _max_pool2d_fake(input, kernel_size, stride, padding, dilation, ceil_mode):
    torch.ops.aten.max_pool2d_with_indices.default(
        input, kernel_size, stride, padding, dilation, ceil_mode
    )
    size = list(input.shape)
    for d in (0, 1):
        size[d - 2] = pool_output_size(
            size[d - 2], kernel_size[d], stride[d], padding[d], dilation[d], ceil_mode
        )
    layout = _layout(_is_channels_last(input))
    output = input.new_empty(size).contiguous(memory_format=layout)
    indices = input.new_empty(size, dtype=torch.int64).contiguous(memory_format=layout)
    return output, indices


@torch.library.register_fake("fastconv::max_pool2d_with_indices_backward")
def _max_pool2d_backward_fake(
    grad_output, input, kernel_size, stride, padding, dilation, ceil_mode, indices
):
    _check_same_device(grad_output, input, indices)
    return grad_output.new_empty(input.shape).contiguous(
        memory_format=_layout(_is_channels_last(input))
    )


# ---------------------------------------------------------------------------------- max_unpool2d


@torch.library.register_fake("fastconv::max_unpool2d")
def _max_unpool2d_fake(input, indices, output_size):
    _check_same_device(input, indices, expected=indices.device)
    torch.ops.aten.max_unpool2d.default(input, indices, output_size)
    size = list(input.shape[:-2]) + list(output_size)
    return input.new_empty(size).contiguous(memory_format=_layout(_is_channels_last(input)))


@torch.library.register_fake("fastconv::max_unpool2d_backward")
def _max_unpool2d_backward_fake(grad_output, indices):
    _check_same_device(grad_output, indices, expected=indices.device)
    return grad_output.new_empty(indices.shape).contiguous(
        memory_format=_layout(_is_channels_last(indices))
    )


# ------------------------------------------------------------------------------------ avg_pool2d


@torch.library.register_fake("fastconv::avg_pool2d")
def _avg_pool2d_fake(
    input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
):
    torch.ops.aten.avg_pool2d.default(
        input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    size = list(input.shape)
    for d in (0, 1):
        size[d - 2] = pool_output_size(
            size[d - 2], kernel_size[d], stride[d], padding[d], 1, ceil_mode
        )
    return input.new_empty(size).contiguous(memory_format=_layout(_is_channels_last(input)))


@torch.library.register_fake("fastconv::avg_pool2d_backward")
def _avg_pool2d_backward_fake(
    grad_output, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
):
    _check_same_device(grad_output, input)
    return grad_output.new_empty(input.shape).contiguous(
        memory_format=_layout(_is_channels_last(input))
    )


# -------------------------------------------------------------------------------------- autocast
# torch's autocast policy for the matching torch ops: conv2d and conv_transpose2d are on the
# lower-precision list (their floating inputs, float64 excepted, are cast to the autocast dtype of
# their device), max- and average pooling and unpooling are on no list and run in their input's
# dtype, which is what the Autocast keys' default fallthrough already gives the other fastconv ops.
# torch.library.register_autocast is not used: it casts to one dtype fixed at registration,
# whereas torch casts to the dtype of the enclosing torch.autocast(..., dtype=...) (float16 or
# bfloat16 on CUDA, bfloat16 or float16 on the CPU). The kernel below is register_autocast's,
# with that dtype looked up per call.

_autocast_library = torch.library.Library("fastconv", "IMPL")


def _autocast_cast(value, device_type: str, dtype: torch.dtype):
    if (
        isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and value.dtype is not torch.float64
        and value.device.type == device_type
    ):
        return value.to(dtype)
    return value


def _register_lower_precision(name: str, device_type: str) -> None:
    op = getattr(ops, name).default
    key_name = "Autocast" + torch._C._dispatch_key_for_device(device_type)
    key = getattr(torch._C.DispatchKey, key_name)

    def run(*args):
        dtype = torch.get_autocast_dtype(device_type)
        with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(key)):
            return op(*(_autocast_cast(a, device_type, dtype) for a in args))

    op.py_impl(key)(run)  # for the Python dispatcher (torch.compile's tracing)
    _autocast_library.impl(name, lambda _keyset, *args: run(*args), key_name, with_keyset=True)


for _device_type in ("cpu", "cuda"):
    for _name in ("conv2d", "conv_transpose2d"):
        _register_lower_precision(_name, _device_type)
