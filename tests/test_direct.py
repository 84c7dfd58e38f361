"""The direct CPU conv2d kernels (csrc/ops/cpu/conv2d/direct/: the forward and weight gradient):
which layers take them, values and both gradients against float64 over random geometries (groups,
strides 1-4 as phase planes, dilation, padding, several blocks of input channels, batches that
are empty or of one image), and fastconv.backends.direct. Bitwise AVX2 / AVX-512 agreement and
thread-count independence are in test_cpu_fast_paths.py."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings, strategies as st

import fastconv
from helpers import results_per_thread_count, run_with_cpu_capability


def paths(n, c, h, w, k, kernel, stride=1, padding=0, dilation=1, groups=1):
    x = torch.empty(n, c, h, w, device="meta")
    weight = torch.empty(k, c // groups, kernel, kernel, device="meta")
    found = fastconv._C._conv2d_cpu_paths(
        x, weight, [stride] * 2, [padding] * 2, [dilation] * 2, groups
    )
    return found["forward"], found["input_backward"], found["weight_backward"]


def test_which_layers_take_it():
    """Grouped layers with a few channels per group, shallow layers with few output channels, the
    stems: up to 1,152 weights per output channel (128 x 3 x 3), stride up to 4, more than one tap;
    the weight gradient up to 32 output channels per group."""
    assert paths(8, 512, 14, 14, 512, 3, 1, 1, groups=32) == ("direct", "direct_flipped", "direct")
    assert paths(8, 128, 56, 56, 128, 3, 1, 1, groups=32) == ("direct", "direct_flipped", "direct")
    assert paths(8, 256, 56, 56, 256, 3, 2, 1, groups=32) == ("direct", "im2col_blas", "direct")
    assert paths(8, 128, 7, 7, 32, 3, 1, 1)[:2] == ("direct", "direct_flipped")  # DenseNet, 7x7
    assert paths(8, 3, 224, 224, 64, 7, 2, 3) == ("direct", "im2col_blas", "packed_gemm")  # stem
    assert paths(8, 3, 32, 32, 6, 5) == ("direct", "direct_flipped", "direct")  # LeNet
    assert paths(8, 64, 56, 56, 64, 3, 1, 1)[0] == "winograd"
    assert paths(8, 192, 13, 13, 384, 3, 1, 1)[0] != "direct"  # 1,728 columns: deep
    assert paths(8, 256, 56, 56, 512, 1, 2)[0] != "direct"  # one tap
    assert paths(8, 16, 40, 40, 16, 3, 5, 1)[0] != "direct"  # stride 5
    assert paths(1, 4, 9, 9, 4, 3, 1, 2**20, 2**20)[0] != "direct"  # planes far past the image
    with fastconv.backends.direct.flags(enabled=False):
        assert "direct" not in paths(8, 512, 14, 14, 512, 3, 1, 1, groups=32)[0]
        assert paths(8, 3, 32, 32, 6, 5)[2] == "packed_gemm"


AVX2_RULES = """
import torch, fastconv

