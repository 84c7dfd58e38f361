"""fastconv.avg_pool2d against torch.nn.functional.avg_pool2d: values, layouts, gradients of first
and second order, errors; the float32 vector paths and their portable twins; determinism."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import fastconv
from cuda_helpers import needs_cuda
from helpers import (
    LAYOUTS,
    assert_close,
    assert_raises_like_torch,
    check_against_torch,
    is_channels_last,
    results_per_thread_count,
    run_with_cpu_capability,
    with_layout,
)

# (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
GRID = [
    (2, None, 0, False, True, None),  # VGG-like, disjoint windows
    (3, 2, 1, False, True, None),  # padded, overlapping
    (3, 2, 1, False, False, None),  # the padding not counted
    (3, 2, 1, True, False, None),  # ceil mode: a window past the right edge
    (3, 2, 1, True, True, None),  # ... counted up to the padded input's edge
    ((3, 2), (2, 1), (1, 0), True, True, 5),  # divisor_override
    ((2, 4), (3, 2), (1, 2), True, False, -3),  # a negative divisor, stride > kernel
    (1, 1, 0, False, True, None),
    (5, 3, 2, True, False, None),
]


def pool(fn, x, args):
    """fn (fastconv.avg_pool2d or F.avg_pool2d) with the arguments of a GRID row."""
    kernel, stride, padding, ceil_mode, count_include_pad, divisor = args
    return fn(
        x,
        kernel,
        stride=stride,
        padding=padding,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        divisor_override=divisor,
    )


def check_avg_pool2d(x, args, exact=False, errors=False):
    """Values, output layout and gradients equal torch's (exact: the values bit for bit; errors: or
    torch's error)."""
    check_against_torch(
        lambda t: pool(fastconv.avg_pool2d, t, args),
        lambda t: pool(F.avg_pool2d, t, args),
        x,
        exact=exact,
        errors=errors,
    )


@pytest.mark.parametrize("args", GRID)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_matches_torch_on_grid(args, layout):
    check_avg_pool2d(with_layout(torch.randn(2, 3, 11, 10, dtype=torch.float64), layout), args)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int64])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_dtypes(dtype, layout):
    x = (torch.randn(2, 5, 9, 9) * 50).to(dtype)  # int64: torch's integer division, exactly
    for args in (GRID[1], GRID[3], GRID[6]):
        check_avg_pool2d(with_layout(x, layout), args)


@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8, torch.bool, torch.complex64])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("batch", [2, 0])
def test_unsupported_dtypes_raise_like_torch(dtype, layout, batch):
    x = with_layout(torch.ones(batch, 3, 6, 6).to(dtype), layout)
    assert_raises_like_torch(lambda: fastconv.avg_pool2d(x, 2), lambda: F.avg_pool2d(x, 2))


def test_unbatched_and_empty_batch():
    check_avg_pool2d(torch.randn(3, 9, 9, dtype=torch.float64), GRID[3])
    for layout in ("contiguous", "channels_last"):
        x = with_layout(torch.randn(0, 3, 9, 9, dtype=torch.float64), layout)
        check_avg_pool2d(x, GRID[3])
        grad = torch.autograd.grad(fastconv.avg_pool2d(x.requires_grad_(), 3).sum(), x)[0]
        assert grad.shape == x.shape


@pytest.mark.parametrize("args", [GRID[1], GRID[3], GRID[5], GRID[6]])
def test_gradcheck_and_gradgradcheck(args):
    x = torch.randn(2, 2, 7, 6, dtype=torch.float64, requires_grad=True)
    fn = lambda x: pool(fastconv.avg_pool2d, x, args)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
    cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    assert torch.autograd.gradgradcheck(fn, (cl,))


def test_double_backward_runs_on_fastconv_ops():
    """The backward's own gradient is avg_pool2d: the graph of a second derivative holds only
    fastconv's ops."""
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    y = fastconv.avg_pool2d(x, 3, 2, 1, ceil_mode=True)
    grad_output = torch.randn_like(y, requires_grad=True)
    (grad_x,) = torch.autograd.grad(y, x, grad_output, create_graph=True)
    assert "AvgPool2dBackwardFunction" in grad_x.grad_fn.name()
    v = torch.randn_like(grad_x)
    (second,) = torch.autograd.grad(grad_x, grad_output, v)
    torch.testing.assert_close(second, F.avg_pool2d(v, 3, 2, 1, ceil_mode=True))


