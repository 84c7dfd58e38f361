"""fastconv.conv2d against torch.nn.functional.conv2d: values, gradients, layouts, dtypes."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import fastconv
from helpers import LAYOUTS, check_against_torch, check_in_dtype, grads, with_layout

# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
GRID = [
    (2, 3, 9, 9, 4, 3, 3, 1, 1, 1, 1),
    (2, 4, 10, 7, 6, 3, 2, 2, 1, 1, 2),  # rectangular kernel and image, grouped
    (1, 3, 11, 12, 5, 3, 3, (2, 1), (0, 2), 2, 1),  # dilated, per-dim stride and padding
    (2, 6, 8, 8, 6, 3, 3, 1, 1, 1, 6),  # depthwise
    (2, 6, 8, 8, 12, 3, 3, 2, 1, 1, 6),  # depthwise with channel multiplier
    (3, 8, 5, 6, 4, 1, 1, 1, 0, 1, 1),  # pointwise (no im2col)
    (2, 8, 9, 9, 8, 1, 1, 2, 0, 1, 2),  # strided 1x1 projection, grouped
    (1, 2, 7, 7, 3, 1, 1, 1, 1, 1, 1),  # 1x1 with padding
    (2, 3, 5, 5, 2, 5, 5, 1, 0, 1, 1),  # kernel covers the whole image
    (1, 2, 13, 13, 3, 3, 3, 3, 4, 4, 1),  # dilation 4, big padding
    (0, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1),  # empty batch
]


def make_conv_inputs(case, dtype=torch.float64, bias=True):
    n, c, h, w, k, r, s, stride, padding, dilation, groups = case
    x = torch.randn(n, c, h, w, dtype=dtype)
    weight = torch.randn(k, c // groups, r, s, dtype=dtype)
    b = torch.randn(k, dtype=dtype) if bias else None
    return x, weight, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


def check_conv2d(x, weight, bias, kwargs, errors=False):
    """Values, output layout and all three gradients equal torch's (errors: or torch's error)."""
    check_against_torch(fastconv.conv2d, F.conv2d, x, weight, bias, kwargs=kwargs, errors=errors)


@pytest.mark.parametrize("case", GRID)
@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch_on_grid(case, bias):
    check_conv2d(*make_conv_inputs(case, bias=bias))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", GRID[:4] + GRID[5:6])
def test_input_layouts(case, layout):
    x, weight, bias, kwargs = make_conv_inputs(case, torch.float32)
    check_conv2d(with_layout(x, layout), weight, bias, kwargs)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_weight_layouts(layout):
    x, weight, bias, kwargs = make_conv_inputs(GRID[0], torch.float32)
    check_conv2d(x, with_layout(weight, layout), bias, kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("case", GRID[:2] + GRID[5:6])
def test_dtypes(case, dtype):
    """Output in the input's dtype, close to the exact (float64) result on the same rounded
    inputs and to torch's own result in that dtype; gradients too."""
    x, weight, bias, kwargs = make_conv_inputs(case, dtype)
    check_in_dtype(fastconv.conv2d, F.conv2d, (x, weight, bias), kwargs, dtype)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("kernel,dilation", [((3, 3), 1), ((4, 2), 1), ((2, 5), 2), ((4, 4), 3)])
def test_padding_strings(padding, kernel, dilation):
    x = torch.randn(2, 3, 11, 12, dtype=torch.float64)
    weight = torch.randn(4, 3, *kernel, dtype=torch.float64)
    check_conv2d(x, weight, None, dict(padding=padding, dilation=dilation))


def test_unbatched_input():
    x, weight, bias, kwargs = make_conv_inputs(GRID[1])
    check_conv2d(x[0], weight, bias, kwargs)


