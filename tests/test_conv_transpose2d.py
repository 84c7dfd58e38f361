"""fastconv.conv_transpose2d and fastconv.nn.ConvTranspose2d against torch's: values, gradients
(first and second order), layouts, dtypes, thread counts, errors."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import fastconv
from helpers import (
    LAYOUTS,
    assert_close,
    assert_raises_like_torch,
    check_against_torch,
    check_in_dtype,
    grads,
    results_per_thread_count,
    with_layout,
)

# (N, C_in, H, W, C_out, R, S, stride, padding, output_padding, dilation, groups)
GRID = [
    (2, 3, 5, 5, 4, 3, 3, 1, 0, 0, 1, 1),
    (2, 4, 5, 6, 6, 3, 3, 2, 1, 1, 1, 2),  # strided, output_padding, grouped
    (1, 3, 4, 5, 2, 3, 2, (2, 3), (1, 0), (1, 2), 1, 1),  # per-dim stride, padding, output_padding
    (2, 3, 5, 4, 4, 3, 3, 1, 1, 1, 2, 1),  # output_padding >= stride, < dilation
    (1, 2, 4, 4, 3, 2, 3, (1, 2), 0, (1, 1), (2, 1), 1),  # one dim each way
    (2, 6, 6, 6, 6, 3, 3, 1, 1, 0, 1, 6),  # depthwise
    (2, 6, 5, 5, 12, 3, 3, 2, 1, 1, 1, 6),  # depthwise, channel multiplier, strided
    (3, 8, 5, 6, 4, 1, 1, 1, 0, 0, 1, 1),  # pointwise
    (1, 2, 3, 3, 3, 4, 4, 3, 2, 2, 2, 1),  # dilated, strided
    (0, 3, 5, 5, 4, 3, 3, 2, 1, 1, 1, 1),  # empty batch
]


def make_inputs(case, dtype=torch.float64, bias=True):
    n, c, h, w, k, r, s, stride, padding, output_padding, dilation, groups = case
    x = torch.randn(n, c, h, w, dtype=dtype)
    weight = torch.randn(c, k // groups, r, s, dtype=dtype)
    b = torch.randn(k, dtype=dtype) if bias else None
    kwargs = dict(
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        groups=groups,
    )
    return x, weight, b, kwargs


def check_conv_transpose2d(x, weight, bias, kwargs, errors=False):
    """Values, shape, layout and all three gradients equal torch's (errors: or torch's error)."""
    check_against_torch(
        fastconv.conv_transpose2d, F.conv_transpose2d, x, weight, bias, kwargs=kwargs, errors=errors
    )


@pytest.mark.parametrize("case", GRID)
@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch_on_grid(case, bias):
    check_conv_transpose2d(*make_inputs(case, bias=bias))


def test_positional_arguments_in_torchs_order():
    x, weight, bias, _ = make_inputs(GRID[1])
    # input, weight, bias, stride, padding, output_padding, groups, dilation
    torch.testing.assert_close(
        fastconv.conv_transpose2d(x, weight, bias, 2, 1, 1, 2, 1),
        F.conv_transpose2d(x, weight, bias, 2, 1, 1, 2, 1),
    )


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", [GRID[1], GRID[3], GRID[5], GRID[7]])
def test_input_layouts(case, layout):
    x, weight, bias, kwargs = make_inputs(case, torch.float32)
    check_conv_transpose2d(with_layout(x, layout), weight, bias, kwargs)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_weight_layouts(layout):
    x, weight, bias, kwargs = make_inputs(GRID[1], torch.float32)
    check_conv_transpose2d(x, with_layout(weight, layout), bias, kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("case", [GRID[1], GRID[3], GRID[6]])
def test_dtypes(case, dtype):
    """Output and gradients in the input's dtype, close to the float64 result on the same rounded
    inputs and to torch's own result in that dtype."""
    x, weight, bias, kwargs = make_inputs(case, dtype)
    check_in_dtype(fastconv.conv_transpose2d, F.conv_transpose2d, (x, weight, bias), kwargs, dtype)


def test_unbatched_input():
    x, weight, bias, kwargs = make_inputs(GRID[1])
    check_conv_transpose2d(x[0], weight, bias, kwargs)


def test_empty_batch():
    x, weight, bias, kwargs = make_inputs(GRID[-1])
    out = fastconv.conv_transpose2d(x, weight, bias, **kwargs)
    assert out.shape == F.conv_transpose2d(x, weight, bias, **kwargs).shape == (0, 4, 10, 10)
    x.requires_grad_()
    (grad,) = torch.autograd.grad(fastconv.conv_transpose2d(x, weight, bias, **kwargs).sum(), x)
    assert grad.shape == x.shape