def test_backward_sums_overlapping_windows():
    x = torch.ones(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    fastconv.avg_pool2d(x, 2, 1).sum().backward()
    # the centre lies in all 4 windows, an edge's middle in 2, a corner in 1; each gives 1/4
    assert x.grad[0, 0].tolist() == [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]]


def test_backward_op_matches_torch_for_any_gradient_layout():
    x = torch.randn(2, 16, 12, 13).contiguous(memory_format=torch.channels_last)
    args = ([3, 3], [2, 2], [1, 1], True, False, None)
    grad_output = torch.randn(2, 16, 7, 7)  # NCHW gradient of a channels_last output
    actual = torch.ops.fastconv.avg_pool2d_backward(grad_output, x, *args)
    expected = torch.ops.aten.avg_pool2d_backward(grad_output, x, *args)
    assert is_channels_last(actual) and is_channels_last(expected)
    assert_close(actual, expected)


# ------------------------------------------------------------------------------------------------
# The float32 CPU kernels: NCHW does interior output columns 8 at a time (column stride 1 or 2, a
# last block overlapping the previous one) and the rest one by one; channels_last does 8 channels at
# a time, the last group masked. Each sums its window in torch's order and divides once, so the
# results are torch's bit for bit. The same cases run on the portable builds in a subprocess.

# (shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
VECTOR_CASES = [
    ((2, 3, 9, 30), 3, 2, 1, False, True, None),  # ResNet-like: borders, overlapping last block
    ((1, 2, 9, 17), 2, 2, 0, False, True, None),  # odd width: last column unused
    ((1, 2, 8, 16), 2, 2, 0, True, False, None),  # interior exactly 8 columns
    ((1, 2, 13, 13), 3, 2, 0, False, True, None),  # 6 interior columns: the generic loop
    ((1, 3, 11, 41), 3, 1, 1, True, False, None),  # stride 1, padding not counted
    ((1, 2, 12, 40), (2, 4), (1, 2), (1, 2), True, True, None),
    ((1, 2, 10, 33), (3, 1), (2, 1), (1, 0), False, False, 7),
    ((1, 2, 10, 33), (1, 3), (1, 3), (0, 1), True, True, None),  # stride 3: the generic loop
    ((2, 2, 7, 27), 5, 2, 2, True, False, None),  # windows mostly in the padding
    ((1, 3, 1, 25), (1, 3), (1, 1), 0, False, True, None),
]
CHANNELS = [1, 3, 8, 9, 17, 33]


@pytest.mark.parametrize("case", VECTOR_CASES)
def test_float32_nchw_equals_torch_bitwise(case):
    shape, *args = case
    check_avg_pool2d(torch.randn(shape), args, exact=True)


@pytest.mark.parametrize("channels", CHANNELS)
def test_float32_channels_last_equals_torch_bitwise(channels):
    for shape, *args in VECTOR_CASES[::2]:
        x = torch.randn(shape[0], channels, *shape[2:]).contiguous(
            memory_format=torch.channels_last
        )
        check_avg_pool2d(x, args, exact=True)


def test_float32_special_values():
    x = torch.randn(1, 9, 12, 20)
    x[0, :, 5, 7] = float("nan")
    x[0, :, 2, 2] = float("inf")
    x[0, :, 9, 11] = -float("inf")
    for layout in ("contiguous", "channels_last"):
        for args in [(3, 2, 1, False, True, None), (2, 1, 0, True, False, None)]:
            check_avg_pool2d(with_layout(x, layout), args, exact=True)


PORTABLE_SCRIPT = r"""
import sys
import torch
assert torch.backends.cpu.get_cpu_capability() == "DEFAULT", torch.backends.cpu.get_cpu_capability()
sys.path[:0] = sys.argv[1:]
import test_avg_pool2d as t
torch.manual_seed(0)
for shape, *args in t.VECTOR_CASES:
    t.check_avg_pool2d(torch.randn(shape), args, exact=True)
    x = torch.randn(shape[0], 11, *shape[2:]).contiguous(memory_format=torch.channels_last)
    t.check_avg_pool2d(x, args, exact=True)
print("ok")
"""


