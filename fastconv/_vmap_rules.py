"""Batching rules of fastconv's ops for torch.vmap (torch.library.register_vmap).

Without them vmap runs an op once per batch entry (functorch's fallback, with a warning). Each rule
turns the vmapped call into one call of the same op, as functorch does for torch's convolutions:
- only the data operand batched (the input of a convolution, or any pooling operand): the vmapped
  dimension joins N, the batch of the op;
- a weight batched: the vmapped dimension joins the channels and multiplies the groups, so that
  entry b convolves its own channels with its own weights (an unbatched operand is expanded).
"""

from typing import List, Optional

import torch

from ._extension import ops


def _front(t: torch.Tensor, bdim: Optional[int], batch_size: int) -> torch.Tensor:
    """t with the vmapped dimension first, expanded to batch_size where t is not batched."""
    return t.expand(batch_size, *t.shape) if bdim is None else t.movedim(bdim, 0)


def _into_n(t: torch.Tensor, bdim: Optional[int], batch_size: int) -> torch.Tensor:
    """The vmapped dimension folded into the first (batch) dimension of the op."""
    return _front(t, bdim, batch_size).flatten(0, 1)


def _into_channels(t: torch.Tensor, bdim: Optional[int], batch_size: int) -> torch.Tensor:
    """(B, N, C, H, W) -> (N, B * C, H, W): the vmapped dimension joins the channels."""
    return _front(t, bdim, batch_size).movedim(0, 1).flatten(1, 2)