# Padding that leaves an output plane with no columns (or rows): torch (oneDNN, float32, where
# groups > 1) returns the empty output and zero gradients; conv2d, which the input gradient runs
# on, refuses an empty input plane.
EMPTY_OUTPUT_PLANES = [
    ((1, 2, 5, 4), (2, 1, 2, 1), dict(padding=2, groups=2)),  # 2 x 0
    ((2, 6, 4, 1), (6, 1, 1, 2), dict(padding=(0, 1), groups=6)),  # 4 x 0
    ((1, 4, 3, 3), (4, 2, 2, 3), dict(padding=(2, 1), groups=2)),  # 0 x 3
]


@pytest.mark.parametrize("x_shape, w_shape, kwargs", EMPTY_OUTPUT_PLANES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_empty_output_plane_gives_zero_gradients(x_shape, w_shape, kwargs, layout):
    x = with_layout(torch.randn(x_shape), layout)
    weight = torch.randn(w_shape)
    bias = torch.randn(w_shape[1] * kwargs["groups"])
    assert F.conv_transpose2d(x, weight, bias, **kwargs).numel() == 0
    check_conv_transpose2d(x, weight, bias, kwargs)


@pytest.mark.parametrize("case", [GRID[1], GRID[2], GRID[3], GRID[6], GRID[8]])
def test_gradcheck_and_gradgradcheck(case):
    n, c, h, w, *rest = case
    x, weight, bias, kwargs = make_inputs((1, c, min(h, 4), min(w, 4), *rest))
    inputs = tuple(t.requires_grad_() for t in (x, weight, bias))
    fn = lambda x, w, b: fastconv.conv_transpose2d(x, w, b, **kwargs)  # noqa: E731
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("case", [GRID[1], GRID[3], GRID[5]])
def test_thread_count_does_not_change_the_result(case):
    x, weight, bias, kwargs = make_inputs((4,) + case[1:], torch.float32)
    grad_output = torch.ones_like(F.conv_transpose2d(x, weight, bias, **kwargs))
    (out1, grads1, _), (out2, grads2, _) = results_per_thread_count(
        lambda: grads(
            lambda x, w, b: fastconv.conv_transpose2d(x, w, b, **kwargs),
            (x, weight, bias),
            grad_output,
        ),
        (1, 2),
    )
    assert torch.equal(out1, out2)
    for a, b in zip(grads1, grads2):
        assert torch.equal(a, b)


def x4(*shape, dtype=torch.float32):
    return torch.randn(*shape, dtype=dtype)


ERROR_CASES = {
    "output_padding not below stride or dilation": lambda f: f(
        x4(2, 4, 5, 5), x4(4, 3, 3, 3), output_padding=1
    ),
    "output_padding too big in one dim": lambda f: f(
        x4(2, 4, 5, 5), x4(4, 3, 3, 3), stride=2, output_padding=(2, 0)
    ),
    "output_padding big, float64": lambda f: f(
        x4(2, 4, 5, 5).double(), x4(4, 3, 3, 3).double(), output_padding=1
    ),
    "negative output_padding": lambda f: f(
        x4(2, 4, 5, 5), x4(4, 3, 3, 3), stride=2, output_padding=-1
    ),
    "negative padding": lambda f: f(x4(2, 4, 5, 5), x4(4, 3, 3, 3), padding=-1),
    "zero stride": lambda f: f(x4(2, 4, 5, 5), x4(4, 3, 3, 3), stride=0),
    "negative dilation": lambda f: f(x4(2, 4, 5, 5), x4(4, 3, 3, 3), dilation=-1),
    "zero dilation, float64": lambda f: f(
        x4(2, 4, 5, 5).double(), x4(4, 3, 3, 3).double(), dilation=0
    ),
    "zero dilation, slow float32": lambda f: f(
        x4(2, 4, 5, 5), x4(4, 3, 3, 3), dilation=0, output_padding=1
    ),
    "zero groups": lambda f: f(x4(2, 4, 5, 5), x4(4, 3, 3, 3), groups=0),
    "weight not divisible by groups": lambda f: f(x4(2, 4, 5, 5), x4(4, 3, 3, 3), groups=3),
    "fewer weight rows than groups": lambda f: f(x4(2, 0, 5, 5), x4(0, 3, 3, 3)),
    "channel mismatch": lambda f: f(x4(2, 5, 5, 5), x4(4, 3, 3, 3)),
    "channel mismatch, grouped": lambda f: f(x4(2, 6, 5, 5), x4(4, 3, 3, 3), groups=2),
    "bias size": lambda f: f(x4(2, 4, 5, 5), x4(4, 3, 3, 3), x4(4)),
    "bias rank": lambda f: f(x4(2, 4, 5, 5), x4(4, 3, 3, 3), x4(3, 1)),
    "bias dtype (oneDNN)": lambda f: f(x4(2, 4, 5, 5), x4(4, 3, 3, 3), x4(3).half()),
    "weight dtype (oneDNN)": lambda f: f(x4(2, 4, 5, 5), x4(4, 3, 3, 3).half()),
    "weight dtype (slow kernel)": lambda f: f(x4(2, 4, 5, 5).double(), x4(4, 3, 3, 3).half()),
    "weight dtype, 1x1 (slow kernel)": lambda f: f(x4(1, 4, 3, 3), x4(4, 3, 1, 1).half()),
    "output too small, float64": lambda f: f(
        x4(2, 4, 5, 5).double(), x4(4, 3, 3, 3).double(), padding=5
    ),
    "output too small, 1x1": lambda f: f(x4(1, 4, 3, 3), x4(4, 3, 1, 1), padding=2),
    "empty kernel, float64": lambda f: f(x4(2, 4, 5, 5).double(), x4(4, 3, 0, 3).double()),
    "no output channels, float64": lambda f: f(x4(2, 4, 5, 5).double(), x4(4, 0, 3, 3).double()),
    "empty image": lambda f: f(x4(2, 4, 0, 5), x4(4, 3, 3, 3)),
    "empty batch, negative output size": lambda f: f(x4(0, 4, 5, 5), x4(4, 3, 3, 3), padding=5),
    "2-D input": lambda f: f(x4(5, 5), x4(4, 3, 3, 3)),
    "5-D input": lambda f: f(x4(1, 2, 4, 5, 5), x4(4, 3, 3, 3)),
    "3-D weight": lambda f: f(x4(2, 4, 5, 5), x4(4, 3, 3)),
    "2-D weight": lambda f: f(x4(2, 4, 5, 5), x4(4, 3)),
    "5-D weight": lambda f: f(x4(2, 4, 5, 5), x4(4, 3, 3, 3, 1)),
    "three strides": lambda f: f(x4(2, 4, 5, 5), x4(4, 3, 3, 3), stride=(1, 1, 1)),
    "three output paddings": lambda f: f(x4(2, 4, 5, 5), x4(4, 3, 3, 3), output_padding=(1, 1, 1)),
    "padding string": lambda f: f(x4(2, 4, 5, 5), x4(4, 3, 3, 3), padding="same"),
    "float stride": lambda f: f(x4(2, 4, 5, 5), x4(4, 3, 3, 3), stride=1.5),
}


@pytest.mark.parametrize("name", ERROR_CASES)
def test_errors_match_torch(name):
    case = ERROR_CASES[name]
    assert_raises_like_torch(
        lambda: case(fastconv.conv_transpose2d), lambda: case(F.conv_transpose2d)
    )


def test_errors_torch_leaves_to_its_backends_say_what_is_wrong():
    """Where torch's oneDNN fails with an internal message, fastconv gives its slow kernel's
    words."""
    x, w = x4(2, 4, 5, 5), x4(4, 3, 3, 3)
    with pytest.raises(
        RuntimeError, match="dilation should be greater than zero, but got dilation_height: 0"
    ):
        fastconv.conv_transpose2d(x, w, dilation=0)
    with pytest.raises(RuntimeError, match="Calculated output size per channel: \\(-3 x -3\\)"):
        fastconv.conv_transpose2d(x, w, padding=5)
    with pytest.raises(RuntimeError, match="kernel size should be greater than zero"):
        fastconv.conv_transpose2d(x[:0], w[:, :, :0])


def test_integer_input_is_not_implemented():
    """torch computes integer transposed convolutions on its slow kernel; fastconv refuses them as
    it refuses integer conv2d (README, "Supported, and not yet")."""
    x, weight = torch.ones(1, 2, 4, 4, dtype=torch.long), torch.ones(2, 3, 3, 3, dtype=torch.long)
    with pytest.raises(NotImplementedError, match="not implemented for 'Long'"):
        fastconv.conv_transpose2d(x, weight)


def test_zero_dilation_along_a_one_tap_kernel_where_torch_runs_onednn():
    """torch's oneDNN path takes it (a dilation changes nothing along one tap); its slow kernel
    (float64 here) refuses it, and so does fastconv."""
    x, weight = torch.randn(3, 2, 4, 4), torch.randn(2, 3, 1, 3)
    kwargs = dict(stride=(2, 3), output_padding=1, dilation=(0, 1))
    check_conv_transpose2d(x, weight, torch.randn(3), kwargs)
    assert_raises_like_torch(
        lambda: fastconv.conv_transpose2d(x.double(), weight.double(), **kwargs),
        lambda: F.conv_transpose2d(x.double(), weight.double(), **kwargs),
    )


@st.composite
def configs(draw):
    groups = draw(st.integers(1, 3))
    stride = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    dilation = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    return dict(
        n=draw(st.integers(0, 3)),
        c=groups * draw(st.integers(1, 3)),
        k=groups * draw(st.integers(1, 3)),
        h=draw(st.integers(1, 7)),
        w=draw(st.integers(1, 7)),
        r=draw(st.integers(1, 4)),
        s=draw(st.integers(1, 4)),
        stride=stride,
        padding=draw(st.tuples(st.integers(0, 3), st.integers(0, 3))),
        # mostly valid (below stride or dilation), sometimes not
        output_padding=tuple(draw(st.integers(0, max(stride[d], dilation[d]))) for d in (0, 1)),
        dilation=dilation,
        groups=groups,
        depthwise=draw(st.booleans()),
        bias=draw(st.booleans()),
        layout=draw(st.sampled_from(LAYOUTS)),
        unbatched=draw(st.booleans()),
    )


@settings(max_examples=150, deadline=None)
@given(configs())
def test_random_configurations(cfg):
    """Any configuration: torch's values and gradients, or torch's error."""
    c, k, groups = cfg["c"], cfg["k"], cfg["groups"]
    if cfg["depthwise"]:
        c = groups = k = cfg["c"]
    x = with_layout(
        torch.randn(cfg["n"], c, cfg["h"], cfg["w"], dtype=torch.float64), cfg["layout"]
    )
    if cfg["unbatched"] and cfg["n"] == 1:
        x = x[0]
    weight = torch.randn(c, k // groups, cfg["r"], cfg["s"], dtype=torch.float64)
    bias = torch.randn(k, dtype=torch.float64) if cfg["bias"] else None
    kwargs = dict(
        stride=cfg["stride"],
        padding=cfg["padding"],
        output_padding=cfg["output_padding"],
        dilation=cfg["dilation"],
        groups=groups,
    )
    check_conv_transpose2d(x, weight, bias, kwargs, errors=True)


# ------------------------------------------------------------------------------------- module


def module_pair(*args, **kwargs):
    fast = fastconv.nn.ConvTranspose2d(*args, **kwargs).double()
    ref = torch.nn.ConvTranspose2d(*args, **kwargs).double()
    ref.load_state_dict(fast.state_dict())
    return fast, ref


@pytest.mark.parametrize("output_size", [None, [11, 12], [1, 3, 12, 11], (12, 12)])
def test_module_output_size(output_size):
    fast, ref = module_pair(3, 4, 3, stride=2, padding=1, dilation=1)
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    expected = ref(x, output_size)
    actual = fast(x, output_size)
    assert actual.shape == expected.shape
    assert_close(actual, expected)


@pytest.mark.parametrize("output_size", [[14, 11], [9, 11], [1, 2, 3]])
def test_module_output_size_errors(output_size):
    fast, ref = module_pair(3, 4, 3, stride=2, padding=1)
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    assert_raises_like_torch(lambda: fast(x, output_size), lambda: ref(x, output_size))


def test_module_is_torchs_and_scripts():
    fast, ref = module_pair(4, 6, (3, 2), stride=(2, 1), padding=1, output_padding=(1, 0), groups=2)
    assert isinstance(fast, torch.nn.ConvTranspose2d) and repr(fast) == repr(ref)
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    assert_close(fast(x), ref(x))
    scripted = torch.jit.script(fast)
    assert_close(scripted(x), ref(x))
    assert_close(scripted(x, [9, 4]), ref(x, [9, 4]))


def test_module_padding_mode_error():
    with pytest.raises(ValueError):
        fastconv.nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect")


def test_output_layout_follows_torchs_rule():
    """A weight both contiguous and channels_last (one output channel per group), converted:
    torch's output is channels_last (its suggest_memory_format rule)."""
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    weight = torch.randn(8, 1, 3, 3, dtype=torch.float64).to(memory_format=torch.channels_last)
    (_, (fast,)), (_, (expected,)) = check_against_torch(
        fastconv.conv_transpose2d, F.conv_transpose2d, x, weight, kwargs=dict(groups=8)
    )
    assert expected.is_contiguous(memory_format=torch.channels_last)
    assert fast.stride() == expected.stride()
