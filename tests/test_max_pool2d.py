"""fastconv.max_pool2d against torch.nn.functional.max_pool2d: values, switches, gradients."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import fastconv
from conftest import LAYOUTS, assert_close, assert_same_error, call, is_channels_last, with_layout

# (kernel_size, stride, padding, dilation, ceil_mode)
GRID = [
    (2, None, 0, 1, False),          # VGG
    (3, 2, 1, 1, False),             # ResNet stem
    (3, 2, 0, 1, True),              # AlexNet / GoogLeNet, ceil mode
    ((3, 2), (2, 1), (1, 0), 1, False),
    (3, 1, 1, 2, False),             # dilated
    (2, 3, 1, (2, 3), True),         # dilated, ceil mode, stride > kernel
    (1, 1, 0, 1, False),
]


def pool_both(x, args, **kwargs):
    kernel, stride, padding, dilation, ceil_mode = args
    kw = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode, **kwargs)
    return fastconv.max_pool2d(x, kernel, **kw), F.max_pool2d(x, kernel, **kw)


def reference_grad(x, switches, grad_output):
    """Plain reference of the backward: each output's gradient added at its switch. A window with
    no tap inside the input (possible with dilation and padding) has a switch outside the plane,
    as torch's; it passes no gradient."""
    plane = x.shape[-2] * x.shape[-1]
    flat = switches.flatten(-2)
    valid = (flat >= 0) & (flat < plane)
    grad = torch.zeros(*x.shape[:-2], plane, dtype=grad_output.dtype)
    grad.scatter_add_(-1, flat.where(valid, 0), grad_output.flatten(-2).where(valid, 0))
    return grad.view(x.shape), bool(valid.all())


def check_against_torch(x, args):
    """Values, switches (identical, int64), layouts and gradients equal torch's."""
    x_fast = x.detach().clone().requires_grad_(x.dtype.is_floating_point)
    x_torch = x.detach().clone().requires_grad_(x.dtype.is_floating_point)
    (out, idx), _ = pool_both(x_fast, args, return_indices=True)
    _, (expected, expected_idx) = pool_both(x_torch, args, return_indices=True)
    assert idx.dtype == torch.int64
    torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(idx, expected_idx)
    assert is_channels_last(out) == is_channels_last(expected)
    assert is_channels_last(idx) == is_channels_last(expected_idx)
    if x.dtype.is_floating_point and out.numel():
        grad_output = torch.randn_like(expected)
        out.backward(grad_output)
        reference, all_switches_inside = reference_grad(x, idx, grad_output.double())
        assert_close(x_fast.grad, reference.to(x.dtype))
        if all_switches_inside:  # torch's CPU backward writes outside the plane otherwise
            expected.backward(grad_output)
            # fastconv adds half types up in float; torch rounds after each add: within tolerance
            assert_close(x_fast.grad, x_torch.grad)


@pytest.mark.parametrize("args", GRID)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_matches_torch_on_grid(args, layout):
    check_against_torch(with_layout(torch.randn(2, 3, 11, 10, dtype=torch.float64), layout), args)


@pytest.mark.parametrize("args", GRID[:3])
def test_without_indices(args):
    x = torch.randn(2, 3, 9, 9)
    actual, expected = pool_both(x, args)
    assert torch.equal(actual, expected)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_ties_take_the_first_index(layout):
    x = with_layout(torch.randint(-1, 2, (2, 4, 12, 12)).double(), layout)  # mostly ties
    for args in GRID:
        check_against_torch(x, args)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_nan_wins_and_carries_its_index(layout):
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    x[0, 0, 1, 1] = float("nan")
    x[1, 2, 4:6, 4:6] = float("nan")  # several NaN in one window
    x[0, 1, 0, 0] = float("inf")
    x[0, 1, 3, 3] = -float("inf")
    x = with_layout(x, layout)
    for args in GRID[:3]:
        check_against_torch(x, args)


