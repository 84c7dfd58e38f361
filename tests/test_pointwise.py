"""The pointwise weight gradient as dot products of planes (csrc/ops/cpu/conv2d/pointwise/, the
f32_dot_3x4 micro-kernels): which layers take it, values against float64 over random geometries
(groups, channel counts on either side of the 3 x 4 tiles, planes with and without a tail after
the 8-float vectors, empty and one-image batches, strided 1x1 layers), the portable build, and
thread-count independence at many tasks. The error against torch's is in test_precision.py, the
path cases of test_determinism.py and test_nonfinite.py include it."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import fastconv
from conv_path_cases import POINTWISE_WEIGHT
from helpers import results_per_thread_count, run_with_cpu_capability

ops = torch.ops.fastconv


def weight_path(n, c, h, w, k, stride=1, padding=0, groups=1):
    x = torch.empty(n, c, h, w, device="meta")
    weight = torch.empty(k, c // groups, 1, 1, device="meta")
    paths = fastconv._C._conv2d_cpu_paths(x, weight, [stride] * 2, [padding] * 2, [1, 1], groups)
    return paths["weight_backward"]


def test_which_layers_take_it():
    """1x1 layers whose (read) planes have 256 pixels or more, grouped ones too; a strided 1x1
    layer on the pixels it reads; not padded, not on smaller planes, not float64."""
    assert weight_path(8, 16, 112, 112, 96) == POINTWISE_WEIGHT  # MobileNetV2
    assert weight_path(8, 512, 28, 28, 256) == POINTWISE_WEIGHT
    assert weight_path(1, 24, 16, 16, 8, groups=4) == POINTWISE_WEIGHT
    assert weight_path(1, 2, 16, 16, 2) == POINTWISE_WEIGHT  # test_values_match_float64's least
    assert weight_path(8, 64, 56, 56, 128, stride=2) == POINTWISE_WEIGHT  # 784 pixels read
    assert weight_path(8, 64, 28, 28, 128, stride=2) == "packed_gemm"  # 196 read
    assert weight_path(8, 96, 14, 14, 576) == "packed_gemm"  # 196 pixels
    assert weight_path(8, 16, 56, 56, 16, padding=1) == "packed_gemm"
    x = torch.empty(2, 16, 32, 32, dtype=torch.float64, device="meta")
    w = torch.empty(8, 16, 1, 1, dtype=torch.float64, device="meta")
    paths = fastconv._C._conv2d_cpu_paths(x, w, [1, 1], [0, 0], [1, 1], 1)
    assert paths["weight_backward"] == "im2col_blas"


def _check_against_float64(n, c, k, h, w, groups, stride=1):
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    weight_shape = [k, c // groups, 1, 1]
    go = torch.randn(n, k, (h - 1) // stride + 1, (w - 1) // stride + 1, dtype=torch.float64)
    args = ([stride] * 2, [0, 0], [1, 1], groups)
    expected = torch.nn.grad.conv2d_weight(x, weight_shape, go, stride=stride, groups=groups)
    before = fastconv._C._conv2d_cpu_path_runs()["weight_backward", POINTWISE_WEIGHT]
    actual = ops.conv2d_weight_backward(go.float(), x.float(), weight_shape, *args)
    if n > 0:
        after = fastconv._C._conv2d_cpu_path_runs()["weight_backward", POINTWISE_WEIGHT]
        assert after == before + 1
    # Sums of n * h * w products of unit normals: float32 rounding, relative to their size.
    scale = max(1.0, (n * h * w) ** 0.5)
    torch.testing.assert_close(actual.double(), expected, rtol=0, atol=2e-6 * scale)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3),
    groups=st.sampled_from([1, 2, 3]),
    c=st.integers(2, 14),  # one input channel per group is depthwise
    k=st.integers(1, 14),
    h=st.integers(16, 24),
    w=st.integers(16, 40),
)
def test_values_match_float64(n, groups, c, k, h, w):
    _check_against_float64(n, c * groups, k * groups, h, w, groups)


@pytest.mark.parametrize(
    "n, c, k, h, w, groups, stride",
    [
        (0, 8, 8, 16, 16, 1, 1),  # an empty batch: zeros
        (1, 2, 1, 16, 16, 1, 1),  # one output channel: a 1 x 2 tile
        (2, 130, 125, 17, 16, 1, 1),  # past one task's 128 x 120 outputs, partial tiles
        (3, 16, 96, 33, 35, 1, 1),  # 1,155 pixels: a tail of 3 after the vectors
        (2, 12, 9, 40, 40, 1, 2),  # strided: the 400 pixels it reads
        (2, 64, 64, 50, 50, 4, 1),  # 2,500 pixels: two depth blocks per image
    ],
)
def test_edges_match_float64(n, c, k, h, w, groups, stride):
    torch.manual_seed(0)
    _check_against_float64(n, c, k, h, w, groups, stride)


def test_autograd_and_module_gradients():
    """Through conv2d's autograd: the weight gradient of a 1x1 layer, channels_last input too."""
    torch.manual_seed(0)
    x = torch.randn(2, 24, 20, 20)
    w = torch.randn(40, 24, 1, 1, dtype=torch.float64, requires_grad=True)
    for layout in (torch.contiguous_format, torch.channels_last):
        w32 = w.detach().float().requires_grad_()
        xx = x.contiguous(memory_format=layout)
        fastconv.conv2d(xx, w32).square().sum().backward()
        F.conv2d(x.double(), w).square().sum().backward()
        torch.testing.assert_close(w32.grad.double(), w.grad, rtol=1e-5, atol=1e-3)
        w.grad = None


def test_results_do_not_depend_on_the_thread_count():
    """Many tasks (grouped, two depth blocks per image), at 1 to 4 threads."""
    torch.manual_seed(0)
    x, go = torch.randn(3, 48, 48, 48), torch.randn(3, 300, 48, 48)

    def run():
        return ops.conv2d_weight_backward(go, x, [300, 16, 1, 1], [1, 1], [0, 0], [1, 1], 3)

    results = results_per_thread_count(run, (1, 2, 3, 4))
    for other in results[1:]:
        assert torch.equal(results[0], other)


PORTABLE_CHECK = """
import torch, fastconv
assert fastconv.build_info()["cpu_gemm_kernel"] == "portable", fastconv.build_info()
torch.manual_seed(0)
for n, c, k, h, w, groups in [(2, 13, 10, 17, 17, 1), (3, 18, 15, 17, 19, 3), (1, 4, 7, 40, 41, 1)]:
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    go = torch.randn(n, k, h, w, dtype=torch.float64)
    shape = [k, c // groups, 1, 1]
    expected = torch.nn.grad.conv2d_weight(x, shape, go, groups=groups)
    actual = torch.ops.fastconv.conv2d_weight_backward(
        go.float(), x.float(), shape, [1, 1], [0, 0], [1, 1], groups)
    torch.testing.assert_close(actual.double(), expected, rtol=0, atol=1e-4)
assert fastconv._C._conv2d_cpu_path_runs()["weight_backward", "pointwise"] == 3
print("ok")
"""


def test_portable_build():
    """ATEN_CPU_CAPABILITY=default, as on a CPU without AVX2: the portable dot products."""
    result = run_with_cpu_capability("default", PORTABLE_CHECK)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr
