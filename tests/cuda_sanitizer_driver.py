"""Runs every fastconv CUDA kernel once or twice on small shapes, forward and backward, for
compute-sanitizer (memcheck, racecheck):

    compute-sanitizer --tool memcheck python tests/cuda_sanitizer_driver.py   (and --tool racecheck)
"""

import torch

import fastconv

ops = torch.ops.fastconv
dev = "cuda"


def conv_round(
    dtype, n, c, h, w, k, ks, stride, padding, dilation, groups, layout=torch.contiguous_format
):
    x = (
        torch.randn(n, c, h, w, device=dev, dtype=dtype)
        .contiguous(memory_format=layout)
        .requires_grad_()
    )
    weight = torch.randn(k, c // groups, *ks, device=dev, dtype=dtype, requires_grad=True)
    bias = torch.randn(k, device=dev, dtype=dtype, requires_grad=True)
    y = fastconv.conv2d(x, weight, bias, stride, padding, dilation, groups)
    y.backward(torch.randn_like(y))


def pool_round(dtype, shape, layout, *args):
    x = torch.randn(shape, device=dev, dtype=dtype)
    if len(shape) == 4:
        x = x.contiguous(memory_format=layout)
    x.requires_grad_()
    y, idx = fastconv.max_pool2d(x, *args, return_indices=True)
    y.backward(torch.randn_like(y))
    u = fastconv.max_unpool2d(y.detach().requires_grad_(), idx, 2)
    ops.max_unpool2d_backward(torch.randn_like(u), idx)


for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
    conv_round(dtype, 2, 4, 9, 7, 6, (3, 3), (1, 1), (1, 1), (1, 1), 1)
    conv_round(dtype, 2, 4, 9, 7, 6, (3, 2), (2, 1), (0, 1), (2, 1), 2)
    conv_round(dtype, 2, 4, 9, 7, 8, (3, 3), (1, 1), (1, 1), (1, 1), 4)  # depthwise x2
    conv_round(dtype, 3, 4, 5, 6, 6, (1, 1), (1, 1), (0, 0), (1, 1), 1)  # pointwise
    conv_round(dtype, 3, 4, 5, 6, 6, (1, 1), (1, 1), (0, 0), (1, 1), 2, torch.channels_last)
    for layout in (torch.contiguous_format, torch.channels_last):
        pool_round(dtype, (2, 3, 9, 10), layout, 3, 2, 1, 1, True)
        pool_round(dtype, (2, 3, 8, 8), layout, 2, 2, 0, 1, False)
    pool_round(dtype, (3, 8, 8), torch.contiguous_format, 2, 2)
for dtype in (torch.int32, torch.uint8):
    fastconv.max_pool2d(torch.randint(0, 100, (2, 3, 9, 9), device=dev, dtype=dtype), 3, 2, 1)
# banded conv (workspace past 128 MiB): forward, multi-band col2im, weight gradient
conv_round(torch.float32, 1, 64, 130, 520, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1)
# invalid indices: skipped by the kernels, recorded with atomicMin, reported
for call in (
    lambda: fastconv.max_unpool2d(
        torch.randn(1, 1, 2, 2, device=dev), torch.tensor([[[[0, 1], [2, 99]]]], device=dev), 2
    ),
    lambda: ops.max_unpool2d_backward(
        torch.randn(1, 1, 4, 4, device=dev), torch.tensor([[[[0, -1], [2, 99]]]], device=dev)
    ),
):
    try:
        call()
    except RuntimeError as e:
        print("expected:", e)
torch.cuda.synchronize()
print("sanitize script done")
