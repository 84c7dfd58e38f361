"""fastconv.conv1d, fastconv.conv_transpose1d and their modules against torch's: values, gradients,
padding strings, errors (torch's 1-d words, which show the 1-d shapes)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import fastconv
from helpers import assert_close, assert_raises_like_torch, check_against_torch, with_layout

# (N, C, L, K, k, stride, padding, dilation, groups)
CONV_GRID = [
    (2, 3, 10, 4, 3, 1, 1, 1, 1),
    (2, 4, 11, 6, 3, 2, 0, 2, 2),
    (1, 6, 9, 6, 5, 1, 2, 1, 6),  # depthwise
    (3, 8, 7, 4, 1, 1, 0, 1, 1),  # pointwise
    (0, 3, 8, 4, 3, 1, 1, 1, 1),  # empty batch
]

# (N, C_in, L, C_out, k, stride, padding, output_padding, dilation, groups)
TRANSPOSED_GRID = [
    (2, 3, 6, 4, 3, 1, 0, 0, 1, 1),
    (2, 4, 5, 6, 3, 2, 1, 1, 1, 2),
    (1, 3, 5, 2, 3, 1, 1, 1, 2, 1),  # output_padding >= stride, < dilation
    (2, 6, 5, 6, 3, 3, 1, 2, 1, 6),  # depthwise
    (0, 3, 5, 4, 3, 2, 1, 1, 1, 1),  # empty batch
]


def conv_inputs(case, dtype=torch.float64):
    n, c, length, k, kernel, stride, padding, dilation, groups = case
    return (
        torch.randn(n, c, length, dtype=dtype),
        torch.randn(k, c // groups, kernel, dtype=dtype),
        torch.randn(k, dtype=dtype),
        dict(stride=stride, padding=padding, dilation=dilation, groups=groups),
    )


def transposed_inputs(case, dtype=torch.float64):
    n, c, length, k, kernel, stride, padding, output_padding, dilation, groups = case
    return (
        torch.randn(n, c, length, dtype=dtype),
        torch.randn(c, k // groups, kernel, dtype=dtype),
        torch.randn(k, dtype=dtype),
        dict(
            stride=stride,
            padding=padding,
            output_padding=output_padding,
            dilation=dilation,
            groups=groups,
        ),
    )


def check_conv(fast_fn, torch_fn, x, weight, bias, kwargs, errors=False):
    """Values and all three gradients equal torch's (errors: or torch's error)."""
    check_against_torch(fast_fn, torch_fn, x, weight, bias, kwargs=kwargs, errors=errors)


@pytest.mark.parametrize("case", CONV_GRID)
def test_conv1d_matches_torch(case):
    check_conv(fastconv.conv1d, F.conv1d, *conv_inputs(case))


@pytest.mark.parametrize("case", TRANSPOSED_GRID)
def test_conv_transpose1d_matches_torch(case):
    check_conv(fastconv.conv_transpose1d, F.conv_transpose1d, *transposed_inputs(case))


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_unbatched_and_strided_input(layout):
    x, weight, bias, kwargs = conv_inputs(CONV_GRID[1])
    check_conv(fastconv.conv1d, F.conv1d, with_layout(x[0], layout), weight, bias, kwargs)
    x, weight, bias, kwargs = transposed_inputs(TRANSPOSED_GRID[1])
    check_conv(
        fastconv.conv_transpose1d,
        F.conv_transpose1d,
        with_layout(x[0], layout),
        weight,
        bias,
        kwargs,
    )


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("kernel,dilation", [(3, 1), (4, 1), (5, 2), (4, 3)])
def test_conv1d_padding_strings(padding, kernel, dilation):
    x = torch.randn(2, 3, 13, dtype=torch.float64)
    weight = torch.randn(4, 3, kernel, dtype=torch.float64)
    check_conv(
        fastconv.conv1d,
        F.conv1d,
        x,
        weight,
        torch.randn(4, dtype=torch.float64),
        dict(padding=padding, dilation=dilation),
    )


def test_float32_and_half_types():
    for dtype in (torch.float32, torch.bfloat16):
        x, weight, bias, kwargs = conv_inputs(CONV_GRID[1], dtype)
        assert_close(
            fastconv.conv1d(x, weight, bias, **kwargs), F.conv1d(x, weight, bias, **kwargs)
        )
        x, weight, bias, kwargs = transposed_inputs(TRANSPOSED_GRID[1], dtype)
        assert_close(
            fastconv.conv_transpose1d(x, weight, bias, **kwargs),
            F.conv_transpose1d(x, weight, bias, **kwargs),
        )


def test_gradcheck_and_gradgradcheck():
    x, weight, bias, kwargs = conv_inputs((1, 4, 6, 4, 3, 2, 1, 2, 2))
    inputs = tuple(t.requires_grad_() for t in (x, weight, bias))
    conv = lambda x, w, b: fastconv.conv1d(x, w, b, **kwargs)  # noqa: E731
    assert torch.autograd.gradcheck(conv, inputs) and torch.autograd.gradgradcheck(conv, inputs)
    x, weight, bias, kwargs = transposed_inputs((1, 4, 4, 4, 3, 1, 1, 1, 2, 2))
    inputs = tuple(t.requires_grad_() for t in (x, weight, bias))
    transposed = lambda x, w, b: fastconv.conv_transpose1d(x, w, b, **kwargs)  # noqa: E731
    assert torch.autograd.gradcheck(transposed, inputs) and torch.autograd.gradgradcheck(
        transposed, inputs
    )


def x3(*shape, dtype=torch.float32):
    return torch.randn(*shape, dtype=dtype)


CONV1D_ERRORS = {
    "channel mismatch": lambda f: f(x3(2, 5, 10), x3(4, 3, 3)),
    "channel mismatch unbatched": lambda f: f(x3(5, 10), x3(4, 3, 3)),
    "bias size": lambda f: f(x3(2, 3, 10), x3(4, 3, 3), x3(3)),
    "bias dtype": lambda f: f(x3(2, 3, 10), x3(4, 3, 3), x3(4).half()),
    "bias dtype and 4-D input": lambda f: f(x3(2, 3, 10, 1), x3(4, 3, 3), x3(4).double()),
    "kernel larger than input": lambda f: f(x3(2, 3, 2), x3(4, 3, 3)),
    "dilated kernel larger than input": lambda f: f(x3(2, 3, 5), x3(4, 3, 3), dilation=3),
    "groups": lambda f: f(x3(2, 4, 10), x3(5, 2, 3), groups=2),
    "fewer filters than groups": lambda f: f(x3(2, 4, 10), x3(1, 2, 3), groups=2),
    "zero groups": lambda f: f(x3(2, 4, 10), x3(4, 4, 3), groups=0),
    "negative padding": lambda f: f(x3(2, 3, 10), x3(4, 3, 3), padding=-1),
    "zero stride": lambda f: f(x3(2, 3, 10), x3(4, 3, 3), stride=0),
    "negative dilation": lambda f: f(x3(2, 3, 10), x3(4, 3, 3), dilation=-1),
    "zero dilation, float64": lambda f: f(x3(2, 3, 10).double(), x3(4, 3, 3).double(), dilation=0),
    "two strides": lambda f: f(x3(2, 3, 10), x3(4, 3, 3), stride=(1, 1)),
    "4-D input": lambda f: f(x3(1, 2, 3, 10), x3(4, 2, 3)),
    "1-D input": lambda f: f(x3(10), x3(4, 2, 3)),
    "4-D weight": lambda f: f(x3(2, 3, 10), x3(4, 3, 3, 3)),
    "2-D weight": lambda f: f(x3(2, 3, 10), x3(4, 3)),
    "empty length": lambda f: f(x3(2, 3, 0), x3(4, 3, 1)),
    "weight dtype": lambda f: f(x3(2, 3, 10), x3(4, 3, 3).double()),
    "same with stride": lambda f: f(x3(2, 3, 10), x3(4, 3, 3), stride=2, padding="same"),
    "same with 4-D weight": lambda f: f(x3(2, 3, 10), x3(4, 3, 3, 3), padding="same"),
    "same with two dilations": lambda f: f(
        x3(2, 3, 10), x3(4, 3, 3), padding="same", dilation=(1, 1)
    ),
    "same, kernel larger than input": lambda f: f(x3(2, 3, 0), x3(4, 3, 3), padding="same"),
    "unknown padding string": lambda f: f(x3(2, 3, 10), x3(4, 3, 3), padding="full"),
    "float padding": lambda f: f(x3(2, 3, 10), x3(4, 3, 3), padding=1.0),
}

TRANSPOSE1D_ERRORS = {
    "channel mismatch": lambda f: f(x3(2, 5, 6), x3(4, 3, 3)),
    "bias size": lambda f: f(x3(2, 4, 6), x3(4, 3, 3), x3(4)),
    "output_padding not below stride or dilation": lambda f: f(
        x3(2, 4, 6), x3(4, 3, 3), output_padding=1
    ),
    "negative output_padding": lambda f: f(x3(2, 4, 6), x3(4, 3, 3), stride=2, output_padding=-1),
    "output too small, float64": lambda f: f(x3(2, 4, 3).double(), x3(4, 3, 3).double(), padding=4),
    "groups": lambda f: f(x3(2, 4, 6), x3(4, 3, 3), groups=3),
    "zero groups": lambda f: f(x3(2, 4, 6), x3(4, 3, 3), groups=0),
    "4-D input": lambda f: f(x3(1, 2, 4, 6), x3(4, 3, 3)),
    "4-D weight": lambda f: f(x3(2, 4, 6), x3(4, 3, 3, 3)),
    "two strides": lambda f: f(x3(2, 4, 6), x3(4, 3, 3), stride=(2, 2)),
    "weight dtype, float64": lambda f: f(x3(2, 4, 6).double(), x3(4, 3, 3)),
    "empty length": lambda f: f(x3(2, 4, 0), x3(4, 3, 3)),
    "padding string": lambda f: f(x3(2, 4, 6), x3(4, 3, 3), padding="same"),
}


@pytest.mark.parametrize("name", CONV1D_ERRORS)
def test_conv1d_errors_match_torch(name):
    case = CONV1D_ERRORS[name]
    assert_raises_like_torch(lambda: case(fastconv.conv1d), lambda: case(F.conv1d))


@pytest.mark.parametrize("name", TRANSPOSE1D_ERRORS)
def test_conv_transpose1d_errors_match_torch(name):
    case = TRANSPOSE1D_ERRORS[name]
    assert_raises_like_torch(
        lambda: case(fastconv.conv_transpose1d), lambda: case(F.conv_transpose1d)
    )


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 2),
    st.integers(1, 3),
    st.integers(1, 9),
    st.integers(1, 3),
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(1, 3),
    st.booleans(),
)
def test_random_configurations(
    n, groups, length, per_group, kernel, stride, padding, output_padding, dilation, transposed
):
    """Any configuration: torch's values and gradients, or torch's error."""
    c = k = groups * per_group
    x = torch.randn(n, c, length, dtype=torch.float64)
    weight = torch.randn(c if transposed else k, per_group, kernel, dtype=torch.float64)
    bias = torch.randn(k, dtype=torch.float64)
    if transposed:
        fast_fn, torch_fn = fastconv.conv_transpose1d, F.conv_transpose1d
        kwargs = dict(
            stride=stride,
            padding=padding,
            output_padding=output_padding,
            dilation=dilation,
            groups=groups,
        )
    else:
        fast_fn, torch_fn = fastconv.conv1d, F.conv1d
        kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    check_conv(fast_fn, torch_fn, x, weight, bias, kwargs, errors=True)


# ------------------------------------------------------------------------------------- modules


def pair(fast_cls, torch_cls, *args, **kwargs):
    fast = fast_cls(*args, **kwargs).double()
    ref = torch_cls(*args, **kwargs).double()
    ref.load_state_dict(fast.state_dict())
    assert isinstance(fast, torch_cls) and repr(fast) == repr(ref)
    return fast, ref


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(padding=1),
        dict(padding="same", dilation=2),
        dict(padding="valid", stride=2),
        dict(padding=2, padding_mode="reflect"),
        dict(padding=1, padding_mode="replicate", groups=2),
        dict(padding=3, padding_mode="circular", bias=False),
    ],
)
def test_conv1d_module(kwargs):
    fast, ref = pair(fastconv.nn.Conv1d, torch.nn.Conv1d, 4, 6, 3, **kwargs)
    x = torch.randn(2, 4, 12, dtype=torch.float64, requires_grad=True)
    assert_close(fast(x), ref(x))
    assert_close(fast(x[0]), ref(x[0]))
    (fast_grad,) = torch.autograd.grad(fast(x).sum(), x)
    (ref_grad,) = torch.autograd.grad(ref(x).sum(), x)
    assert_close(fast_grad, ref_grad)
    assert_close(torch.jit.script(fast)(x), ref(x))


@pytest.mark.parametrize("output_size", [None, [12], [1, 6, 11]])
def test_conv_transpose1d_module(output_size):
    fast, ref = pair(
        fastconv.nn.ConvTranspose1d,
        torch.nn.ConvTranspose1d,
        4,
        6,
        3,
        stride=2,
        padding=1,
        groups=2,
    )
    x = torch.randn(2, 4, 6, dtype=torch.float64)
    expected = ref(x, output_size)
    assert_close(fast(x, output_size), expected)
    assert_close(torch.jit.script(fast)(x, output_size), expected)


def test_conv_transpose1d_module_output_size_error():
    fast, ref = pair(
        fastconv.nn.ConvTranspose1d, torch.nn.ConvTranspose1d, 4, 6, 3, stride=2, padding=1
    )
    x = torch.randn(2, 4, 6, dtype=torch.float64)
    assert_raises_like_torch(lambda: fast(x, [20]), lambda: ref(x, [20]))


@pytest.mark.parametrize("permuted", ["input", "weight", "both"])
@pytest.mark.parametrize("name", ["conv1d", "conv_transpose1d"])
def test_length_major_tensors_give_torchs_layout(name, permuted):
    """torch makes a 1-d convolution's input contiguous (a length-major input does not make the
    output length-major), not its weight (a length-major weight does)."""

    def length_major(t):
        return t.transpose(1, 2).contiguous().transpose(1, 2)

    x = torch.randn(2, 8, 10, dtype=torch.float64)
    weight = torch.randn(
        (8, 4, 3) if name == "conv_transpose1d" else (4, 8, 3), dtype=torch.float64
    )
    if permuted in ("input", "both"):
        x = length_major(x)
    if permuted in ("weight", "both"):
        weight = length_major(weight)
    (_, (fast,)), (_, (expected,)) = check_against_torch(
        getattr(fastconv, name), getattr(F, name), x, weight
    )
    assert fast.stride() == expected.stride()
