"""fastconv on CUDA beyond single ops (cuda_helpers.py: skipped without a GPU): errors as torch's,
another device, a side stream, CUDA graph capture, tensors past 2**31 elements. The ops against
torch: test_cuda_conv2d.py, test_cuda_pool.py."""

import pytest
import torch
import torch.nn.functional as F

import fastconv
from cuda_helpers import CUDA, CUDA_TESTS, assert_close_scaled, conv_tensors, leaf
from helpers import assert_raises_like_torch

pytestmark = CUDA_TESTS

# ------------------------------------------------------------------------------------------ errors


def cuda_randn(*shape, dtype=torch.float32, device=CUDA):
    return torch.randn(*shape, dtype=dtype, device=device)


ERROR_CASES = {
    "conv-groups": lambda f: f.conv2d(cuda_randn(1, 4, 5, 5), cuda_randn(6, 3, 3, 3), groups=2),
    "conv-channels": lambda f: f.conv2d(cuda_randn(1, 4, 5, 5), cuda_randn(6, 3, 3, 3)),
    "conv-kernel-too-big": lambda f: f.conv2d(cuda_randn(1, 3, 2, 2), cuda_randn(6, 3, 3, 3)),
    "conv-dtype": lambda f: f.conv2d(
        cuda_randn(1, 3, 5, 5), cuda_randn(6, 3, 3, 3, dtype=torch.float16)
    ),
    "conv-weight-on-cpu": lambda f: f.conv2d(cuda_randn(1, 3, 5, 5), torch.randn(6, 3, 3, 3)),
    "conv-bias-size": lambda f: f.conv2d(
        cuda_randn(1, 3, 5, 5), cuda_randn(6, 3, 3, 3), cuda_randn(5)
    ),
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


@pytest.mark.parametrize("name", list(ERROR_CASES))
def test_errors_match_torch_on_cuda(name):
    assert_raises_like_torch(lambda: ERROR_CASES[name](fastconv), lambda: ERROR_CASES[name](F))


# ------------------------------------------------------------------------- devices, streams, graphs


def run_all_ops(x, weight, bias):
    y = fastconv.conv2d(x, weight, bias, stride=1, padding=1)
    pooled, indices = fastconv.max_pool2d(y, 3, 2, 1, return_indices=True)
    return (
        y,
        pooled,
        indices,
        fastconv.max_unpool2d(pooled, indices, 2, 2, output_size=y.shape[-2:]),
    )


def run_all_ops_with_torch(x, weight, bias):
    y = F.conv2d(x, weight, bias, stride=1, padding=1)
    pooled, indices = F.max_pool2d(y, 3, 2, 1, return_indices=True)
    return y, pooled, indices, F.max_unpool2d(pooled, indices, 2, 2, output_size=y.shape[-2:])


def check_all_ops_on(device):
    x, weight, bias, _ = conv_tensors(
        (2, 4, 10, 10, 6, (3, 3), 1, 1, 1, 1), torch.float32, device=device
    )
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
        fresh, _, _, _ = conv_tensors(
            (4, 8, 16, 16, 16, (3, 3), 1, 1, 1, 1), torch.float32, seed=seed
        )
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


def past_2_to_the_31_elements(shape, free_gib):
    """An uninitialised float16 tensor of `shape`, more than 2**31 elements; the test is skipped
    where less than free_gib GiB of GPU memory are free."""
    free, _ = torch.cuda.mem_get_info()
    if free < free_gib << 30:
        pytest.skip(f"needs {free_gib} GiB of free GPU memory")
    x = torch.empty(shape, dtype=torch.float16, device=CUDA)
    assert x.numel() > 2**31
    return x


@pytest.mark.slow
def test_max_pool2d_past_2_to_the_31_elements():
    x = past_2_to_the_31_elements((33, 1024, 256, 256), 24).uniform_()  # 2.2e9 elements
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
    x = past_2_to_the_31_elements((17, 32, 2048, 2048), 40).normal_()  # 2.3e9 elements
    weight = torch.randn(16, 32, 3, 3, dtype=torch.float16, device=CUDA) / 17
    y = fastconv.conv2d(x, weight, None, padding=1)
    expected = F.conv2d(x[-1:, :, -64:], weight, None, padding=1)
    # the last rows of the last image, away from the slice's artificial top border
    assert_close_scaled(y[-1:, :, -63:], expected[:, :, -63:])
