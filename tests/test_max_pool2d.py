"""fastconv.max_pool2d against torch.nn.functional.max_pool2d: values, indices, gradients."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings, strategies as st
from torch.nn.modules.utils import _pair

import fastconv
from helpers import (
    LAYOUTS,
    assert_close,
    call,
    check_against_torch,
    is_channels_last,
    run_with_cpu_capability,
    with_layout,
)

# (kernel_size, stride, padding, dilation, ceil_mode)
GRID = [
    (2, None, 0, 1, False),  # VGG
    (3, 2, 1, 1, False),  # ResNet stem
    (3, 2, 0, 1, True),  # AlexNet / GoogLeNet, ceil mode
    ((3, 2), (2, 1), (1, 0), 1, False),
    (3, 1, 1, 2, False),  # dilated
    (2, 3, 1, (2, 3), True),  # dilated, ceil mode, stride > kernel
    (1, 1, 0, 1, False),
]


def pool(fn, x, args, **kwargs):
    """fn (fastconv.max_pool2d or F.max_pool2d) with the arguments of a GRID row."""
    kernel, stride, padding, dilation, ceil_mode = args
    return fn(
        x, kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode, **kwargs
    )


def reference_grad(x, indices, grad_output):
    """Plain reference of the backward: each output's gradient added at its index. A window with
    no tap inside the input (possible with dilation and padding) has an index outside the plane,
    as torch's; it passes no gradient."""
    plane = x.shape[-2] * x.shape[-1]
    flat = indices.flatten(-2)
    valid = (flat >= 0) & (flat < plane)
    grad = torch.zeros(*x.shape[:-2], plane, dtype=grad_output.dtype)
    grad.scatter_add_(-1, flat.where(valid, 0), grad_output.flatten(-2).where(valid, 0))
    return grad.view(x.shape), bool(valid.all())


def check_max_pool2d(x, args, errors=False):
    """Values, indices (identical, int64), layouts and gradients equal torch's (errors: or torch's
    error)."""
    runs = check_against_torch(
        lambda t: pool(fastconv.max_pool2d, t, args, return_indices=True),
        lambda t: pool(F.max_pool2d, t, args, return_indices=True),
        x,
        exact=True,
        backward=False,
        errors=errors,
    )
    if runs is None:  # torch raised, and fastconv raised the same
        return
    ((x_fast,), (out, idx)), ((x_torch,), (expected, _)) = runs
    assert idx.dtype == torch.int64
    if x.dtype.is_floating_point and out.numel():
        grad_output = torch.randn_like(expected)
        out.backward(grad_output)
        reference, all_indices_inside = reference_grad(x, idx, grad_output.double())
        assert_close(x_fast.grad, reference.to(x.dtype))
        if all_indices_inside:  # torch's CPU backward writes outside the plane otherwise
            expected.backward(grad_output)
            # fastconv adds half types up in float; torch rounds after each add: within tolerance
            assert_close(x_fast.grad, x_torch.grad)


@pytest.mark.parametrize("args", GRID)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_matches_torch_on_grid(args, layout):
    check_max_pool2d(with_layout(torch.randn(2, 3, 11, 10, dtype=torch.float64), layout), args)


@pytest.mark.parametrize("args", GRID[:3])
def test_without_indices(args):
    x = torch.randn(2, 3, 9, 9)
    actual, expected = pool(fastconv.max_pool2d, x, args), pool(F.max_pool2d, x, args)
    assert torch.equal(actual, expected)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_ties_take_the_first_index(layout):
    x = with_layout(torch.randint(-1, 2, (2, 4, 12, 12)).double(), layout)  # mostly ties
    for args in GRID:
        check_max_pool2d(x, args)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_nan_wins_and_carries_its_index(layout):
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    x[0, 0, 1, 1] = float("nan")
    x[1, 2, 4:6, 4:6] = float("nan")  # several NaN in one window
    x[0, 1, 0, 0] = float("inf")
    x[0, 1, 3, 3] = -float("inf")
    x = with_layout(x, layout)
    for args in GRID[:3]:
        check_max_pool2d(x, args)


def test_window_outside_the_input_gets_no_gradient():
    # A 1x1 image, dilation 2 and padding 1 along the width: the window's taps are at -1 and 1,
    # none inside. Value -inf and index 1 as torch; the backward must not write past the plane.
    x = torch.randn(1, 2, 1, 1, dtype=torch.float64, requires_grad=True)
    out, idx = fastconv.max_pool2d(x, 2, None, 1, (1, 2), return_indices=True)
    expected, expected_idx = F.max_pool2d(x.detach(), 2, None, 1, (1, 2), return_indices=True)
    assert torch.equal(out, expected) and torch.equal(idx, expected_idx)
    out.backward(torch.ones_like(out))
    reference, _ = reference_grad(x, idx, torch.ones_like(out))
    assert torch.equal(x.grad, reference)


