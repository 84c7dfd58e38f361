"""What the CUDA tests share: their marks, tolerances and inputs. They compare fastconv's CUDA
kernels with torch on the same GPU (cuDNN for conv2d) and with fastconv's own CPU kernels, and
skip where no GPU is visible or fastconv was built without CUDA. conftest.py turns TF32 off for
every test marked `cuda`."""

import math

import pytest
import torch

import fastconv

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available() or not fastconv.build_info()["cuda"],
    reason="needs a CUDA device and fastconv built with CUDA",
)
CUDA_TESTS = [pytest.mark.cuda, needs_cuda]  # a CUDA test file's pytestmark

CUDA = "cuda"
FLOAT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# Tolerances relative to the largest magnitude of the expected tensor (see assert_close_scaled).
TOLERANCE = {
    torch.float64: 1e-10,
    torch.float32: 2e-5,
    torch.float16: 4e-3,
    torch.bfloat16: 3e-2,
}


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


def conv_tensors(case, dtype, bias=True, device=CUDA, seed=0):
    """(x, weight, bias, kwargs) of a conv2d case (N, C, H, W, K, kernel, stride, padding,
    dilation, groups), drawn in float64 from `seed`."""
    n, c, h, w, k, (kh, kw), stride, padding, dilation, groups = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    fan_in = (c // groups) * kh * kw
    weight = torch.randn(k, c // groups, kh, kw, generator=gen, dtype=torch.float64) / math.sqrt(
        fan_in
    )
    b = torch.randn(k, generator=gen, dtype=torch.float64) if bias else None
    cast = lambda t: None if t is None else t.to(device=device, dtype=dtype)  # noqa: E731
    return (
        cast(x),
        cast(weight),
        cast(b),
        dict(stride=stride, padding=padding, dilation=dilation, groups=groups),
    )


def pool_input(shape, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point:
        x = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    else:
        x = torch.randint(-100, 100, shape, generator=gen).to(dtype)
    return x.to(CUDA)