def test_portable_path_without_avx2():
    """ATEN_CPU_CAPABILITY=default: fastconv's float32 kernels take their portable builds (as on a
    CPU without AVX2); they must still give torch's results bit for bit."""
    tests = Path(__file__).resolve().parent
    result = run_with_cpu_capability("default", PORTABLE_SCRIPT, tests, tests.parent, timeout=600)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), (
        result.stdout + result.stderr
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_thread_counts_give_identical_results(dtype, layout):
    x = with_layout(torch.randn(3, 24, 37, 35).to(dtype), layout).requires_grad_()

    def run():
        y = fastconv.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
        return y, torch.autograd.grad(y, x, torch.ones_like(y) / 3)[0]

    results = results_per_thread_count(run, (1, 2))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


# ------------------------------------------------------------------------------------------ errors

BAD_CALLS = [
    ((2, 3, 8, 8), (2**40,), {}),
    ((2, 3, 8, 8), (2, 2**31), {}),
    ((2, 3, 8, 8), (2, 2, 2**40), {}),
    ((2, 3, 8, 8), (0,), {}),
    ((2, 3, 8, 8), (-2,), {}),
    ((2, 3, 8, 8), (2, 0), {}),
    ((2, 3, 8, 8), (2, -1), {}),
    ((2, 3, 8, 8), (2,), dict(padding=2)),
    ((2, 3, 8, 8), (2,), dict(padding=-1)),
    ((2, 3, 8, 8), (3,), dict(padding=(1, 2))),
    ((2, 3, 8, 8), (2,), dict(divisor_override=0)),
    ((8, 8), (2,), dict(divisor_override=0)),
    ((2, 3, 8, 8), ((1, 2, 3),), {}),
    ((2, 3, 8, 8), ([],), {}),
    ((2, 3, 8, 8), (2, (1, 2, 3)), {}),
    ((2, 3, 8, 8), (2, 1, (1, 2, 3)), {}),
    ((8, 8), (2,), {}),
    ((8,), (2,), {}),
    ((), (2,), {}),
    ((1, 2, 3, 8, 8), (2,), {}),
    ((2, 0, 8, 8), (2,), {}),
    ((0, 8, 8), (2,), {}),
    ((2, 3, 1, 1), (2,), {}),
    ((2, 3, 8, 8), (9,), {}),
    ((2, 3, 8, 8), (2.0,), {}),
    ((2, 3, 8, 8), (2,), dict(divisor_override=2.5)),
    ((2, 3, 8, 8), (2,), dict(divisor_override=True)),
    ((2, 3, 8, 8), (2,), dict(ceil_mode=1)),
    ((2, 3, 8, 8), (2,), dict(stride="a")),
    ((2, 3, 8, 8), (2,), dict(bogus=1)),
]


@pytest.mark.parametrize("shape, args, kwargs", BAD_CALLS)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_errors_match_torch(shape, args, kwargs, layout):
    x = with_layout(torch.randn(shape), layout)
    assert_raises_like_torch(
        lambda: fastconv.avg_pool2d(x, *args, **kwargs), lambda: F.avg_pool2d(x, *args, **kwargs)
    )


def test_backward_op_errors_match_torch():
    x = torch.randn(2, 3, 8, 8)
    args = ([2, 2], [2, 2], [0, 0], False, True, None)
    for grad_output in (
        torch.randn(2, 3, 4, 5),
        torch.randn(2, 4, 4, 4),
        torch.randn(3, 4, 4),
        torch.randn(2, 3, 4, 4, dtype=torch.float64),
    ):
        assert_raises_like_torch(
            lambda: torch.ops.fastconv.avg_pool2d_backward(grad_output, x, *args),
            lambda: torch.ops.aten.avg_pool2d_backward(grad_output, x, *args),
        )
    for dtype in (torch.bool, torch.int32):  # torch's backward kernel's words, in either layout
        for layout in ("contiguous", "channels_last"):
            x, grad_output = (
                with_layout(torch.ones(2, 3, 8, 8).to(dtype), layout),
                torch.ones(2, 3, 4, 4).to(dtype),
            )
            assert_raises_like_torch(
                lambda: torch.ops.fastconv.avg_pool2d_backward(grad_output, x, *args),
                lambda: torch.ops.aten.avg_pool2d_backward(grad_output, x, *args),
            )


@st.composite
def pool_configs(draw):
    kernel = draw(st.one_of(st.integers(1, 5), st.tuples(st.integers(1, 5), st.integers(1, 4))))
    return dict(
        shape=(
            draw(st.integers(0, 2)),
            draw(st.integers(1, 4)),
            draw(st.integers(1, 12)),
            draw(st.integers(1, 12)),
        ),
        args=(
            kernel,
            draw(
                st.one_of(
                    st.none(), st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 3))
                )
            ),
            draw(st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 1)))),
            draw(st.booleans()),
            draw(st.booleans()),
            draw(st.one_of(st.none(), st.integers(-3, 10))),
        ),
        dtype=draw(st.sampled_from([torch.float64, torch.float32])),
        layout=draw(st.sampled_from(LAYOUTS)),
        unbatched=draw(st.booleans()),
    )