def test_all_minus_infinity_window():
    check_max_pool2d(torch.full((1, 2, 4, 4), -float("inf"), dtype=torch.float64), GRID[1])


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8]
)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_dtypes(dtype, layout):
    x = (torch.randn(2, 3, 9, 9) * 50).to(dtype)
    check_max_pool2d(with_layout(x, layout), GRID[1])


def test_unbatched_and_empty_batch():
    check_max_pool2d(torch.randn(3, 9, 9, dtype=torch.float64), GRID[1])
    check_max_pool2d(torch.randn(0, 3, 9, 9, dtype=torch.float64), GRID[1])
    check_max_pool2d(torch.randn(0, 3, 9, 9).contiguous(memory_format=torch.channels_last), GRID[1])


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
        shape=(
            draw(st.integers(0, 2)),
            draw(st.integers(1, 3)),
            draw(st.integers(1, 12)),
            draw(st.integers(1, 12)),
        ),
        kernel=kernel,
        stride=draw(
            st.one_of(st.none(), st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 3)))
        ),
        padding=draw(st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 1)))),
        dilation=draw(
            st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 2), st.integers(1, 3)))
        ),
        ceil_mode=draw(st.booleans()),
        ties=draw(st.booleans()),
        layout=draw(st.sampled_from(LAYOUTS)),
        unbatched=draw(st.booleans()),
    )


@settings(max_examples=200, deadline=None)
@given(pool_configs())
def test_random_configurations(cfg):
    """Any configuration: torch's values, indices and gradients, or torch's error."""
    x = (
        torch.randint(-2, 3, cfg["shape"]).double()
        if cfg["ties"]
        else torch.randn(cfg["shape"], dtype=torch.float64)
    )
    x = with_layout(x, cfg["layout"])
    if cfg["unbatched"] and x.shape[0] == 1:
        x = x[0]
    args = (cfg["kernel"], cfg["stride"], cfg["padding"], cfg["dilation"], cfg["ceil_mode"])
    check_max_pool2d(x, args, errors=True)


# ------------------------------------------------------------------------------------------------
# The CPU kernels' float32 vector paths (AVX2, where torch's CPU capability allows it): NCHW does
# interior output columns 8 at a time (column stride 1 or 2: one partial block when fewer than 8,
# its taps loaded masked only where whole vectors would read past the input tensor; an overlapping
# last block otherwise) and borders one by one; channels_last does 8 to 32 channels
# at a time, the rest masked. These tests aim at their edges, in float32; the same cases also run
# on the generic loops in a subprocess with ATEN_CPU_CAPABILITY=default.

# (shape, kernel, stride, padding, dilation, ceil_mode)
VECTOR_CASES = [
    ((2, 3, 9, 30), 3, 2, 1, 1, False),  # ResNet-like: left border, 8 + overlapping block
    ((1, 2, 9, 17), 2, 2, 0, 1, False),  # VGG-like, odd width: last column unused
    ((1, 2, 8, 16), 2, 2, 0, 1, False),  # interior exactly 8 columns
    ((1, 2, 13, 13), 3, 2, 0, 1, False),  # AlexNet pool5: 6 columns, one partial block
    ((1, 4, 4, 9), 3, 1, 0, 1, False),  # 7 columns: whole loads, masked in the last plane's end
    ((1, 1, 2, 6), 2, 2, 0, 1, False),  # one output row, 3 columns: masked loads only
    ((1, 2, 5, 3), 3, 1, 1, 1, False),  # a single interior column
    ((1, 2, 6, 4), 2, 2, 0, 1, True),  # ceil mode: a window past the right edge
    ((1, 3, 11, 27), 3, 2, 0, 1, True),
    ((1, 2, 11, 41), 3, 1, 1, 2, False),  # stride 1, dilated
    ((1, 2, 12, 40), (2, 4), (1, 2), (1, 2), (2, 3), False),
    ((1, 2, 10, 33), (3, 1), (2, 1), (1, 0), 1, False),
    ((1, 2, 10, 33), (1, 3), (1, 3), (0, 1), 1, True),  # stride 3: generic loop
    ((2, 2, 7, 7), 2, 1, 1, 3, True),  # windows partly or wholly in the padding
    ((1, 3, 1, 5), 2, (2, 1), 1, 2, False),  # no window row inside the input
    ((1, 2, 1, 9), 1, 1, 0, 1, False),
]
CHANNELS = [1, 3, 8, 9, 17, 33, 64, 70]  # channels_last: vector width 8, groups of 32