# An input without channels: torch's Empty backend gives no output channels either, (N, 0, ...),
# whatever the weight's; gradients zero (the bias's of its own size). conv_transpose refuses it.
NO_CHANNEL_CALLS = {
    "conv1d stride 2": ("conv1d", (2, 0, 15), (8, 0, 2), dict(stride=2)),
    "conv1d groups 2": ("conv1d", (2, 0, 15), (8, 0, 2), dict(groups=2)),
    "conv1d same": ("conv1d", (2, 0, 15), (8, 0, 4), dict(padding="same")),
    "conv1d empty batch": ("conv1d", (0, 0, 15), (8, 0, 2), {}),
    "conv2d": ("conv2d", (2, 0, 5, 6), (3, 0, 3, 2), dict(padding=1)),
    "conv2d groups 2": ("conv2d", (2, 0, 5, 5), (4, 0, 3, 3), dict(groups=2, stride=2)),
    "conv2d unbatched": ("conv2d", (0, 5, 5), (4, 0, 3, 3), {}),
    "conv2d empty batch": ("conv2d", (0, 0, 5, 5), (4, 0, 3, 3), {}),
    "conv2d channels_last": ("conv2d", (2, 0, 5, 5), (4, 0, 1, 1), dict(channels_last=True)),
    "conv_transpose2d": ("conv_transpose2d", (2, 0, 5, 5), (0, 4, 3, 3), {}),
    "conv_transpose1d groups 2": ("conv_transpose1d", (2, 0, 5), (0, 4, 3), dict(groups=2)),
}


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("call", NO_CHANNEL_CALLS.values(), ids=list(NO_CHANNEL_CALLS))
def test_no_input_channels_like_torch(call, bias):
    name, x_shape, w_shape, kwargs = call
    kwargs = dict(kwargs)
    x = torch.randn(x_shape, dtype=torch.float64)
    if kwargs.pop("channels_last", False):
        x = x.to(memory_format=torch.channels_last)
    weight = torch.randn(w_shape, dtype=torch.float64)
    out_channels = w_shape[1] * kwargs.get("groups", 1) if "transpose" in name else w_shape[0]
    b = torch.randn(out_channels, dtype=torch.float64) if bias else None
    runs = check_against_torch(
        getattr(fastconv, name), getattr(F, name), x, weight, b, kwargs=kwargs, errors=True
    )
    if runs is not None:
        (fast_inputs, fast), (_, expected) = runs
        channel_dim = 1 if x.dim() == weight.dim() else 0
        assert fast[0].shape == expected[0].shape and fast[0].shape[channel_dim] == 0
        assert fast[0].stride() == expected[0].stride()
        if bias:  # zero, of the bias's size: the bias reaches no output
            assert fast_inputs[2].grad.shape == (out_channels,)
            assert not fast_inputs[2].grad.any()


def test_large_image_runs_in_bands():
    # 64 channels x 3x3 taps x 128x128 outputs is 72 MiB of float64 columns: more than the 16 MiB
    # workspace, so forward and both backward ops run over several bands of output rows.
    x, weight, bias, kwargs = make_conv_inputs((1, 64, 128, 128, 8, 3, 3, 1, 1, 1, 1))
    fastconv._C._cpu_workspace_peak_bytes(reset=True)
    check_conv2d(x, weight, bias, kwargs)
    assert 0 < fastconv._C._cpu_workspace_peak_bytes() <= 16 << 20


@pytest.mark.parametrize("case", [GRID[1], GRID[2], GRID[4], GRID[6]])
def test_gradcheck(case):
    n, c, h, w, k, r, s, stride, padding, dilation, groups = case
    x, weight, bias, kwargs = make_conv_inputs(
        (1, c, min(h, 7), min(w, 7), k, r, s, stride, padding, dilation, groups)
    )
    inputs = tuple(t.requires_grad_() for t in (x, weight, bias))
    fn = lambda x, w, b: fastconv.conv2d(x, w, b, **kwargs)  # noqa: E731
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


def test_backward_is_deterministic():
    x, weight, bias, kwargs = make_conv_inputs((4, 8, 12, 12, 8, 3, 3, 1, 1, 1, 2), torch.float32)
    grad_output = torch.randn(4, 8, 12, 12)
    _, first, _ = grads(
        lambda x, w, b: fastconv.conv2d(x, w, b, **kwargs), (x, weight, bias), grad_output
    )
    _, second, _ = grads(
        lambda x, w, b: fastconv.conv2d(x, w, b, **kwargs), (x, weight, bias), grad_output
    )
    for a, b in zip(first, second):
        assert torch.equal(a, b)