def test_window_outside_the_input_gets_no_gradient():
    # A 1x1 image, dilation 2 and padding 1 along the width: the window's taps are at -1 and 1,
    # none inside. Value -inf and switch 1 as torch; the backward must not write past the plane.
    x = torch.randn(1, 2, 1, 1, dtype=torch.float64, requires_grad=True)
    out, idx = fastconv.max_pool2d(x, 2, None, 1, (1, 2), return_indices=True)
    expected, expected_idx = F.max_pool2d(x.detach(), 2, None, 1, (1, 2), return_indices=True)
    assert torch.equal(out, expected) and torch.equal(idx, expected_idx)
    out.backward(torch.ones_like(out))
    reference, _ = reference_grad(x, idx, torch.ones_like(out))
    assert torch.equal(x.grad, reference)


def test_all_minus_infinity_window():
    check_against_torch(torch.full((1, 2, 4, 4), -float("inf"), dtype=torch.float64), GRID[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_dtypes(dtype, layout):
    x = (torch.randn(2, 3, 9, 9) * 50).to(dtype)
    check_against_torch(with_layout(x, layout), GRID[1])


def test_unbatched_and_empty_batch():
    check_against_torch(torch.randn(3, 9, 9, dtype=torch.float64), GRID[1])
    check_against_torch(torch.randn(0, 3, 9, 9, dtype=torch.float64), GRID[1])
    check_against_torch(torch.randn(0, 3, 9, 9).contiguous(memory_format=torch.channels_last), GRID[1])


@pytest.mark.parametrize("args", [GRID[1], GRID[5]])
def test_gradcheck(args):
    x = torch.randn(1, 2, 7, 7, dtype=torch.float64, requires_grad=True)  # distinct values
    fn = lambda x: fastconv.max_pool2d(x, args[0], *args[1:])  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_overlapping_windows_sum_their_gradients():
    # With stride < kernel one input can be the maximum of several windows.
    x = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    x[0, 0, 2, 2] = 1.0
    x.requires_grad_()
    fastconv.max_pool2d(x, 3, 1).sum().backward()
    assert x.grad[0, 0, 2, 2] == 9  # the centre is the maximum of all 9 windows


def test_backward_is_deterministic():
    x = torch.randint(0, 3, (4, 8, 16, 16)).float().requires_grad_()
    grad_output = torch.randn(4, 8, 8, 8)
    first = torch.autograd.grad(fastconv.max_pool2d(x, 3, 2, 1), x, grad_output)[0]
    second = torch.autograd.grad(fastconv.max_pool2d(x, 3, 2, 1), x, grad_output)[0]
    assert torch.equal(first, second)


@st.composite
def pool_configs(draw):
    kernel = draw(st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    return dict(
        shape=(draw(st.integers(0, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 12)), draw(st.integers(1, 12))),
        kernel=kernel,
        stride=draw(st.one_of(st.none(), st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 3)))),
        padding=draw(st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 1)))),
        dilation=draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 2), st.integers(1, 3)))),
        ceil_mode=draw(st.booleans()),
        ties=draw(st.booleans()),
        layout=draw(st.sampled_from(LAYOUTS)),
        unbatched=draw(st.booleans()),
    )


@settings(max_examples=200, deadline=None)
@given(pool_configs())
def test_random_configurations(cfg):
    """Any configuration: torch's values, switches and gradients, or torch's error."""
    x = torch.randint(-2, 3, cfg["shape"]).double() if cfg["ties"] else torch.randn(cfg["shape"], dtype=torch.float64)
    x = with_layout(x, cfg["layout"])
    if cfg["unbatched"] and x.shape[0] == 1:
        x = x[0]
    args = (cfg["kernel"], cfg["stride"], cfg["padding"], cfg["dilation"], cfg["ceil_mode"])
    _, torch_error = call(lambda: pool_both(x, args, return_indices=True)[1])
    if torch_error is not None:
        _, fast_error = call(lambda: pool_both(x, args, return_indices=True)[0])
        assert_same_error(fast_error, torch_error)
        return
    check_against_torch(x, args)