def draw_values(shape, kind, dtype=torch.float32):
    """'randn', 'ties' (few distinct values), 'nan' (NaN here and there, several per window
    sometimes), 'inf' (-inf patches, whole windows of it, and +inf)."""
    if kind == "ties":
        return torch.randint(-1, 2, shape).to(dtype)
    x = torch.randn(shape).to(dtype)
    if kind == "nan":
        x[torch.rand(shape) < 0.15] = float("nan")
    elif kind == "inf":
        x[torch.rand(shape) < 0.5] = -float("inf")
        x[torch.rand(shape) < 0.02] = float("inf")
    return x


@pytest.mark.parametrize("case", VECTOR_CASES)
@pytest.mark.parametrize("kind", ["randn", "ties", "nan", "inf"])
def test_float32_vector_path_nchw(case, kind):
    shape, *args = case
    check_max_pool2d(draw_values(shape, kind), args)


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("kind", ["randn", "ties", "nan", "inf"])
def test_float32_vector_path_channels_last(channels, kind):
    for shape, *args in VECTOR_CASES[::3] + [VECTOR_CASES[-2]]:
        x = draw_values((shape[0], channels, *shape[2:]), kind)
        check_max_pool2d(x.contiguous(memory_format=torch.channels_last), args)


def test_float32_all_minus_infinity_and_nan_windows():
    x = torch.full((1, 9, 12, 20), -float("inf"))
    x[0, :, 5, 7] = float("nan")
    x[0, :, 5, 9] = float("nan")  # two NaN in one window: the later one wins
    x[0, :, 2, 2] = float("inf")
    for layout in ("contiguous", "channels_last"):
        for args in [(3, 2, 1, 1, False), (2, 2, 0, 1, False), (3, 1, 1, 1, True)]:
            check_max_pool2d(with_layout(x, layout), args)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_float32_large_plane(layout):
    x = draw_values((1, 2, 301, 1203), "ties")  # ties everywhere: the first index must win
    check_max_pool2d(with_layout(x, layout), (3, 2, 1, 1, False))
    check_max_pool2d(with_layout(x[:, :1, :64], layout), (2, 2, 0, 1, True))


def test_float32_empty_batch_and_unbatched():
    for layout in ("contiguous", "channels_last"):
        check_max_pool2d(with_layout(torch.randn(0, 16, 9, 9), layout), (3, 2, 1, 1, False))
    check_max_pool2d(torch.randn(5, 9, 19), (3, 2, 1, 1, False))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("channels", [1, 16, 40, 64])
def test_channels_last_backward(dtype, channels):
    # Batch 1 splits the channels into groups run in parallel (float and double); half types
    # go through NCHW. Overlapping windows and ties make inputs collect several gradients.
    x = (
        torch.randint(-1, 2, (1, channels, 15, 14))
        .to(dtype)
        .contiguous(memory_format=torch.channels_last)
    )
    check_max_pool2d(x, (3, 2, 1, 1, False))
    check_max_pool2d(x, (3, 1, 1, 1, False))


def test_channels_last_backward_is_deterministic_and_takes_any_grad_layout():
    x = torch.randint(0, 3, (2, 40, 16, 16)).float().contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    out = fastconv.max_pool2d(x, 3, 1, 1)
    grad_output = torch.randn(out.shape)  # NCHW gradient for a channels_last output
    first = torch.autograd.grad(out, x, grad_output, retain_graph=True)[0]
    second = torch.autograd.grad(out, x, grad_output.contiguous(memory_format=torch.channels_last))[
        0
    ]
    assert torch.equal(first, second) and is_channels_last(first)
    expected = torch.autograd.grad(F.max_pool2d(x, 3, 1, 1), x, grad_output)[0]
    assert_close(first, expected)