@st.composite
def conv_configs(draw):
    groups = draw(st.integers(1, 3))
    config = dict(
        n=draw(st.integers(0, 3)),
        c=groups * draw(st.integers(1, 3)),
        k=groups * draw(st.integers(1, 3)),
        h=draw(st.integers(1, 11)),
        w=draw(st.integers(1, 11)),
        r=draw(st.integers(1, 4)),
        s=draw(st.integers(1, 4)),
        stride=draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))),
        padding=draw(
            st.one_of(
                st.integers(0, 3),
                st.tuples(st.integers(0, 2), st.integers(0, 2)),
                st.sampled_from(["same", "valid"]),
            )
        ),
        dilation=draw(
            st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 2)))
        ),
        groups=groups,
        bias=draw(st.booleans()),
        layout=draw(st.sampled_from(LAYOUTS)),
        unbatched=draw(st.booleans()),
    )
    return config


@settings(max_examples=150, deadline=None)
@given(conv_configs())
def test_random_configurations(cfg):
    """Any configuration: fastconv gives torch's values and gradients, or torch's error."""
    x = torch.randn(cfg["n"], cfg["c"], cfg["h"], cfg["w"], dtype=torch.float64)
    x = with_layout(x, cfg["layout"])
    if cfg["unbatched"] and cfg["n"] == 1:
        x = x[0]
    weight = torch.randn(
        cfg["k"], cfg["c"] // cfg["groups"], cfg["r"], cfg["s"], dtype=torch.float64
    )
    bias = torch.randn(cfg["k"], dtype=torch.float64) if cfg["bias"] else None
    kwargs = {key: cfg[key] for key in ("stride", "padding", "dilation", "groups")}
    check_conv2d(x, weight, bias, kwargs, errors=True)


# torch's output layout: channels_last where input or weight suggests it (suggest_memory_format),
# also for a weight that is both contiguous and channels_last (one input channel per group, or a
# 1x1 kernel) once converted, and for a sliced channels_last input.
LAYOUT_CALLS = {
    "depthwise weight": ((2, 8, 6, 6), (8, 1, 3, 3), 8, "weight"),
    "1x1 weight": ((2, 8, 6, 6), (4, 8, 1, 1), 1, "weight"),
    "one input channel": ((2, 1, 6, 6), (4, 1, 3, 3), 1, "weight"),
    "sliced input": ((2, 8, 12, 6), (4, 8, 3, 3), 1, "sliced"),
    "1x1 image input": ((2, 8, 1, 1), (4, 8, 1, 1), 1, "input"),
}


@pytest.mark.parametrize("call", LAYOUT_CALLS.values(), ids=list(LAYOUT_CALLS))
def test_output_layout_follows_torchs_rule(call):
    x_shape, w_shape, groups, which = call
    x = torch.randn(x_shape, dtype=torch.float64)
    weight = torch.randn(w_shape, dtype=torch.float64)
    if which == "weight":
        weight = weight.to(memory_format=torch.channels_last)
    elif which == "input":
        x = x.to(memory_format=torch.channels_last)
    else:
        x = x.to(memory_format=torch.channels_last)[:, :, ::2]
    (_, (fast,)), (_, (expected,)) = check_against_torch(
        fastconv.conv2d, F.conv2d, x, weight, kwargs=dict(groups=groups)
    )
    # The same strides (those of dims of size 1 say nothing).
    for size, actual, torch_stride in zip(fast.shape, fast.stride(), expected.stride()):
        assert size == 1 or actual == torch_stride, (fast.stride(), expected.stride())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [False, True])
def test_channels_last_pointwise_keeps_its_layout(dtype, bias):
    """A channels_last 1x1 convolution runs as one GEMM over the pixels (no conversion to NCHW
    and back): values, both gradients and the layouts as torch's, over more pixels than a tile
    (1,024) and channels that fill no vector."""
    x = torch.randn(3, 37, 23, 19, dtype=dtype).to(memory_format=torch.channels_last)
    weight = torch.randn(21, 37, 1, 1, dtype=dtype)
    b = torch.randn(21, dtype=dtype) if bias else None
    before = fastconv._C._conv2d_cpu_path_runs()
    (_, (fast,)), (_, (expected,)) = check_against_torch(fastconv.conv2d, F.conv2d, x, weight, b)
    runs = fastconv._C._conv2d_cpu_path_runs()
    assert runs["forward", "im2col_blas"] > before["forward", "im2col_blas"]
    assert runs["input_backward", "im2col_blas"] > before["input_backward", "im2col_blas"]
    assert fast.is_contiguous(memory_format=torch.channels_last)
