"""The convolutions of fastconv.functional (conv2d, conv_transpose2d, conv1d, conv_transpose1d):
Python argument handling with torch's signatures, semantics and errors, ending in the
TorchScript-compatible cores (_conv2d_pairs, _conv2d_padding_string, _conv_transpose2d_pairs,
_conv1d_core, _conv1d_padding_string, _conv_transpose1d_core) that fastconv.nn's modules call."""

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from . import _arguments, _op_calls

IntOrPair = Union[int, Sequence[int]]


def _conv_param(
    name: str, value: IntOrPair, spatial_dims: int, schema_length: int = 2
) -> List[int]:
    """torch's expand_param_if_needed: an int, or a list of one value or one per spatial dim.
    An int is first a list of the schema's length (int[2], or int[1] for the 1-d ops)."""
    values = [value] * schema_length if isinstance(value, int) else list(value)
    if len(values) == 1:
        return values * spatial_dims
    if len(values) != spatial_dims:
        raise RuntimeError(
            f"expected {name} to be a single integer value or a list of {spatial_dims} values to "
            f"match the convolution dimensions, but got {name}={values}"
        )
    return values


def _wrap_int64(value: int) -> int:
    """value as int64 arithmetic leaves it (torch computes padding='same' in int64)."""
    return (value + 2**63) % 2**64 - 2**63


def _same_padding(dilation: int, kernel_size: int) -> Tuple[int, int]:
    """padding='same' along one dimension, as torch derives it: (the padding on both sides, the one
    more at the end where the total is odd; torch pads a copy of the input with it)."""
    total = dilation * (kernel_size - 1)
    if not torch.jit.is_scripting():  # TorchScript's ints wrap as they are
        total = _wrap_int64(total)
    left = total // 2 if total >= 0 else -((-total) // 2)  # C++ division
    if left < 0:  # a dilation past int64 (torch's check of the padding it derived)
        raise RuntimeError("negative padding is not supported")
    return left, total - 2 * left


def _pad_same(
    input: torch.Tensor, weight: torch.Tensor, dilation: List[int]
) -> Tuple[torch.Tensor, List[int]]:
    """padding='same' of a 2-d convolution: (the input, padded at the end where a total is odd, and
    the padding pair that remains)."""
    padding: List[int] = []
    extra = [0, 0, 0, 0]  # F.pad order: left, right, top, bottom
    for d in range(2):
        left, odd = _same_padding(dilation[d], weight.shape[d + 2])
        padding.append(left)
        extra[2 * (1 - d) + 1] = odd
    if extra[1] != 0 or extra[3] != 0:
        input = F.pad(input, extra)
    return input, padding


def _check_weight_rank(weight: torch.Tensor) -> None:
    """torch's first check of a convolution: it takes the convolution's rank from the weight."""
    if weight.dim() < 3:
        raise RuntimeError("weight should have at least three dimensions")


def _check_weight_rank_and_groups(weight: torch.Tensor, groups: int) -> None:
    _check_weight_rank(weight)
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")


def _check_conv_input(input: torch.Tensor, op_name: str = "conv2d") -> None:
    if not torch.jit.is_scripting():
        _arguments.refuse_non_tensor(op_name, input)
    if input.dim() != 3 and input.dim() != 4:
        raise RuntimeError(
            "Expected 3D (unbatched) or 4D (batched) input to "
            + op_name
            + ", but got input of size: "
            + str(list(input.shape))
        )


def _conv2d_pairs(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    stride: List[int],
    padding: List[int],
    dilation: List[int],
    groups: int,
) -> torch.Tensor:
    """The op on 4-D or unbatched 3-D input, with stride, padding and dilation as pairs."""
    _check_conv_input(input)
    if input.dim() == 3:
        return _op_calls.conv2d(
            input.unsqueeze(0), weight, bias, stride, padding, dilation, groups
        ).squeeze(0)
    return _op_calls.conv2d(input, weight, bias, stride, padding, dilation, groups)