def forward(n, c, h, k, stride, groups=1):
    x, w = torch.empty(n, c, h, h, device="meta"), torch.empty(k, c // groups, 3, 3, device="meta")
    return fastconv._C._conv2d_cpu_paths(x, w, [stride] * 2, [1, 1], [1, 1], groups)["forward"]

assert fastconv.build_info()["cpu_gemm_kernel"] == "avx2_fma"
assert forward(1, 64, 56, 64, 2) == "packed_gemm"  # strided, 48+ channels
assert forward(8, 48, 56, 64, 2) == "packed_gemm"
assert forward(1, 32, 112, 32, 2) == "direct"  # fewer channels
assert forward(8, 256, 56, 256, 2, groups=32) == "direct"  # 8 per group
assert forward(1, 64, 9, 32, 1) == "direct"  # stride 1
assert forward(1, 256, 28, 256, 2) == "packed_gemm"  # deep, 196 pixels, strided
assert forward(1, 512, 7, 512, 1) == "im2col_blas"  # deep, 49 pixels, stride 1
print("ok")
"""


def test_avx2_strided_and_deep_layer_rules():
    """The AVX2 kernels' own rules (conv2d_path.cpp): strided layers of 48 or more channels per
    group take the packed GEMM rather than the direct kernel, and deep strided ones do at any pixel
    count. Run with ATEN_CPU_CAPABILITY=avx2, so that an AVX-512 machine checks them too."""
    if fastconv.build_info()["cpu_gemm_kernel"] == "portable":
        pytest.skip("this CPU (or torch's capability) has no AVX2")
    result = run_with_cpu_capability("avx2", AVX2_RULES)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 3),
    groups=st.sampled_from([1, 2, 3, 8]),
    c=st.integers(2, 40),
    k=st.integers(1, 20),
    kernel=st.integers(2, 5),
    stride=st.integers(1, 4),
    dilation=st.integers(1, 3),
    padding=st.integers(0, 3),
    h=st.integers(1, 24),
    w=st.integers(1, 40),
    bias=st.booleans(),
)
def test_values_and_gradients_match_float64(
    n, groups, c, k, kernel, stride, dilation, padding, h, w, bias
):
    # Winograd off: it takes the 3x3 stride-1 draws with 16+ channels and 768+ pixels.
    with fastconv.backends.winograd.flags(enabled=False):
        _check_direct_against_float64(
            n, groups, c, k, kernel, stride, dilation, padding, h, w, bias
        )


def _check_direct_against_float64(n, groups, c, k, kernel, stride, dilation, padding, h, w, bias):
    c, k = c * groups, k * groups  # (one channel per group would be depthwise)
    assume(h + 2 * padding >= dilation * (kernel - 1) + 1)
    assume(w + 2 * padding >= dilation * (kernel - 1) + 1)
    chosen = paths(n, c, h, w, k, kernel, stride, padding, dilation, groups)
    assert chosen[0] == "direct"
    x = torch.randn(n, c, h, w, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(k, c // groups, kernel, kernel, dtype=torch.float64, requires_grad=True)
    b = torch.randn(k, dtype=torch.float64, requires_grad=True) if bias else None
    args = (stride, padding, dilation, groups)
    before = fastconv._C._conv2d_cpu_path_runs()["forward", "direct"]
    expected = F.conv2d(x, weight, b, *args)
    inputs32 = [t.detach().float().requires_grad_() for t in (x, weight) + ((b,) if bias else ())]
    actual = fastconv.conv2d(inputs32[0], inputs32[1], inputs32[2] if bias else None, *args)
    assert fastconv._C._conv2d_cpu_path_runs()["forward", "direct"] == before + (n > 0)
    depth = c // groups * kernel * kernel  # products per output
    torch.testing.assert_close(
        actual.double(), expected.detach(), rtol=1e-5, atol=1e-5 * depth**0.5
    )
    if expected.numel() == 0:
        return
    grad = torch.randn_like(expected)
    leaves = [t for t in (x, weight, b) if t is not None]
    expected_grads = torch.autograd.grad(expected, leaves, grad)
    runs_before = fastconv._C._conv2d_cpu_path_runs()
    actual_grads = torch.autograd.grad(actual, inputs32, grad.float())
    runs_after = fastconv._C._conv2d_cpu_path_runs()
    for pass_name, path in zip(("input_backward", "weight_backward"), chosen[1:]):
        assert runs_after[pass_name, path] == runs_before[pass_name, path] + 1
    pixels = n * expected.shape[2] * expected.shape[3]
    for a, e, scale in zip(actual_grads, expected_grads, (k * kernel * kernel, pixels, pixels)):
        torch.testing.assert_close(a.double(), e, rtol=1e-5, atol=1e-5 * scale**0.5)


@pytest.mark.parametrize(
    "case",
    [
        # n, c, h, w, k, (kh, kw), stride, padding, dilation, groups: unequal axes, so that a rows /
        # columns mix-up in the phase planes or the tap offsets shows
        (2, 6, 13, 17, 10, (3, 5), (2, 1), (1, 2), (1, 2), 2),
        (1, 4, 19, 11, 8, (2, 3), (1, 3), (0, 1), (3, 1), 1),
        (3, 9, 27, 23, 6, (5, 2), (3, 2), (2, 0), (1, 1), 3),
        # a grid past 1,024 pixels: the weight gradient's calls take 64 vectors at a time
        (2, 5, 40, 45, 7, (3, 3), (1, 1), (1, 1), (1, 1), 1),
        # 40 channels x 9 taps: two blocks of input channels, the second continuing the first's sums
        (2, 40, 11, 10, 12, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    ],
)
def test_unequal_axes_long_grids_and_depth_blocks(case):
    n, c, h, w, k, kernel, stride, padding, dilation, groups = case
    x = torch.randn(n, c, h, w, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(k, c // groups, *kernel, dtype=torch.float64, requires_grad=True)
    args = (stride, padding, dilation, groups)
    expected = F.conv2d(x, weight, None, *args)
    x32, w32 = (t.detach().float().requires_grad_() for t in (x, weight))
    meta = [t.to("meta") for t in (x32, w32)]
    chosen = fastconv._C._conv2d_cpu_paths(
        *meta, list(stride), list(padding), list(dilation), groups
    )
    assert chosen["forward"] == "direct" and chosen["weight_backward"] == "direct"
    actual = fastconv.conv2d(x32, w32, None, *args)
    grad = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, (x, weight), grad)
    actual_grads = torch.autograd.grad(actual, (x32, w32), grad.float())
    torch.testing.assert_close(actual.double(), expected.detach(), rtol=1e-5, atol=1e-4)
    for a, e in zip(actual_grads, expected_grads):
        torch.testing.assert_close(a.double(), e, rtol=1e-5, atol=1e-3)


def test_weight_gradient_ignores_what_only_the_grid_extra_pixels_read():
    """Pixels of the grid outside the output (its extra columns) read input values no output
    pixel's tap reads at that offset: an inf there must not reach the weight gradient as 0 x inf."""
    x = torch.randn(1, 4, 6, 6)
    x[..., -1] = float("inf")  # read by tap kw = 0 only from grid columns past the output
    weight = torch.randn(4, 4, 3, 3, requires_grad=True)
    out = fastconv.conv2d(x, weight)  # no padding: the last column is a tap of kw = 2 only
    (grad,) = torch.autograd.grad(out, weight, torch.ones_like(out))
    w64 = weight.detach().double().requires_grad_()
    expected = F.conv2d(x.double(), w64)
    (expected_grad,) = torch.autograd.grad(expected, w64, torch.ones_like(expected))
    assert torch.isfinite(grad[..., :2]).all()
    assert torch.equal(torch.isinf(grad), torch.isinf(expected_grad.float()))
    finite = torch.isfinite(expected_grad)
    torch.testing.assert_close(grad.double()[finite], expected_grad[finite], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("threads", [1, 3])
def test_grouped_layer_results_do_not_depend_on_the_thread_count(threads):
    """A ResNeXt-like grouped layer (16 channels per group) and a layer deep enough for two blocks
    of input channels in its forward: forward and both gradients equal bitwise across thread
    counts."""
    torch.manual_seed(0)
    for groups, c, k in ((4, 64, 64), (1, 40, 24)):
        x = torch.randn(2, c, 9, 11, requires_grad=True)
        weight = torch.randn(k, c // groups, 3, 3, requires_grad=True)

        def run():
            out = fastconv.conv2d(x, weight, None, 1, 1, 1, groups)
            return (out, *torch.autograd.grad(out, (x, weight), torch.ones_like(out)))

        reference, result = results_per_thread_count(run, (1, threads))
        for a, b in zip(result, reference):
            assert torch.equal(a, b)