@st.composite
def float32_configs(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    return dict(
        shape=(
            draw(st.integers(1, 2)),
            draw(st.sampled_from([1, 3, 8, 11, 35])),
            draw(st.integers(1, 14)),
            draw(st.integers(1, 45)),
        ),
        args=(
            kernel,
            (draw(st.integers(1, 3)), draw(st.sampled_from([1, 2, 2, 3]))),
            padding,
            (draw(st.integers(1, 2)), draw(st.integers(1, 3))),
            draw(st.booleans()),
        ),
        kind=draw(st.sampled_from(["randn", "ties", "nan", "inf"])),
        layout=draw(st.sampled_from(LAYOUTS)),
    )


@settings(max_examples=150, deadline=None)
@given(float32_configs())
def test_float32_random_configurations(cfg):
    """float32 (the vector paths) on any geometry torch accepts: torch's values and indices."""
    x = with_layout(draw_values(cfg["shape"], cfg["kind"]), cfg["layout"])
    _, torch_error = call(lambda: F.max_pool2d(x, *cfg["args"], return_indices=True))
    assume(torch_error is None)  # torch's errors are checked in test_random_configurations
    check_max_pool2d(x, cfg["args"])


GENERIC_PATH_SCRIPT = r"""
import sys
import torch
assert torch.backends.cpu.get_cpu_capability() == "DEFAULT", torch.backends.cpu.get_cpu_capability()
sys.path[:0] = sys.argv[1:]
import test_max_pool2d as t
torch.manual_seed(0)
for case in t.VECTOR_CASES:
    shape, *args = case
    for kind in ("randn", "ties", "nan", "inf"):
        t.check_max_pool2d(t.draw_values(shape, kind), args)
        x = t.draw_values((shape[0], 11, *shape[2:]), kind)
        t.check_max_pool2d(x.contiguous(memory_format=torch.channels_last), args)
print("ok")
"""


def test_generic_path_without_avx2():
    """ATEN_CPU_CAPABILITY=default: torch's and fastconv's kernels take their generic loops (as on
    a CPU without AVX2); the edge cases above must still match torch."""
    tests = Path(__file__).resolve().parent
    result = run_with_cpu_capability(
        "default", GENERIC_PATH_SCRIPT, tests, tests.parent, timeout=600
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), (
        result.stdout + result.stderr
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize(
    "args",
    [
        (2, 2, 0, 1, False),
        (3, 2, 1, 1, False),
        (2, 2, 0, 1, True),
        (3, 1, 1, 2, False),
        (2, 3, 1, 1, False),
        ((3, 2), (3, 2), (1, 0), 1, True),
    ],
)
def test_backward_with_any_indices(dtype, layout, args):
    """The backward adds each gradient at its index whatever the indices are (not only the
    forward's): the fast paths (gather, row bands) must notice foreign ones and fall back."""
    kernel, stride, padding, dilation, ceil_mode = args
    for batch in (1, 3):  # batch 1 splits channels_last images into row bands
        x = with_layout(torch.randn(batch, 4, 13, 37, dtype=dtype), layout)
        _, indices = F.max_pool2d(
            x, kernel, stride, padding, dilation, ceil_mode, return_indices=True
        )
        grad_output = torch.randn(indices.shape, dtype=dtype)
        plane = x.shape[-2] * x.shape[-1]
        for case in ("forward's", "one foreign", "random"):
            s = indices.clone()
            if case == "one foreign":
                s[0, 1, 2, 3] = plane - 1 - s[0, 1, 2, 3]  # far outside its window
            elif case == "random":
                s = (
                    torch.randint(-2, plane + 3, s.shape).contiguous(
                        memory_format=torch.channels_last
                    )
                    if layout == "channels_last"
                    else torch.randint(-2, plane + 3, s.shape)
                )
            actual = torch.ops.fastconv.max_pool2d_with_indices_backward(
                grad_output,
                x,
                *(list(_pair(a)) for a in (kernel, stride, padding, dilation)),
                ceil_mode,
                s,
            )
            expected, _ = reference_grad(x, s, grad_output.double())
            assert_close(actual, expected.to(dtype))
            assert is_channels_last(actual) == (layout == "channels_last")


@pytest.mark.parametrize("return_indices", [False, True])
def test_sliced_channels_last_input_gives_channels_last_outputs(return_indices):
    """torch's layout rule (suggest_memory_format): a channels_last input sliced along H is still
    channels_last to torch, and so are its values, indices and gradient."""
    x = torch.randn(2, 8, 8, 8, dtype=torch.float64).to(memory_format=torch.channels_last)
    x = x[:, :, ::2]
    _, (_, expected) = check_against_torch(
        fastconv.max_pool2d,
        F.max_pool2d,
        x,
        2,
        kwargs=dict(return_indices=return_indices),
    )
    assert all(t.is_contiguous(memory_format=torch.channels_last) for t in expected)