def _conv2d_padding_string(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    stride: List[int],
    padding: str,
    dilation: List[int],
    groups: int,
) -> torch.Tensor:
    """The op with padding 'valid' or 'same', stride and dilation as pairs."""
    if padding == "valid":
        return _conv2d_pairs(input, weight, bias, stride, [0, 0], dilation, groups)
    if padding != "same":
        raise RuntimeError("Invalid padding string: '" + padding + "'")
    if stride[0] != 1 or stride[1] != 1:
        raise RuntimeError("padding='same' is not supported for strided convolutions")
    _check_conv_input(input)
    unbatched = input.dim() == 3
    if unbatched:
        input = input.unsqueeze(0)
    input, pairs = _pad_same(input, weight, dilation)
    output = _op_calls.conv2d(input, weight, bias, stride, pairs, dilation, groups)
    return output.squeeze(0) if unbatched else output


def _conv2d_arguments_plain(
    input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1
) -> bool:
    return (
        isinstance(input, torch.Tensor)
        and isinstance(weight, torch.Tensor)
        and _arguments.is_tensor_or_none(bias)
        and _arguments.is_plain_ints(stride)
        and (isinstance(padding, str) or _arguments.is_plain_ints(padding))
        and _arguments.is_plain_ints(dilation)
        and _arguments.is_plain_int(groups)
    )


def _conv2d_arguments_to_plain(input, weight, bias, stride, padding, dilation, groups) -> dict:
    return dict(
        input=input,
        weight=weight,
        bias=bias,
        stride=_arguments.as_ints(stride),
        padding=padding if isinstance(padding, str) else _arguments.as_ints(padding),
        dilation=_arguments.as_ints(dilation),
        groups=_arguments.as_ints(groups),
    )


@_arguments.parsed_like(torch.conv2d, _conv2d_arguments_plain, _conv2d_arguments_to_plain)
def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    stride: IntOrPair = 1,
    padding: Union[str, IntOrPair] = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> torch.Tensor:
    """2-D convolution (cross-correlation) as torch.nn.functional.conv2d, by im2col and GEMM.

    input: (N, C, H, W) or unbatched (C, H, W); weight: (K, C / groups, R, S); bias: (K,) or None.
    padding: int, pair, 'valid' or 'same' (stride 1 only). Dilation > 1 gives dilated convolution.
    """
    _check_conv_input(input)
    if padding == "valid":  # torch's 'valid' is padding {0}, expanded to every dimension
        padding = [0]
    if isinstance(padding, str):
        return _conv2d_string_padding_checked(
            input, weight, bias, stride, padding, dilation, groups
        )
    _check_weight_rank(weight)
    spatial_dims = weight.dim() - 2  # torch takes the convolution's rank from the weight
    stride = _conv_param("stride", stride, spatial_dims)
    dilation = _conv_param("dilation", dilation, spatial_dims)
    padding = _conv_param("padding", padding, spatial_dims)
    return _conv2d_pairs(input, weight, bias, stride, padding, dilation, groups)


def _conv2d_string_padding_checked(input, weight, bias, stride, padding: str, dilation, groups):
    """padding='same' with torch's checks in its order (its convolution_same)."""
    if padding != "same":
        raise RuntimeError("Invalid padding string: '" + padding + "'")
    _check_weight_rank_and_groups(weight, groups)
    k = weight.dim()
    batched_dim = input.dim() if input.dim() == 4 else input.dim() + 1
    if k != batched_dim:
        raise RuntimeError(
            f"Expected {k}-dimensional input for {k}-dimensional weight{list(weight.shape)}, but "
            f"got {batched_dim}-dimensional input of size "
            f"{list(input.shape) if input.dim() == 4 else [1] + list(input.shape)} instead"
        )
    stride = [stride] * 2 if isinstance(stride, int) else list(stride)  # int[2] in torch's schema
    dilation = [dilation] * 2 if isinstance(dilation, int) else list(dilation)
    for name, values in (("stride", stride), ("dilation", dilation)):
        if len(values) not in (1, k - 2):
            raise RuntimeError(f"{name} cannot broadcast to {k - 2} dimensions")
    return _conv2d_padding_string(
        input,
        weight,
        bias,
        stride * (3 - len(stride)),
        "same",
        dilation * (3 - len(dilation)),
        groups,
    )