def _from_n(t: torch.Tensor, batch_size: int) -> torch.Tensor:
    return t.unflatten(0, (batch_size, t.shape[0] // batch_size))


def _from_channels(t: torch.Tensor, batch_size: int) -> torch.Tensor:
    return t.unflatten(1, (batch_size, t.shape[1] // batch_size)).movedim(1, 0)


def _add_batched_bias(output: torch.Tensor, bias: torch.Tensor, bdim: int) -> torch.Tensor:
    """output (B, N, K, H, W) plus a bias batched as (B, K)."""
    return output + bias.movedim(bdim, 0)[:, None, :, None, None]


def _conv_rule(op, info, in_dims, input, weight, bias, make_args, groups):
    """conv2d and conv_transpose2d: op(input, weight, bias, *make_args(groups))."""
    batch_size = info.batch_size
    x_bdim, w_bdim, b_bdim = in_dims[:3]
    unbatched_bias = bias if b_bdim is None else None
    if w_bdim is None and x_bdim is not None:
        output = _from_n(
            op(_into_n(input, x_bdim, batch_size), weight, unbatched_bias, *make_args(groups)),
            batch_size,
        )
    else:
        weights = _front(weight, w_bdim, batch_size).flatten(0, 1)
        repeated_bias = None if unbatched_bias is None else unbatched_bias.repeat(batch_size)
        output = _from_channels(
            op(
                _into_channels(input, x_bdim, batch_size),
                weights,
                repeated_bias,
                *make_args(groups * batch_size),
            ),
            batch_size,
        )
    if b_bdim is not None:
        output = _add_batched_bias(output, bias, b_bdim)
    return output, 0


@torch.library.register_vmap("fastconv::conv2d")
def _conv2d_vmap(info, in_dims, input, weight, bias, stride, padding, dilation, groups):
    return _conv_rule(
        ops.conv2d,
        info,
        in_dims,
        input,
        weight,
        bias,
        lambda g: (stride, padding, dilation, g),
        groups,
    )


@torch.library.register_vmap("fastconv::conv_transpose2d")
def _conv_transpose2d_vmap(
    info, in_dims, input, weight, bias, stride, padding, output_padding, groups, dilation
):
    return _conv_rule(
        ops.conv_transpose2d,
        info,
        in_dims,
        input,
        weight,
        bias,
        lambda g: (stride, padding, output_padding, g, dilation),
        groups,
    )


@torch.library.register_vmap("fastconv::conv2d_input_backward")
def _conv2d_input_backward_vmap(
    info, in_dims, grad_output, weight, input_size, stride, padding, dilation, groups
):
    batch_size = info.batch_size
    gy_bdim, w_bdim = in_dims[:2]
    size: List[int] = list(input_size)
    if w_bdim is None:
        size[0] *= batch_size
        grad = ops.conv2d_input_backward(
            _into_n(grad_output, gy_bdim, batch_size),
            weight,
            size,
            stride,
            padding,
            dilation,
            groups,
        )
        return _from_n(grad, batch_size), 0
    size[1] *= batch_size
    grad = ops.conv2d_input_backward(
        _into_channels(grad_output, gy_bdim, batch_size),
        _front(weight, w_bdim, batch_size).flatten(0, 1),
        size,
        stride,
        padding,
        dilation,
        groups * batch_size,
    )
    return _from_channels(grad, batch_size), 0


@torch.library.register_vmap("fastconv::conv2d_weight_backward")
def _conv2d_weight_backward_vmap(
    info, in_dims, grad_output, input, weight_size, stride, padding, dilation, groups
):
    batch_size = info.batch_size
    gy_bdim, x_bdim = in_dims[:2]
    size: List[int] = list(weight_size)
    size[0] *= batch_size
    grad = ops.conv2d_weight_backward(
        _into_channels(grad_output, gy_bdim, batch_size),
        _into_channels(input, x_bdim, batch_size),
        size,
        stride,
        padding,
        dilation,
        groups * batch_size,
    )
    return _from_n(grad, batch_size), 0


# Pooling works plane by plane: every vmapped dimension joins N.


@torch.library.register_vmap("fastconv::max_pool2d_with_indices")
def _max_pool2d_vmap(info, in_dims, input, kernel_size, stride, padding, dilation, ceil_mode):
    output, indices = ops.max_pool2d_with_indices(
        _into_n(input, in_dims[0], info.batch_size),
        kernel_size,
        stride,
        padding,
        dilation,
        ceil_mode,
    )
    return (_from_n(output, info.batch_size), _from_n(indices, info.batch_size)), (0, 0)


@torch.library.register_vmap("fastconv::max_pool2d_with_indices_backward")
def _max_pool2d_backward_vmap(
    info, in_dims, grad_output, input, kernel_size, stride, padding, dilation, ceil_mode, indices
):
    b = info.batch_size
    grad = ops.max_pool2d_with_indices_backward(
        _into_n(grad_output, in_dims[0], b),
        _into_n(input, in_dims[1], b),
        kernel_size,
        stride,
        padding,
        dilation,
        ceil_mode,
        _into_n(indices, in_dims[7], b),
    )
    return _from_n(grad, b), 0


@torch.library.register_vmap("fastconv::max_unpool2d")
def _max_unpool2d_vmap(info, in_dims, input, indices, output_size):
    b = info.batch_size
    output = ops.max_unpool2d(
        _into_n(input, in_dims[0], b), _into_n(indices, in_dims[1], b), output_size
    )
    return _from_n(output, b), 0


@torch.library.register_vmap("fastconv::max_unpool2d_backward")
def _max_unpool2d_backward_vmap(info, in_dims, grad_output, indices):
    b = info.batch_size
    grad = ops.max_unpool2d_backward(
        _into_n(grad_output, in_dims[0], b), _into_n(indices, in_dims[1], b)
    )
    return _from_n(grad, b), 0


@torch.library.register_vmap("fastconv::avg_pool2d")
def _avg_pool2d_vmap(info, in_dims, input, *args):
    output = ops.avg_pool2d(_into_n(input, in_dims[0], info.batch_size), *args)
    return _from_n(output, info.batch_size), 0


@torch.library.register_vmap("fastconv::avg_pool2d_backward")
def _avg_pool2d_backward_vmap(info, in_dims, grad_output, input, *args):
    b = info.batch_size
    grad = ops.avg_pool2d_backward(
        _into_n(grad_output, in_dims[0], b), _into_n(input, in_dims[1], b), *args
    )
    return _from_n(grad, b), 0
