"""fastconv's conv2d and conv_transpose2d on CUDA against torch (cuDNN) and against fastconv's CPU
kernels (cuda_helpers.py: skipped without a GPU)."""

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import fastconv
from cuda_helpers import CUDA, CUDA_TESTS, FLOAT_DTYPES, assert_close_scaled, conv_tensors, leaf
from helpers import LAYOUTS, with_layout

pytestmark = CUDA_TESTS

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
    torch.testing.assert_close(
        fastconv.conv2d(x.to(CUDA), weight.to(CUDA), bias.to(CUDA)).cpu(), expected
    )


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
    torch.testing.assert_close(
        ours_w.grad, torch_w.grad, atol=1e-4 * torch_w.grad.abs().max().item(), rtol=1e-4
    )


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
    weight = (torch.randn(c, k // groups, kh, kw, generator=gen, dtype=torch.float64) / 3).to(
        CUDA, dtype
    )
    bias = torch.randn(k, generator=gen, dtype=torch.float64).to(CUDA, dtype)
    args = dict(
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        groups=groups,
        dilation=dilation,
    )
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