def _conv_transpose2d_pairs(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    stride: List[int],
    padding: List[int],
    output_padding: List[int],
    groups: int,
    dilation: List[int],
) -> torch.Tensor:
    """The op on 4-D or unbatched 3-D input, with stride, padding, output_padding and dilation as
    pairs."""
    _check_conv_input(input, "conv_transpose2d")
    if input.dim() == 3:
        return _op_calls.conv_transpose2d(
            input.unsqueeze(0), weight, bias, stride, padding, output_padding, groups, dilation
        ).squeeze(0)
    return _op_calls.conv_transpose2d(
        input, weight, bias, stride, padding, output_padding, groups, dilation
    )


def _conv_transpose2d_arguments_plain(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
) -> bool:
    return (
        isinstance(input, torch.Tensor)
        and isinstance(weight, torch.Tensor)
        and _arguments.is_tensor_or_none(bias)
        and _arguments.is_plain_ints(stride)
        and _arguments.is_plain_ints(padding)
        and _arguments.is_plain_ints(output_padding)
        and _arguments.is_plain_int(groups)
        and _arguments.is_plain_ints(dilation)
    )


def _conv_transpose2d_arguments_to_plain(
    input, weight, bias, stride, padding, output_padding, groups, dilation
) -> dict:
    return dict(
        input=input,
        weight=weight,
        bias=bias,
        stride=_arguments.as_ints(stride),
        padding=_arguments.as_ints(padding),
        output_padding=_arguments.as_ints(output_padding),
        groups=_arguments.as_ints(groups),
        dilation=_arguments.as_ints(dilation),
    )


def _transposed_params(weight, groups, stride, padding, output_padding, dilation, schema_length):
    """torch's _convolution before its shape checks: the weight's rank, groups, then each argument
    expanded to the rank's spatial dims, in torch's order."""
    _check_weight_rank_and_groups(weight, groups)
    dims = weight.dim() - 2
    stride = _conv_param("stride", stride, dims, schema_length)
    padding = _conv_param("padding", padding, dims, schema_length)
    dilation = _conv_param("dilation", dilation, dims, schema_length)
    output_padding = _conv_param("output_padding", output_padding, dims, schema_length)
    return stride, padding, output_padding, dilation


@_arguments.parsed_like(
    torch.conv_transpose2d, _conv_transpose2d_arguments_plain, _conv_transpose2d_arguments_to_plain
)
def conv_transpose2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    groups: int = 1,
    dilation: IntOrPair = 1,
) -> torch.Tensor:
    """2-D transposed convolution as torch.nn.functional.conv_transpose2d (note its argument
    order): the input gradient of a conv2d, computed by fastconv's conv2d kernels.

    input: (N, C_in, H, W) or unbatched (C_in, H, W); weight: (C_in, C_out / groups, R, S);
    bias: (C_out,) or None. output_padding adds rows / columns at the bottom / right of the output
    (below stride or dilation). No padding strings, as in torch.
    """
    _check_conv_input(input, "conv_transpose2d")
    stride, padding, output_padding, dilation = _transposed_params(
        weight, groups, stride, padding, output_padding, dilation, 2
    )
    return _conv_transpose2d_pairs(
        input, weight, bias, stride, padding, output_padding, groups, dilation
    )


# ------------------------------------------------------------------------- 1-d, on the 2-d ops
# A 1-d convolution is the 2-d one on (N, C, 1, L) with a (.., 1, k) kernel, as torch's own
# backends run it. torch checks the shapes before that unsqueeze, so its messages show the 1-d
# shapes: those checks are repeated here (the 2-d op's would show the unsqueezed shapes); what
# torch checks after it (its backends' checks) reads the same from the 2-d op.