@settings(max_examples=300, deadline=None)
@given(pool_configs())
def test_random_configurations(cfg):
    """Any configuration: torch's values and gradients, or torch's error."""
    x = with_layout(torch.randn(cfg["shape"], dtype=cfg["dtype"]), cfg["layout"])
    if cfg["unbatched"] and x.shape[0] == 1:
        x = x[0]
    check_avg_pool2d(x, cfg["args"], exact=cfg["dtype"] == torch.float32, errors=True)


# -------------------------------------------------------------------------------------------- CUDA


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_cuda_matches_torch_and_the_cpu_kernel(dtype, layout):
    x = with_layout(torch.randn(2, 5, 11, 10, dtype=dtype), layout)
    for args in GRID:
        on_gpu = x.cuda().requires_grad_()
        out = pool(fastconv.avg_pool2d, on_gpu, args)
        assert is_channels_last(out) == is_channels_last(pool(F.avg_pool2d, x.cuda(), args))
        assert_close(out.cpu(), pool(fastconv.avg_pool2d, x, args))
        grad_output = torch.randn(out.shape, dtype=dtype)
        (grad,) = torch.autograd.grad(out, on_gpu, grad_output.cuda())
        (first,) = torch.autograd.grad(
            pool(fastconv.avg_pool2d, on_gpu, args), on_gpu, grad_output.cuda()
        )
        assert torch.equal(grad, first)  # a gather: deterministic
        cpu_x = x.detach().requires_grad_()
        (expected,) = torch.autograd.grad(
            pool(fastconv.avg_pool2d, cpu_x, args), cpu_x, grad_output
        )
        assert_close(grad.cpu(), expected)


@needs_cuda
@pytest.mark.cuda
def test_cuda_errors_and_double_backward():
    x = torch.ones(2, 3, 8, 8, dtype=torch.int64, device="cuda")
    assert_raises_like_torch(lambda: fastconv.avg_pool2d(x, 2), lambda: F.avg_pool2d(x, 2))
    x = torch.randn(1, 2, 7, 6, dtype=torch.float64, device="cuda", requires_grad=True)
    assert torch.autograd.gradgradcheck(
        lambda t: fastconv.avg_pool2d(t, 3, 2, 1, True, False), (x,)
    )


def test_sliced_channels_last_input_gives_channels_last_output():
    """torch's layout rule (suggest_memory_format): a channels_last input sliced along H is still
    channels_last to torch, and so is its average pooling."""
    x = torch.randn(2, 8, 8, 8, dtype=torch.float64).to(memory_format=torch.channels_last)
    x = x[:, :, ::2]
    _, (_, (expected,)) = check_against_torch(fastconv.avg_pool2d, F.avg_pool2d, x, 2)
    assert expected.is_contiguous(memory_format=torch.channels_last)
