"""Results independent of the thread count, bit for bit: every CPU conv2d path
(tests/conv_path_cases.py; float64 takes im2col_blas for every pass), float32 and float64, NCHW
and channels_last, forward, input gradient and weight gradient, at 1 and 2 threads; and
conv_transpose2d and the pools. Each sum is split and ordered by the shape alone, BLAS calls
included (im2col_blas calls its GEMMs on fixed blocks, each with BLAS's own threads off)."""

import pytest
import torch
import torch.nn.functional as F

import fastconv
from conv_path_cases import PATH_CASES, conv2d_paths, expected_paths
from helpers import results_per_thread_count, with_layout


def _run(fn, tensors, grad_output_seed=1):
    """fn's output and the gradients of `tensors`, for a seeded grad_output."""
    leaves = [t.detach().requires_grad_() for t in tensors]
    out = fn(*leaves)
    generator = torch.Generator().manual_seed(grad_output_seed)
    grad_output = torch.randn(out.shape, generator=generator, dtype=out.dtype)
    return (out.detach(), *torch.autograd.grad(out, leaves, grad_output))


def _assert_thread_invariant(fn, tensors, what):
    one, two = results_per_thread_count(lambda: _run(fn, tensors), (1, 2))
    for name, a, b in zip(("output", "grad_input", "grad_weight"), one, two):
        assert torch.equal(a, b), f"{what}: {name} differs at 2 threads by {(a - b).abs().max()}"


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", PATH_CASES)
def test_conv2d_bitwise_equal_at_1_and_2_threads(case, dtype, layout):
    x_shape, w_shape, kwargs, _ = PATH_CASES[case]
    torch.manual_seed(0)
    x = with_layout(torch.randn(x_shape, dtype=dtype), layout)
    w = torch.randn(w_shape, dtype=dtype)
    paths = conv2d_paths(x, w, kwargs)
    assert paths == expected_paths(case, dtype, layout)
    fn = lambda x, w: fastconv.conv2d(x, w, **kwargs)  # noqa: E731
    _assert_thread_invariant(fn, (x, w), f"{case} {paths}")


# im2col_blas GEMMs that BLAS's own threads split differently at 2 threads (MKL: the sums of a
# 1x1 layer's forward and input gradient, float64 weight gradients); each pass named is one that
# differed: (dtype, x shape, w shape, keywords).
BLAS_CASES = {
    "pointwise_batched_forward": (torch.float32, (9, 6, 8, 5), (9, 6, 1, 1), {}),
    "pointwise_input_backward": (torch.float32, (1, 7, 3, 15), (66, 7, 1, 1), {}),
    "pointwise_float64_forward": (torch.float64, (5, 56, 11, 3), (46, 56, 1, 1), {}),
    "pointwise_float64_weight_backward": (torch.float64, (10, 28, 3, 12), (55, 28, 1, 1), {}),
    "float64_3x3_weight_backward": (torch.float64, (5, 2, 6, 16), (29, 2, 3, 3), dict(padding=1)),
    "pointwise_strided_float64": (torch.float64, (7, 26, 6, 6), (41, 26, 1, 1), dict(stride=2)),
}


@pytest.mark.parametrize("case", BLAS_CASES)
def test_blas_paths_bitwise_equal_at_1_and_2_threads(case):
    dtype, x_shape, w_shape, kwargs = BLAS_CASES[case]
    torch.manual_seed(0)
    x, w = torch.randn(x_shape, dtype=dtype), torch.randn(w_shape, dtype=dtype)
    fn = lambda x, w: fastconv.conv2d(x, w, **kwargs)  # noqa: E731
    _assert_thread_invariant(fn, (x, w), f"{case} {conv2d_paths(x, w, kwargs)}")


TRANSPOSED_CASES = {
    "stride_1": ((2, 12, 9, 8), (12, 5, 3, 3), dict(padding=1)),
    "strided": ((3, 16, 9, 10), (16, 24, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    "strided_deep": ((2, 128, 7, 7), (128, 64, 4, 4), dict(stride=2, padding=1)),
    "depthwise_strided": ((2, 6, 7, 7), (6, 1, 3, 3), dict(stride=2, groups=6)),
    # a pointwise one (on conv2d's 1x1 input gradient), strided or not
    "pointwise": ((8, 74, 12, 4), (74, 11, 1, 1), {}),
    "pointwise_strided": ((10, 11, 12, 14), (11, 20, 1, 1), dict(stride=2)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", TRANSPOSED_CASES)
def test_conv_transpose2d_bitwise_equal_at_1_and_2_threads(case, dtype):
    x_shape, w_shape, kwargs = TRANSPOSED_CASES[case]
    torch.manual_seed(0)
    x, w = torch.randn(x_shape, dtype=dtype), torch.randn(w_shape, dtype=dtype)
    fn = lambda x, w: fastconv.conv_transpose2d(x, w, **kwargs)  # noqa: E731
    _assert_thread_invariant(fn, (x, w), case)


POOLS = {
    "max_pool2d": lambda x: fastconv.max_pool2d(x, 3, 2, 1),
    "max_pool2d_overlapping": lambda x: fastconv.max_pool2d(x, 3, 1, 1),
    "avg_pool2d": lambda x: fastconv.avg_pool2d(x, 3, 2, 1),
    "avg_pool2d_overlapping": lambda x: fastconv.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
    "max_unpool2d": lambda x: fastconv.max_unpool2d(
        *F.max_pool2d(x, 2, return_indices=True), 2, output_size=x.shape[-2:]
    ),
}


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("pool", POOLS)
def test_pools_bitwise_equal_at_1_and_2_threads(pool, dtype, layout):
    torch.manual_seed(0)
    x = with_layout(torch.randn(3, 5, 12, 13, dtype=dtype), layout)
    _assert_thread_invariant(POOLS[pool], (x,), pool)