# torch's names of the dtypes in conv1d's bias check (caffe2 TypeMeta names).
_TYPE_META_NAMES = {
    torch.float32: "float",
    torch.float64: "double",
    torch.float16: "c10::Half",
    torch.bfloat16: "c10::BFloat16",
    torch.int64: "long int",
    torch.int32: "int",
    torch.int16: "short int",
    torch.int8: "signed char",
    torch.uint8: "unsigned char",
    torch.bool: "bool",
    torch.complex64: "c10::complex<float>",
    torch.complex128: "c10::complex<double>",
}


def _check_1d_input(input: torch.Tensor, op_name: str) -> None:
    if not torch.jit.is_scripting():
        _arguments.refuse_non_tensor(op_name, input)
    if input.dim() != 2 and input.dim() != 3:
        raise RuntimeError(
            "Expected 2D (unbatched) or 3D (batched) input to "
            + op_name
            + ", but got input of size: "
            + str(list(input.shape))
        )


def _check_1d_shapes(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    stride: List[int],
    padding: List[int],
    output_padding: List[int],
    dilation: List[int],
    groups: int,
    transposed: bool,
) -> None:
    """torch's check_shape_forward on batched 1-d shapes, in its order and words."""
    if padding[0] < 0:
        raise RuntimeError("negative padding is not supported")
    if output_padding[0] < 0:
        raise RuntimeError("negative output_padding is not supported")
    if stride[0] <= 0:
        raise RuntimeError("non-positive stride is not supported")
    if dilation[0] < 0:
        raise RuntimeError("dilation should be greater than zero")
    w = list(weight.shape)
    x = list(input.shape)
    if len(w) != len(x):
        raise RuntimeError(
            "Expected "
            + str(len(w))
            + "-dimensional input for "
            + str(len(w))
            + "-dimensional weight "
            + str(w)
            + ", but got "
            + str(len(x))
            + "-dimensional input of size "
            + str(x)
            + " instead"
        )
    if w[0] < groups:
        raise RuntimeError(
            "Given groups="
            + str(groups)
            + ", expected weight to be at least "
            + str(groups)
            + " at dimension 0, but got weight of size "
            + str(w)
            + " instead"
        )
    if w[0] % groups != 0:
        raise RuntimeError(
            "Given groups="
            + str(groups)
            + ", expected weight to be divisible by "
            + str(groups)
            + " at dimension 0, but got weight of size ["
            + str(w)
            + "] instead"
        )
    bias_size = "" if bias is None else str(list(bias.shape))
    bias_ok = bias is None or bias.dim() == 1
    if transposed:
        _check_1d_padding(padding[0])
        if x[1] != w[0]:
            raise RuntimeError(
                "Given transposed=1, weight of size "
                + str(w)
                + ", expected input"
                + str(x)
                + " to have "
                + str(w[0])
                + " channels, but got "
                + str(x[1])
                + " channels instead"
            )
        if bias is not None and not (bias_ok and bias.numel() == w[1] * groups):
            raise RuntimeError(
                "Given transposed=1, weight of size "
                + str(w)
                + ", expected bias to be "
                + "1-dimensional with "
                + str(w[1] * groups)
                + " elements, but got bias of size "
                + bias_size
                + " instead"
            )
        return
    if x[1] != w[1] * groups:
        raise RuntimeError(
            "Given groups="
            + str(groups)
            + ", weight of size "
            + str(w)
            + ", expected input"
            + str(x)
            + " to have "
            + str(w[1] * groups)
            + " channels, but got "
            + str(x[1])
            + " channels instead"
        )
    if bias is not None and not (bias_ok and bias.shape[0] == w[0]):
        raise RuntimeError(
            "Given weight of size "
            + str(w)
            + ", expected bias to be 1-dimensional with "
            + str(w[0])
            + " elements, but got bias of size "
            + bias_size
            + " instead"
        )
    _check_1d_padding(padding[0])
    padded = x[2] + 2 * padding[0]
    span = dilation[0] * (w[2] - 1) + 1
    if not torch.jit.is_scripting():  # int64 arithmetic, as torch's (TorchScript's ints wrap)
        padded, span = _wrap_int64(padded), _wrap_int64(span)
    if padded < span:
        raise RuntimeError(
            "Calculated padded input size per channel: ("
            + str(padded)
            + "). Kernel size: ("
            + str(span)
            + "). Kernel size can't be greater than actual input size"
        )


