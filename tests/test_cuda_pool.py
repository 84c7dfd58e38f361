"""fastconv's max_pool2d and max_unpool2d on CUDA against torch and against fastconv's CPU kernels
(cuda_helpers.py: skipped without a GPU)."""

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import fastconv
from cuda_helpers import CUDA, CUDA_TESTS, FLOAT_DTYPES, assert_close_scaled, leaf, pool_input
from helpers import LAYOUTS, with_layout

pytestmark = CUDA_TESTS

# ------------------------------------------------------------------------------------- max_pool2d

# (shape, kernel_size, stride, padding, dilation, ceil_mode)
POOL_CASES = [
    ((2, 3, 9, 11), 2, None, 0, 1, False),
    ((2, 3, 9, 11), 3, 2, 1, 1, False),
    ((2, 3, 9, 11), 3, 2, 1, 1, True),
    ((1, 4, 12, 10), (3, 2), (2, 1), (1, 0), (2, 3), False),
    ((1, 4, 12, 10), (3, 2), (2, 1), (1, 1), (2, 1), True),
    ((2, 5, 8, 8), 1, 1, 0, 1, False),
    ((2, 16, 15, 15), 3, 1, 1, 1, False),  # heavily overlapping windows
    ((0, 3, 6, 6), 2, 2, 0, 1, False),  # empty batch
    ((3, 7, 9), 2, 2, 1, 1, True),  # unbatched
]


def pool_case_id(case):
    shape, k, s, p, d, ceil = case
    return f"{'x'.join(map(str, shape))}-k{k}s{s}p{p}d{d}{'-ceil' if ceil else ''}".replace(" ", "")


def pool_args(case):
    _, kernel_size, stride, padding, dilation, ceil_mode = case
    return dict(
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
    )


@pytest.mark.parametrize("case", POOL_CASES, ids=pool_case_id)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_max_pool2d_matches_torch_and_cpu(case, dtype, layout):
    x = with_layout(pool_input(case[0], dtype), layout)
    args = pool_args(case)
    ours_x, torch_x = leaf(x), leaf(x)
    ours, ours_idx = fastconv.max_pool2d(ours_x, return_indices=True, **args)
    expected, expected_idx = F.max_pool2d(torch_x, return_indices=True, **args)
    assert torch.equal(ours, expected)
    assert torch.equal(ours_idx, expected_idx)
    if layout == "channels_last" and x.dim() == 4 and x.numel() > 0:
        assert ours.is_contiguous(memory_format=torch.channels_last)
        assert ours_idx.is_contiguous(memory_format=torch.channels_last)

    cpu, cpu_idx = fastconv.max_pool2d(x.cpu(), return_indices=True, **args)
    assert torch.equal(ours.cpu(), cpu)
    assert torch.equal(ours_idx.cpu(), cpu_idx)

    grad = torch.randn_like(expected)
    ours.backward(grad)
    expected.backward(grad)
    assert_close_scaled(ours_x.grad, torch_x.grad)
    if x.dim() == 4 and x.numel() > 0:
        assert ours_x.grad.is_contiguous(memory_format=torch.channels_last) == (
            layout == "channels_last"
        )


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64])
def test_max_pool2d_integer_types(dtype):
    x = pool_input((2, 3, 9, 8), dtype)
    ours, ours_idx = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True)
    cpu, cpu_idx = fastconv.max_pool2d(x.cpu(), 3, 2, 1, return_indices=True)
    assert torch.equal(ours.cpu(), cpu)
    assert torch.equal(ours_idx.cpu(), cpu_idx)
    try:
        expected, expected_idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    except (RuntimeError, NotImplementedError):
        return  # this torch has no integer max-pool on CUDA
    assert torch.equal(ours, expected)
    assert torch.equal(ours_idx, expected_idx)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_max_pool2d_nan_and_ties_follow_torch(dtype, layout):
    x = torch.zeros(2, 3, 8, 8, dtype=dtype, device=CUDA)  # all ties: the first tap wins
    x[0, 0, 2, 3] = float("nan")
    x[1, 2, 5:7, 5:7] = float("nan")
    x[0, 1] = -float("inf")  # no tap beats the initial -inf: the index stays the first tap
    x = with_layout(x, layout)
    ours, ours_idx = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True)
    expected, expected_idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    torch.testing.assert_close(ours, expected, equal_nan=True, atol=0, rtol=0)
    if layout == "channels_last":
        # torch's CUDA channels_last kernel starts every index at 0 rather than at the window's
        # first tap (its NCHW and CPU kernels use the first tap), which shows only where nothing
        # beats -inf: compare those windows with torch's CPU kernel, the rest with CUDA.
        cpu_idx = F.max_pool2d(x.cpu(), 3, 2, 1, return_indices=True)[1]
        assert torch.equal(ours_idx.cpu(), cpu_idx)
        beaten = ours > -float("inf")
        assert torch.equal(ours_idx[beaten], expected_idx[beaten])
    else:
        assert torch.equal(ours_idx, expected_idx)


