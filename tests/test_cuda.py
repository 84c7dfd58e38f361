"""fastconv's CUDA kernels against torch on the same GPU (cuDNN for conv2d) and against fastconv's
own CPU kernels, computed side by side in this process.

Skips where no GPU is visible or fastconv was built without CUDA.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import fastconv
from conftest import LAYOUTS, with_layout

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available() or not fastconv.build_info()["cuda"],
        reason="needs a CUDA device and fastconv built with CUDA",
    ),
]

CUDA = "cuda"
FLOAT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# Tolerances relative to the largest magnitude of the expected tensor (see assert_close_scaled).
TOLERANCE = {
    torch.float64: 1e-10,
    torch.float32: 2e-5,
    torch.float16: 4e-3,
    torch.bfloat16: 3e-2,
}


@pytest.fixture(autouse=True)
def exact_fp32_references():
    """cuDNN would use TF32 for fp32 convolutions on Ampere+ by default: compare with full fp32."""
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = cudnn_tf32
    torch.backends.cuda.matmul.allow_tf32 = matmul_tf32


def assert_close_scaled(actual, expected, dtype=None):
    dtype = dtype or expected.dtype
    expected = expected.to(actual.device)
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    scale = max(1.0, expected.detach().abs().max().item()) if expected.numel() else 1.0
    tol = TOLERANCE[dtype] * scale
    torch.testing.assert_close(actual, expected, atol=tol, rtol=TOLERANCE[dtype], equal_nan=True)


def leaf(t):
    return t.detach().requires_grad_(True)


# ----------------------------------------------------------------------------------------- conv2d

# (N, C, H, W, K, kernel, stride, padding, dilation, groups)
CONV_CASES = [
    (2, 3, 9, 11, 4, (3, 3), 1, 1, 1, 1),
    (2, 4, 10, 7, 6, (3, 2), (2, 1), (1, 0), 1, 1),
    (1, 6, 12, 12, 6, (3, 3), 1, 2, 2, 1),  # dilated
    (2, 4, 13, 9, 5, (3, 3), (2, 3), (0, 2), (2, 1), 1),
    (2, 6, 8, 9, 4, (3, 3), 2, 1, 1, 2),  # grouped
    (2, 8, 7, 7, 8, (3, 3), 1, 1, 1, 8),  # depthwise
    (2, 4, 7, 7, 8, (5, 5), 1, 2, 1, 4),  # depthwise with multiplier 2
    (3, 5, 6, 6, 7, (1, 1), 1, 0, 1, 1),  # pointwise: no im2col
    (2, 8, 9, 9, 4, (1, 1), 2, 0, 1, 2),  # 1x1 stride 2, grouped
    (2, 3, 6, 5, 2, (1, 1), 1, 1, 1, 1),  # 1x1 with padding
    (1, 2, 9, 9, 3, (3, 3), 4, 0, 1, 1),  # stride > kernel: rows no window reads
    (0, 3, 5, 5, 4, (3, 3), 1, 1, 1, 1),  # empty batch
]


def conv_case_id(case):
    n, c, h, w, k, ks, s, p, d, g = case
    return f"n{n}c{c}h{h}w{w}k{k}ks{ks[0]}x{ks[1]}s{s}p{p}d{d}g{g}".replace(" ", "")


def conv_tensors(case, dtype, bias=True, device=CUDA, seed=0):
    n, c, h, w, k, (kh, kw), stride, padding, dilation, groups = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    fan_in = (c // groups) * kh * kw
    weight = torch.randn(k, c // groups, kh, kw, generator=gen, dtype=torch.float64) / math.sqrt(fan_in)
    b = torch.randn(k, generator=gen, dtype=torch.float64) if bias else None
    cast = lambda t: None if t is None else t.to(device=device, dtype=dtype)  # noqa: E731
    return cast(x), cast(weight), cast(b), dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("case", CONV_CASES, ids=conv_case_id)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_conv2d_forward_backward_matches_torch_and_cpu(case, dtype, layout):
    x, weight, bias, args = conv_tensors(case, dtype)
    x = with_layout(x, layout)
    ours_x, ours_w, ours_b = leaf(x), leaf(weight), leaf(bias)
    torch_x, torch_w, torch_b = leaf(x), leaf(weight), leaf(bias)

    ours = fastconv.conv2d(ours_x, ours_w, ours_b, **args)
    expected = F.conv2d(torch_x, torch_w, torch_b, **args)
    assert_close_scaled(ours, expected)
    if layout == "channels_last" and ours.numel() > 0:  # the input's layout, as cuDNN's
        assert ours.is_contiguous(memory_format=torch.channels_last)
    else:
        assert ours.is_contiguous()

    cpu = fastconv.conv2d(x.cpu(), weight.cpu(), bias.cpu(), **args)
    assert_close_scaled(ours, cpu)

    grad = torch.randn_like(expected)
    ours.backward(grad)
    expected.backward(grad)
    for mine, theirs in [(ours_x, torch_x), (ours_w, torch_w), (ours_b, torch_b)]:
        assert_close_scaled(mine.grad, theirs.grad)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_conv2d_channels_last_weight_gives_channels_last_output(dtype):
    x, weight, bias, args = conv_tensors(CONV_CASES[0], dtype)
    weight = weight.contiguous(memory_format=torch.channels_last)
    ours = fastconv.conv2d(x, weight, bias, **args)
    expected = F.conv2d(x, weight, bias, **args)
    assert ours.is_contiguous(memory_format=torch.channels_last)
    assert_close_scaled(ours, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_conv2d_unbatched_and_padding_strings(dtype):
    x, weight, bias, _ = conv_tensors((1, 4, 9, 8, 6, (3, 2), 1, 0, 1, 1), dtype)
    for padding in ["same", "valid", 1]:
        for dilation in [1, 2]:
            ours = fastconv.conv2d(x[0], weight, bias, padding=padding, dilation=dilation)
            expected = F.conv2d(x[0], weight, bias, padding=padding, dilation=dilation)
            assert_close_scaled(ours, expected)


def test_conv2d_without_input_channels_matches_cpu_kernel():
    # fastconv's CPU kernel (and fake) return the bias broadcast to (N, K, H', W') here, while
    # torch returns an empty (N, 0, H', W') tensor; the CUDA kernel follows fastconv's CPU kernel.
    x = torch.randn(2, 0, 5, 5)
    weight = torch.randn(3, 0, 3, 3)
    bias = torch.randn(3)
    expected = fastconv.conv2d(x, weight, bias)
    torch.testing.assert_close(fastconv.conv2d(x.to(CUDA), weight.to(CUDA), bias.to(CUDA)).cpu(), expected)


@pytest.mark.parametrize(
    "shape",
    [
        # columns of one image exceed the 128 MiB workspace: bands of output rows
        (1, 64, 260, 520, 8, 3),
        # many images per chunk, several chunks
        (40, 32, 66, 66, 16, 3),
    ],
    ids=["bands", "image-chunks"],
)
def test_conv2d_workspace_chunking(shape):
    n, c, h, w, k, ks = shape
    case = (n, c, h, w, k, (ks, ks), 1, 1, 1, 1)
    x, weight, bias, args = conv_tensors(case, torch.float32)
    ours_x, ours_w = leaf(x), leaf(weight)
    torch_x, torch_w = leaf(x), leaf(weight)
    ours = fastconv.conv2d(ours_x, ours_w, bias, **args)
    expected = F.conv2d(torch_x, torch_w, bias, **args)
    assert_close_scaled(ours, expected)
    grad = torch.randn_like(expected)
    ours.backward(grad)
    expected.backward(grad)
    assert_close_scaled(ours_x.grad, torch_x.grad)
    torch.testing.assert_close(ours_w.grad, torch_w.grad, atol=1e-4 * torch_w.grad.abs().max().item(), rtol=1e-4)


def test_conv2d_gradcheck_and_gradgradcheck():
    for case in [
        (2, 4, 6, 5, 4, (3, 2), (2, 1), 1, (1, 2), 2),
        (1, 3, 5, 5, 2, (1, 1), 1, 0, 1, 1),
        (2, 2, 5, 6, 2, (3, 3), 1, 1, 1, 2),
    ]:
        x, weight, bias, args = conv_tensors(case, torch.float64)
        x, weight, bias = leaf(x), leaf(weight), leaf(bias)

        def fn(x, weight, bias):
            return fastconv.conv2d(x, weight, bias, **args)

        assert gradcheck(fn, (x, weight, bias))
        assert gradgradcheck(fn, (x, weight, bias))


# (N, C_in, H, W, C_out, kernel, stride, padding, output_padding, dilation, groups)
CONV_TRANSPOSE_CASES = [
    (2, 4, 6, 5, 6, (3, 3), 2, 1, 1, 1, 2),
    (1, 3, 5, 5, 2, (3, 2), (2, 3), (1, 0), (1, 2), 1, 1),
    (2, 3, 5, 4, 4, (3, 3), 1, 1, 1, 2, 1),  # output_padding >= stride, < dilation
    (2, 6, 5, 5, 6, (3, 3), 1, 1, 0, 1, 6),  # depthwise
    (0, 3, 5, 5, 4, (3, 3), 2, 1, 1, 1, 1),  # empty batch
]


@pytest.mark.parametrize("case", CONV_TRANSPOSE_CASES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_conv_transpose2d_matches_torch_and_cpu(case, dtype):
    n, c, h, w, k, (kh, kw), stride, padding, output_padding, dilation, groups = case
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64).to(CUDA, dtype)
    weight = (torch.randn(c, k // groups, kh, kw, generator=gen, dtype=torch.float64) / 3).to(CUDA, dtype)
    bias = torch.randn(k, generator=gen, dtype=torch.float64).to(CUDA, dtype)
    args = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    ours_x, ours_w, ours_b = leaf(x), leaf(weight), leaf(bias)
    torch_x, torch_w, torch_b = leaf(x), leaf(weight), leaf(bias)
    ours = fastconv.conv_transpose2d(ours_x, ours_w, ours_b, **args)
    expected = F.conv_transpose2d(torch_x, torch_w, torch_b, **args)
    assert_close_scaled(ours, expected)
    assert_close_scaled(ours, fastconv.conv_transpose2d(x.cpu(), weight.cpu(), bias.cpu(), **args))
    grad = torch.randn_like(expected)
    ours.backward(grad)
    expected.backward(grad)
    for mine, theirs in [(ours_x, torch_x), (ours_w, torch_w), (ours_b, torch_b)]:
        assert_close_scaled(mine.grad, theirs.grad)


def test_conv_transpose2d_and_1d_gradgradcheck():
    x = torch.randn(1, 4, 4, 3, dtype=torch.float64, device=CUDA, requires_grad=True)
    weight = torch.randn(4, 3, 3, 2, dtype=torch.float64, device=CUDA, requires_grad=True)
    fn = lambda x, w: fastconv.conv_transpose2d(x, w, None, 2, 1, 1, 2, (1, 2))  # noqa: E731
    assert gradcheck(fn, (x, weight)) and gradgradcheck(fn, (x, weight))
    x1 = torch.randn(2, 4, 7, dtype=torch.float64, device=CUDA, requires_grad=True)
    weight1 = torch.randn(6, 2, 3, dtype=torch.float64, device=CUDA, requires_grad=True)
    fn1 = lambda x, w: fastconv.conv1d(x, w, None, 2, 1, 2, 2)  # noqa: E731
    assert gradcheck(fn1, (x1, weight1)) and gradgradcheck(fn1, (x1, weight1))


def test_conv2d_backward_is_deterministic():
    x, weight, bias, args = conv_tensors((16, 32, 28, 28, 64, (3, 3), 1, 1, 1, 1), torch.float32)
    grads = []
    for _ in range(2):
        xs, ws = leaf(x), leaf(weight)
        y = fastconv.conv2d(xs, ws, bias, **args)
        y.backward(torch.ones_like(y))
        grads.append((xs.grad, ws.grad))
    assert torch.equal(grads[0][0], grads[1][0])
    assert torch.equal(grads[0][1], grads[1][1])


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


def pool_input(shape, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point:
        x = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    else:
        x = torch.randint(-100, 100, shape, generator=gen).to(dtype)
    return x.to(CUDA)


def pool_args(case):
    _, kernel_size, stride, padding, dilation, ceil_mode = case
    return dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)


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
        assert ours_x.grad.is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")


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
    cpu = fastconv.max_unpool2d(pooled.cpu(), indices.cpu(), kernel_size, stride, padding, output_size)
    assert torch.equal(ours.cpu(), cpu)
    grad = torch.randn_like(expected)
    ours.backward(grad)
    expected.backward(grad)
    assert torch.equal(ours_p.grad, torch_p.grad)


def test_max_unpool2d_unbatched_and_empty_batch():
    x = pool_input((3, 8, 8), torch.float32)
    pooled, indices = F.max_pool2d(x, 2, return_indices=True)
    assert torch.equal(fastconv.max_unpool2d(pooled, indices, 2), F.max_unpool2d(pooled, indices, 2))
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
        torch.ops.fastconv.max_unpool2d_backward(torch.randn(1, 1, 4, 4, device=CUDA), indices.to(CUDA))
    torch.cuda.synchronize()  # the context is still usable


# ------------------------------------------------------------------------------------------ errors


def raised(fn):
    try:
        fn()
    except Exception as error:  # noqa: BLE001
        return type(error), str(error)
    return None


def cuda_randn(*shape, dtype=torch.float32, device=CUDA):
    return torch.randn(*shape, dtype=dtype, device=device)


ERROR_CASES = {
    "conv-groups": lambda f: f.conv2d(cuda_randn(1, 4, 5, 5), cuda_randn(6, 3, 3, 3), groups=2),
    "conv-channels": lambda f: f.conv2d(cuda_randn(1, 4, 5, 5), cuda_randn(6, 3, 3, 3)),
    "conv-kernel-too-big": lambda f: f.conv2d(cuda_randn(1, 3, 2, 2), cuda_randn(6, 3, 3, 3)),
    "conv-dtype": lambda f: f.conv2d(cuda_randn(1, 3, 5, 5), cuda_randn(6, 3, 3, 3, dtype=torch.float16)),
    "conv-weight-on-cpu": lambda f: f.conv2d(cuda_randn(1, 3, 5, 5), torch.randn(6, 3, 3, 3)),
    "conv-bias-size": lambda f: f.conv2d(cuda_randn(1, 3, 5, 5), cuda_randn(6, 3, 3, 3), cuda_randn(5)),
    "conv-bias-dtype": lambda f: f.conv2d(
        cuda_randn(1, 3, 5, 5), cuda_randn(6, 3, 3, 3), cuda_randn(6, dtype=torch.float64)
    ),
    "conv-stride-0": lambda f: f.conv2d(cuda_randn(1, 3, 5, 5), cuda_randn(6, 3, 3, 3), stride=0),
    "conv-5d": lambda f: f.conv2d(cuda_randn(1, 1, 3, 5, 5), cuda_randn(6, 3, 3, 3)),
    "pool-kernel-0": lambda f: f.max_pool2d(cuda_randn(1, 3, 5, 5), 0),
    "pool-pad-too-big": lambda f: f.max_pool2d(cuda_randn(1, 3, 5, 5), 2, 2, 2),
    "pool-output-too-small": lambda f: f.max_pool2d(cuda_randn(1, 3, 2, 2), 3, 1, 0),
    "pool-dilation-0": lambda f: f.max_pool2d(cuda_randn(1, 3, 5, 5), 2, dilation=0),
    "pool-2d-input": lambda f: f.max_pool2d(cuda_randn(5, 5), 2),
    "pool-empty-channels": lambda f: f.max_pool2d(cuda_randn(1, 0, 5, 5), 2),
    "unpool-index-dtype": lambda f: f.max_unpool2d(
        cuda_randn(1, 3, 2, 2), torch.zeros(1, 3, 2, 2, dtype=torch.int32, device=CUDA), 2
    ),
    "unpool-shape": lambda f: f.max_unpool2d(
        cuda_randn(1, 3, 2, 2), torch.zeros(1, 3, 2, 3, dtype=torch.long, device=CUDA), 2
    ),
    "unpool-empty-channels": lambda f: f.max_unpool2d(
        cuda_randn(1, 0, 2, 2), torch.zeros(1, 0, 2, 2, dtype=torch.long, device=CUDA), 2
    ),
    "unpool-5d": lambda f: f.max_unpool2d(
        cuda_randn(1, 1, 3, 2, 2), torch.zeros(1, 1, 3, 2, 2, dtype=torch.long, device=CUDA), 2
    ),
}


# fastconv/functional.py spells the dtypes of this message as "float32"/"float64" where torch says
# "float"/"double" (typeMeta names); the CPU path has the same mismatch.
@pytest.mark.parametrize("name", list(ERROR_CASES))
def test_errors_match_torch_on_cuda(name):
    expected = raised(lambda: ERROR_CASES[name](F))
    ours = raised(lambda: ERROR_CASES[name](fastconv))
    assert expected is not None, "torch accepted these arguments"
    assert ours == expected


# ----------------------------------------------------------------------------- devices, streams, graphs


def run_all_ops(x, weight, bias):
    y = fastconv.conv2d(x, weight, bias, stride=1, padding=1)
    pooled, indices = fastconv.max_pool2d(y, 3, 2, 1, return_indices=True)
    return y, pooled, indices, fastconv.max_unpool2d(pooled, indices, 2, 2, output_size=y.shape[-2:])


def run_all_ops_with_torch(x, weight, bias):
    y = F.conv2d(x, weight, bias, stride=1, padding=1)
    pooled, indices = F.max_pool2d(y, 3, 2, 1, return_indices=True)
    return y, pooled, indices, F.max_unpool2d(pooled, indices, 2, 2, output_size=y.shape[-2:])


def check_all_ops_on(device):
    x, weight, bias, _ = conv_tensors((2, 4, 10, 10, 6, (3, 3), 1, 1, 1, 1), torch.float32, device=device)
    xs, ws = leaf(x), leaf(weight)
    ours = run_all_ops(xs, ws, bias)
    expected = run_all_ops_with_torch(x, weight, bias)
    for mine, theirs in zip(ours, expected):
        assert mine.device == x.device
        if mine.is_floating_point():
            assert_close_scaled(mine, theirs, torch.float32)
        else:
            assert torch.equal(mine, theirs)
    (ours[1].sum() + ours[3].sum()).backward()
    assert xs.grad.device == x.device and ws.grad.device == x.device


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_second_device():
    with torch.cuda.device(0):  # the current device is not the tensors' device
        check_all_ops_on("cuda:1")


def test_side_stream():
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        check_all_ops_on(CUDA)
    torch.cuda.current_stream().wait_stream(stream)


def test_cuda_graph_capture_and_replay():
    x, weight, bias, _ = conv_tensors((4, 8, 16, 16, 16, (3, 3), 1, 1, 1, 1), torch.float32)
    static_x = x.clone()
    warmup = torch.cuda.Stream()
    warmup.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(warmup):
        for _ in range(2):
            run_all_ops(static_x, weight, bias)
    torch.cuda.current_stream().wait_stream(warmup)

    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = run_all_ops(static_x, weight, bias)

    for seed in (1, 2):
        fresh, _, _, _ = conv_tensors((4, 8, 16, 16, 16, (3, 3), 1, 1, 1, 1), torch.float32, seed=seed)
        static_x.copy_(fresh)
        graph.replay()
        torch.cuda.synchronize()
        eager = run_all_ops(fresh, weight, bias)
        for replayed, direct in zip(static_out, eager):
            assert torch.equal(replayed, direct)


def test_cuda_graph_capture_of_a_training_step():
    x, weight, bias, _ = conv_tensors((4, 8, 16, 16, 16, (3, 3), 1, 1, 1, 1), torch.float32)
    static_x = x.clone()
    weight = leaf(weight)

    def step():
        y = fastconv.conv2d(static_x, weight, None, padding=1)
        loss = fastconv.max_pool2d(y, 3, 2, 1).square().sum()
        return torch.autograd.grad(loss, weight)[0]

    warmup = torch.cuda.Stream()
    warmup.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(warmup):
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(warmup)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_grad = step()
    fresh = conv_tensors((4, 8, 16, 16, 16, (3, 3), 1, 1, 1, 1), torch.float32, seed=3)[0]
    static_x.copy_(fresh)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(static_grad, step())


# ---------------------------------------------------------------------------------- 64-bit indexing


def free_gpu_bytes():
    free, _ = torch.cuda.mem_get_info()
    return free


@pytest.mark.slow
def test_max_pool2d_past_2_to_the_31_elements():
    if free_gpu_bytes() < 24 << 30:
        pytest.skip("needs 24 GiB of free GPU memory")
    x = torch.empty(33, 1024, 256, 256, dtype=torch.float16, device=CUDA)  # 2.2e9 elements
    assert x.numel() > 2**31
    x.uniform_()
    y, idx = fastconv.max_pool2d(x, 2, 2, return_indices=True)
    tail = x[-1, -4:]  # far past element 2^31
    expected, expected_idx = F.max_pool2d(tail, 2, 2, return_indices=True)
    assert torch.equal(y[-1, -4:], expected)
    assert torch.equal(idx[-1, -4:], expected_idx)
    grad = torch.ops.fastconv.max_pool2d_with_indices_backward(
        torch.ones_like(y), x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx
    )
    del idx, y
    # each 2x2 window routes its 1 to one element
    assert grad[-1, -4:].float().sum().item() == 4 * 128 * 128


@pytest.mark.slow
def test_conv2d_past_2_to_the_31_elements():
    if free_gpu_bytes() < 40 << 30:
        pytest.skip("needs 40 GiB of free GPU memory")
    x = torch.empty(17, 32, 2048, 2048, dtype=torch.float16, device=CUDA)  # 2.3e9 elements
    assert x.numel() > 2**31
    x.normal_()
    weight = torch.randn(16, 32, 3, 3, dtype=torch.float16, device=CUDA) / 17
    y = fastconv.conv2d(x, weight, None, padding=1)
    expected = F.conv2d(x[-1:, :, -64:], weight, None, padding=1)
    # the last rows of the last image, away from the slice's artificial top border
    assert_close_scaled(y[-1:, :, -63:], expected[:, :, -63:])