def _check_1d_padding(padding: int) -> None:
    limit = 9223372036854775807
    if padding > limit - padding:
        raise RuntimeError(
            "Given padding="
            + str(padding)
            + " at dimension 0 , expected padding to be at most "
            + str(limit // 2)
        )


def _conv1d_core(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    stride: List[int],
    padding: List[int],
    dilation: List[int],
    groups: int,
) -> torch.Tensor:
    """conv1d on 3-D or unbatched 2-D input, stride, padding and dilation one value each."""
    _check_1d_input(input, "conv1d")
    unbatched = input.dim() == 2
    batched = input.unsqueeze(0) if unbatched else input
    _check_1d_shapes(batched, weight, bias, stride, padding, [0], dilation, groups, False)
    batched = batched.contiguous()  # torch's: a permuted 1-d input does not make the output NHWC
    output = _op_calls.conv2d(
        batched.unsqueeze(2),
        weight.unsqueeze(2),
        bias,
        [1, stride[0]],
        [0, padding[0]],
        [1, dilation[0]],
        groups,
    ).squeeze(2)
    return output.squeeze(0) if unbatched else output


def _conv1d_padding_string(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    stride: List[int],
    padding: str,
    dilation: List[int],
    groups: int,
) -> torch.Tensor:
    """conv1d with padding 'valid' or 'same', torch's checks in its order (its convolution_same)."""
    _check_1d_input(input, "conv1d")
    if padding == "valid":  # torch's conv1d with padding 0, which checks the weight's rank first
        _check_weight_rank_and_groups(weight, groups)
        return _conv1d_core(input, weight, bias, stride, [0], dilation, groups)
    if padding != "same":
        raise RuntimeError("Invalid padding string: '" + padding + "'")
    unbatched = input.dim() == 2
    if unbatched:
        input = input.unsqueeze(0)
    _check_weight_rank_and_groups(weight, groups)
    k = weight.dim()
    if k != input.dim():
        raise RuntimeError(
            "Expected "
            + str(k)
            + "-dimensional input for "
            + str(k)
            + "-dimensional weight"
            + str(list(weight.shape))
            + ", but got "
            + str(input.dim())
            + "-dimensional input of size "
            + str(list(input.shape))
            + " instead"
        )
    if len(stride) != 1:
        raise RuntimeError("stride cannot broadcast to 1 dimensions")
    if len(dilation) != 1:
        raise RuntimeError("dilation cannot broadcast to 1 dimensions")
    if stride[0] != 1:
        raise RuntimeError("padding='same' is not supported for strided convolutions")
    left, odd = _same_padding(dilation[0], weight.shape[2])
    if odd != 0:  # one more column on the right, as torch pads
        input = F.pad(input, [0, odd])
    output = _conv1d_core(input, weight, bias, stride, [left], dilation, groups)
    return output.squeeze(0) if unbatched else output


def _conv_transpose1d_core(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    stride: List[int],
    padding: List[int],
    output_padding: List[int],
    groups: int,
    dilation: List[int],
) -> torch.Tensor:
    """conv_transpose1d on 3-D or unbatched 2-D input, every argument one value."""
    _check_1d_input(input, "conv_transpose1d")
    unbatched = input.dim() == 2
    batched = input.unsqueeze(0) if unbatched else input
    _check_1d_shapes(batched, weight, bias, stride, padding, output_padding, dilation, groups, True)
    batched = batched.contiguous()  # torch's: a permuted 1-d input does not make the output NHWC
    output = _op_calls.conv_transpose2d(
        batched.unsqueeze(2),
        weight.unsqueeze(2),
        bias,
        [1, stride[0]],
        [0, padding[0]],
        [0, output_padding[0]],
        groups,
        [1, dilation[0]],
    ).squeeze(2)
    return output.squeeze(0) if unbatched else output


def _conv1d_arguments_plain(
    input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1
) -> bool:
    return _conv2d_arguments_plain(input, weight, bias, stride, padding, dilation, groups)


@_arguments.parsed_like(torch.conv1d, _conv1d_arguments_plain, _conv2d_arguments_to_plain)
def conv1d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    stride: Union[int, Sequence[int]] = 1,
    padding: Union[str, int, Sequence[int]] = 0,
    dilation: Union[int, Sequence[int]] = 1,
    groups: int = 1,
) -> torch.Tensor:
    """1-D convolution as torch.nn.functional.conv1d, run as fastconv's conv2d on (N, C, 1, L).

    input: (N, C, L) or unbatched (C, L); weight: (K, C / groups, k); bias: (K,) or None.
    padding: int, 1-tuple, 'valid' or 'same' (stride 1 only).
    """
    if isinstance(padding, str):
        stride = [stride] if isinstance(stride, int) else list(stride)  # int[1] in torch's schema
        dilation = [dilation] if isinstance(dilation, int) else list(dilation)
        return _conv1d_padding_string(input, weight, bias, stride, padding, dilation, groups)
    if bias is not None and bias.dtype != input.dtype:  # torch's conv1d checks this first
        raise RuntimeError(
            f"Input type ({_TYPE_META_NAMES.get(input.dtype, str(input.dtype))}) and bias type "
            f"({_TYPE_META_NAMES.get(bias.dtype, str(bias.dtype))}) should be the same"
        )
    _check_1d_input(input, "conv1d")
    _check_weight_rank_and_groups(weight, groups)
    dims = weight.dim() - 2
    stride = _conv_param("stride", stride, dims, 1)
    padding = _conv_param("padding", padding, dims, 1)
    dilation = _conv_param("dilation", dilation, dims, 1)
    if dims != 1:  # torch's message for a weight of another rank
        _check_1d_shapes(
            input if input.dim() == 3 else input.unsqueeze(0),
            weight,
            bias,
            stride,
            padding,
            [0] * dims,
            dilation,
            groups,
            False,
        )
    return _conv1d_core(input, weight, bias, stride, padding, dilation, groups)


@_arguments.parsed_like(
    torch.conv_transpose1d, _conv_transpose2d_arguments_plain, _conv_transpose2d_arguments_to_plain
)
def conv_transpose1d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    stride: Union[int, Sequence[int]] = 1,
    padding: Union[int, Sequence[int]] = 0,
    output_padding: Union[int, Sequence[int]] = 0,
    groups: int = 1,
    dilation: Union[int, Sequence[int]] = 1,
) -> torch.Tensor:
    """1-D transposed convolution as torch.nn.functional.conv_transpose1d, run as fastconv's
    conv_transpose2d on (N, C_in, 1, L). weight: (C_in, C_out / groups, k)."""
    _check_1d_input(input, "conv_transpose1d")
    stride, padding, output_padding, dilation = _transposed_params(
        weight, groups, stride, padding, output_padding, dilation, 1
    )
    if weight.dim() != 3:  # torch's message for a weight of another rank
        _check_1d_shapes(
            input if input.dim() == 3 else input.unsqueeze(0),
            weight,
            bias,
            stride,
            padding,
            output_padding,
            dilation,
            groups,
            True,
        )
    return _conv_transpose1d_core(
        input, weight, bias, stride, padding, output_padding, groups, dilation
    )