def test_max_pool2d_gradcheck_and_double_backward():
    gen = torch.Generator().manual_seed(0)
    # distinct values far apart: finite differences never flip a maximum
    x = (torch.randperm(2 * 3 * 7 * 8, generator=gen).double().view(2, 3, 7, 8) / 10).to(CUDA)
    x = leaf(x)
    fn = lambda x: fastconv.max_pool2d(x, 3, 2, 1, ceil_mode=True)  # noqa: E731
    assert gradcheck(fn, (x,), eps=1e-3)
    assert gradgradcheck(fn, (x,), eps=1e-3)


def test_max_pool2d_backward_is_deterministic():
    x = torch.randn(8, 32, 56, 56, device=CUDA).round()  # many ties, overlapping windows
    grads = []
    for _ in range(2):
        xs = leaf(x)
        y = fastconv.max_pool2d(xs, 3, 1, 1)
        y.backward(torch.ones_like(y))
        grads.append(xs.grad)
    assert torch.equal(grads[0], grads[1])


# ------------------------------------------------------------------------------------ max_unpool2d


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("pool", [(2, 2, 0, None), (3, 3, 1, (10, 12)), (2, 2, 0, (11, 13))])
def test_max_unpool2d_matches_torch_and_cpu(dtype, layout, pool):
    kernel_size, stride, padding, output_size = pool
    x = pool_input((2, 3, 10, 12), dtype)
    pooled, indices = F.max_pool2d(x, kernel_size, stride, padding, return_indices=True)
    pooled = with_layout(pooled, layout)
    ours_p, torch_p = leaf(pooled), leaf(pooled)
    ours = fastconv.max_unpool2d(ours_p, indices, kernel_size, stride, padding, output_size)
    expected = F.max_unpool2d(torch_p, indices, kernel_size, stride, padding, output_size)
    assert torch.equal(ours, expected)
    cpu = fastconv.max_unpool2d(
        pooled.cpu(), indices.cpu(), kernel_size, stride, padding, output_size
    )
    assert torch.equal(ours.cpu(), cpu)
    grad = torch.randn_like(expected)
    ours.backward(grad)
    expected.backward(grad)
    assert torch.equal(ours_p.grad, torch_p.grad)


def test_max_unpool2d_unbatched_and_empty_batch():
    x = pool_input((3, 8, 8), torch.float32)
    pooled, indices = F.max_pool2d(x, 2, return_indices=True)
    assert torch.equal(
        fastconv.max_unpool2d(pooled, indices, 2), F.max_unpool2d(pooled, indices, 2)
    )
    empty = torch.empty(0, 3, 4, 4, device=CUDA)
    empty_idx = torch.empty(0, 3, 4, 4, dtype=torch.long, device=CUDA)
    assert fastconv.max_unpool2d(empty, empty_idx, 2).shape == (0, 3, 8, 8)


def test_max_unpool2d_gradcheck():
    x = pool_input((2, 3, 6, 6), torch.float64)
    pooled, indices = F.max_pool2d(x, 2, return_indices=True)
    assert gradcheck(lambda p: fastconv.max_unpool2d(p, indices, 2), (leaf(pooled),))


def test_max_unpool2d_invalid_index_raises_torch_cpu_error():
    # torch's CUDA kernel stops at a device-side assert here; fastconv raises torch's CPU error.
    x = torch.randn(1, 1, 2, 2)
    indices = torch.tensor([[[[0, 1], [2, 100]]]])
    with pytest.raises(RuntimeError) as theirs:
        F.max_unpool2d(x, indices, 2)
    with pytest.raises(RuntimeError) as ours:
        fastconv.max_unpool2d(x.to(CUDA), indices.to(CUDA), 2)
    assert str(ours.value) == str(theirs.value)
    # The gather (unpool backward, max-pool double backward) reports invalid indices the same way.
    with pytest.raises(RuntimeError, match="Found an invalid max index: 100"):
        torch.ops.fastconv.max_unpool2d_backward(
            torch.randn(1, 1, 4, 4, device=CUDA), indices.to(CUDA)
        )
    torch.cuda.synchronize()  # the context is still usable
