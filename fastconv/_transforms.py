"""fastconv's ops under torch.func transforms (grad, vjp, jvp, vmap, hessian) and forward-mode AD.

The common path keeps its autograd in C++ (csrc/ops/autograd), at no Python cost per call. functorch
cannot carry a C++ torch::autograd::Function, and a C++ Function has no forward-mode derivative, so
while a transform or a forward-AD level is active (`active()`) the Python entries call the ops
through the torch.autograd.Functions below instead. They use the same formulas as the C++ autograd
(each derivative is a fastconv op again, so derivatives of every order run on fastconv's kernels),
add a jvp (every op is linear in each argument: a tangent is the op applied to it), and leave vmap
to the ops' batching rules (fastconv/_vmap_rules.py) through generate_vmap_rule.
"""

from typing import List, Optional

import torch
from torch._C import _functorch
from torch.autograd import forward_ad

from . import _vmap_rules  # noqa: F401  (registers the batching rules)
from ._extension import ops


def active() -> bool:
    """Whether a torch.func transform or a forward-mode AD level is active."""
    return _functorch.peek_interpreter_stack() is not None or forward_ad._current_level >= 0


def _sum(*terms: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """The sum of the terms that are not None (None where all are)."""
    total = None
    for term in terms:
        if term is not None:
            total = term if total is None else total + term
    return total


def _bias_term(bias: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return None if bias is None else bias[:, None, None]


class _Args:
    """An op's non-tensor arguments as one pytree leaf: functorch pairs each leaf of the arguments
    with an in_dim and a tangent, and the lists among them are pytrees of ints otherwise."""

    __slots__ = ("values",)

    def __init__(self, *values):
        self.values = values

    def with_size(self, size) -> "_Args":
        """A backward op's arguments: the size of the gradient, then the convolution's."""
        return _Args(list(size), *self.values)


class _Function(torch.autograd.Function):
    generate_vmap_rule = True


# ---------------------------------------------------------------------------------------- conv2d


class Conv2d(_Function):
    """conv2d(input, weight, bias, args = (stride, padding, dilation, groups))."""

    @staticmethod
    def forward(input, weight, bias, args):
        return ops.conv2d(input, weight, bias, *args.values)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, bias, ctx.args = inputs
        ctx.has_bias = bias is not None
        ctx.save_for_backward(input, weight)
        ctx.save_for_forward(input, weight)

    @staticmethod
    def backward(ctx, grad):
        input, weight = ctx.saved_tensors
        args, needs = ctx.args, ctx.needs_input_grad
        grad_input = (
            InputBackward.apply(grad, weight, args.with_size(input.shape)) if needs[0] else None
        )
        grad_weight = (
            WeightBackward.apply(grad, input, args.with_size(weight.shape)) if needs[1] else None
        )
        grad_bias = grad.sum((0, 2, 3)) if ctx.has_bias and needs[2] else None
        return grad_input, grad_weight, grad_bias, None

    @staticmethod
    def jvp(ctx, input_t, weight_t, bias_t, _):
        input, weight = ctx.saved_tensors
        return _sum(
            None if input_t is None else Conv2d.apply(input_t, weight, None, ctx.args),
            None if weight_t is None else Conv2d.apply(input, weight_t, None, ctx.args),
            _bias_term(bias_t),
        )


class InputBackward(_Function):
    """conv2d_input_backward(grad_output, weight, args = (input_size, *conv2d's)): bilinear."""

    @staticmethod
    def forward(grad_output, weight, args):
        return ops.conv2d_input_backward(grad_output, weight, *args.values)

    @staticmethod
    def setup_context(ctx, inputs, output):
        grad_output, weight, ctx.args = inputs
        ctx.save_for_backward(grad_output, weight)
        ctx.save_for_forward(grad_output, weight)

    @staticmethod
    def backward(ctx, grad):
        grad_output, weight = ctx.saved_tensors
        conv = _Args(*ctx.args.values[1:])
        needs = ctx.needs_input_grad
        d_grad_output = Conv2d.apply(grad, weight, None, conv) if needs[0] else None
        d_weight = (
            WeightBackward.apply(grad_output, grad, conv.with_size(weight.shape))
            if needs[1]
            else None
        )
        return d_grad_output, d_weight, None

    @staticmethod
    def jvp(ctx, grad_output_t, weight_t, _):
        grad_output, weight = ctx.saved_tensors
        return _sum(
            None if grad_output_t is None else InputBackward.apply(grad_output_t, weight, ctx.args),
            None if weight_t is None else InputBackward.apply(grad_output, weight_t, ctx.args),
        )


class WeightBackward(_Function):
    """conv2d_weight_backward(grad_output, input, args = (weight_size, *conv2d's)): bilinear."""

    @staticmethod
    def forward(grad_output, input, args):
        return ops.conv2d_weight_backward(grad_output, input, *args.values)

    @staticmethod
    def setup_context(ctx, inputs, output):
        grad_output, input, ctx.args = inputs
        ctx.save_for_backward(grad_output, input)
        ctx.save_for_forward(grad_output, input)

    @staticmethod
    def backward(ctx, grad):
        grad_output, input = ctx.saved_tensors
        conv = _Args(*ctx.args.values[1:])
        needs = ctx.needs_input_grad
        d_grad_output = Conv2d.apply(input, grad, None, conv) if needs[0] else None
        d_input = (
            InputBackward.apply(grad_output, grad, conv.with_size(input.shape))
            if needs[1]
            else None
        )
        return d_grad_output, d_input, None

    @staticmethod
    def jvp(ctx, grad_output_t, input_t, _):
        grad_output, input = ctx.saved_tensors
        return _sum(
            None if grad_output_t is None else WeightBackward.apply(grad_output_t, input, ctx.args),
            None if input_t is None else WeightBackward.apply(grad_output, input_t, ctx.args),
        )


class ConvTranspose2d(_Function):
    """conv_transpose2d(input, weight, bias,
    args = (stride, padding, output_padding, groups, dilation))."""

    @staticmethod
    def forward(input, weight, bias, args):
        return ops.conv_transpose2d(input, weight, bias, *args.values)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, bias, ctx.args = inputs
        stride, padding, output_padding, groups, dilation = ctx.args.values
        ctx.has_bias = bias is not None
        # As the C++ autograd: a zero dilation along a kernel of one tap is dilation 1 to the conv2d
        # ops of the backward, which see the extra rows output_padding adds past the stride.
        backward_dilation = [
            1 if dilation[d] == 0 and weight.shape[d + 2] == 1 else dilation[d] for d in (0, 1)
        ]
        ctx.conv_args = _Args(stride, padding, backward_dilation, groups)
        ctx.extra = [output_padding[d] // stride[d] for d in (0, 1)]
        ctx.save_for_backward(input, weight)
        ctx.save_for_forward(input, weight)

    @staticmethod
    def backward(ctx, grad):
        input, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        extra_h, extra_w = ctx.extra
        grad_input = grad_weight = grad_bias = None
        if grad.numel() == 0:  # an empty output plane: zero gradients, as the C++ autograd gives
            grad_input = torch.zeros_like(input) if needs[0] else None
            grad_weight = torch.zeros_like(weight) if needs[1] else None
            needs = (False, False, needs[2])
        if needs[0]:
            grad_input = Conv2d.apply(grad, weight, None, ctx.conv_args)
            if extra_h or extra_w:
                grad_input = grad_input[:, :, : input.shape[2], : input.shape[3]]
        if needs[1]:
            padded = input
            if extra_h or extra_w:
                padded = torch.nn.functional.pad(input, (0, extra_w, 0, extra_h))
            grad_weight = WeightBackward.apply(padded, grad, ctx.conv_args.with_size(weight.shape))
        if ctx.has_bias and needs[2]:
            grad_bias = grad.sum((0, 2, 3))
        return grad_input, grad_weight, grad_bias, None

    @staticmethod
    def jvp(ctx, input_t, weight_t, bias_t, _):
        input, weight = ctx.saved_tensors
        return _sum(
            None if input_t is None else ConvTranspose2d.apply(input_t, weight, None, ctx.args),
            None if weight_t is None else ConvTranspose2d.apply(input, weight_t, None, ctx.args),
            _bias_term(bias_t),
        )


# ------------------------------------------------------------------------------------- max-pool


class MaxPool2d(_Function):
    """max_pool2d_with_indices(input,
    args = (kernel_size, stride, padding, dilation, ceil_mode))."""

    @staticmethod
    def forward(input, args):
        return ops.max_pool2d_with_indices(input, *args.values)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, ctx.args = inputs
        indices = output[1]
        ctx.mark_non_differentiable(indices)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(input, indices)
        ctx.save_for_forward(indices)

    @staticmethod
    def backward(ctx, grad, _grad_indices):
        if grad is None:
            return None, None
        input, indices = ctx.saved_tensors
        return MaxPool2dBackward.apply(grad, input, indices, ctx.args), None

    @staticmethod
    def jvp(ctx, input_t, _):
        (indices,) = ctx.saved_tensors
        return Gather.apply(input_t, indices), None


class MaxPool2dBackward(_Function):
    """max_pool2d_with_indices_backward(grad_output, input, indices, args as MaxPool2d's): linear in
    grad_output; input gives only its shape."""

    @staticmethod
    def forward(grad_output, input, indices, args):
        return ops.max_pool2d_with_indices_backward(grad_output, input, *args.values, indices)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, input, indices, ctx.args = inputs
        ctx.save_for_backward(indices)
        ctx.save_for_forward(input, indices)

    @staticmethod
    def backward(ctx, grad):
        (indices,) = ctx.saved_tensors
        return Gather.apply(grad, indices), None, None, None

    @staticmethod
    def jvp(ctx, grad_output_t, *_):
        input, indices = ctx.saved_tensors
        return MaxPool2dBackward.apply(grad_output_t, input, indices, ctx.args)


class MaxUnpool2d(_Function):
    """max_unpool2d(input, indices, args = (output_size,))."""

    @staticmethod
    def forward(input, indices, args):
        return ops.max_unpool2d(input, indices, *args.values)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, indices, ctx.args = inputs
        ctx.save_for_backward(indices)
        ctx.save_for_forward(indices)

    @staticmethod
    def backward(ctx, grad):
        (indices,) = ctx.saved_tensors
        return Gather.apply(grad, indices), None, None

    @staticmethod
    def jvp(ctx, input_t, *_):
        (indices,) = ctx.saved_tensors
        return MaxUnpool2d.apply(input_t, indices, ctx.args)


class Gather(_Function):
    """max_unpool2d_backward(source, indices): each output reads the source at its index."""

    @staticmethod
    def forward(source, indices):
        return ops.max_unpool2d_backward(source, indices)

    @staticmethod
    def setup_context(ctx, inputs, output):
        source, indices = inputs
        ctx.source_shape = source.shape
        ctx.save_for_backward(indices)
        ctx.save_for_forward(indices)

    @staticmethod
    def backward(ctx, grad):
        (indices,) = ctx.saved_tensors
        shape = ctx.source_shape
        # Where windows overlap an index repeats: its gradients add up.
        source = grad.new_zeros((*shape[:-2], shape[-2] * shape[-1]))
        source = source.scatter_add(-1, indices.flatten(-2), grad.flatten(-2))
        return source.view(shape), None

    @staticmethod
    def jvp(ctx, source_t, _):
        (indices,) = ctx.saved_tensors
        return Gather.apply(source_t, indices)


# ------------------------------------------------------------------------------------ avg_pool2d


class AvgPool2d(_Function):
    """avg_pool2d(input, args = (kernel_size, stride, padding, ceil_mode, count_include_pad,
    divisor_override)): linear."""

    @staticmethod
    def forward(input, args):
        return ops.avg_pool2d(input, *args.values)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, ctx.args = inputs
        ctx.save_for_backward(input)

    @staticmethod
    def backward(ctx, grad):
        (input,) = ctx.saved_tensors
        return AvgPool2dBackward.apply(grad, input, ctx.args), None

    @staticmethod
    def jvp(ctx, input_t, _):
        return AvgPool2d.apply(input_t, ctx.args)


class AvgPool2dBackward(_Function):
    """avg_pool2d_backward(grad_output, input, args as AvgPool2d's): linear in grad_output; input
    gives only its shape."""

    @staticmethod
    def forward(grad_output, input, args):
        return ops.avg_pool2d_backward(grad_output, input, *args.values)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, input, ctx.args = inputs
        ctx.save_for_forward(input)

    @staticmethod
    def backward(ctx, grad):
        return AvgPool2d.apply(grad, ctx.args), None, None

    @staticmethod
    def jvp(ctx, grad_output_t, *_):
        (input,) = ctx.saved_tensors
        return AvgPool2dBackward.apply(grad_output_t, input, ctx.args)


# ----------------------------------------------------------------------------- the Python entries


def conv2d(input, weight, bias, stride, padding, dilation, groups) -> torch.Tensor:
    return Conv2d.apply(input, weight, bias, _Args(stride, padding, dilation, groups))


def conv_transpose2d(
    input, weight, bias, stride, padding, output_padding, groups, dilation
) -> torch.Tensor:
    args = _Args(stride, padding, output_padding, groups, dilation)
    return ConvTranspose2d.apply(input, weight, bias, args)


def max_pool2d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode):
    return MaxPool2d.apply(input, _Args(kernel_size, stride, padding, dilation, ceil_mode))


def max_unpool2d(input, indices, output_size: List[int]) -> torch.Tensor:
    return MaxUnpool2d.apply(input, indices, _Args(output_size))


def avg_pool2d(
    input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
) -> torch.Tensor:
    args = _Args(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    return AvgPool2d.apply(input, args)
