"""The float32 CPU fast paths of conv2d: the packed GEMM (its panel and block edges, pixel blocks that
span images, depth blocks, weight gradients summed by chunks of images), its portable micro-kernel,
and the direct depthwise kernels.

Each case is computed in float32 by fastconv and compared with torch's conv2d in float64, so that
the tolerance measures fastconv's rounding alone.
"""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import fastconv

# (N, C, H, W, K, R, S, stride, padding, dilation, groups): shapes chosen to hit the edges of the
# packed GEMM's tiling (6-row weight panels, 16-pixel panels, 128-pixel blocks, 256-deep blocks,
# 192-row blocks) and of the depthwise kernels.
EDGE_CASES = {
    "pixels_span_images": (5, 3, 7, 7, 7, 3, 3, 1, 1, 1, 1),       # 49-pixel planes in 128-pixel blocks
    "one_pixel_planes": (37, 4, 1, 1, 5, 1, 1, 1, 0, 1, 1),
    "deep_columns": (2, 40, 9, 9, 13, 3, 3, 1, 1, 1, 1),          # 360 > 256 rows: two depth blocks
    "many_weight_rows": (1, 8, 6, 6, 400, 3, 3, 1, 1, 1, 1),      # 400 rows: several row blocks
    "wide_rows": (1, 3, 5, 150, 6, 3, 3, 1, 1, 1, 1),             # a row longer than a pixel block
    "stride_2_interior": (2, 5, 20, 21, 12, 3, 3, 2, 1, 1, 1),
    "stride_3_dilation_2": (2, 4, 19, 17, 7, 3, 2, 3, 2, 2, 1),
    "grouped": (2, 12, 11, 9, 18, 3, 3, 1, 1, 1, 3),
    "weight_grad_by_image_chunks": (19, 3, 8, 8, 5, 3, 3, 1, 1, 1, 1),  # 3 chunks of <= 8 images
    "depthwise": (3, 8, 13, 17, 8, 3, 3, 1, 1, 1, 8),
    "depthwise_stride_2": (2, 8, 14, 15, 8, 3, 3, 2, 1, 1, 8),
    "depthwise_multiplier": (2, 4, 9, 9, 12, 5, 3, 1, (2, 1), 1, 4),
    "depthwise_dilated_big_pad": (1, 3, 6, 5, 3, 3, 3, 2, 4, 3, 3),
    "depthwise_7x7_plane": (4, 16, 7, 7, 16, 3, 3, 1, 1, 1, 16),
}


def conv_float32_vs_float64(case, bias=True, grad=True):
    n, c, h, w, k, r, s, stride, padding, dilation, groups = case
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    weight = torch.randn(k, c // groups, r, s, dtype=torch.float64)
    b = torch.randn(k, dtype=torch.float64) if bias else None
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    tensors64 = [t.requires_grad_() if t is not None else None for t in (x, weight, b)]
    tensors32 = [t.detach().float().requires_grad_() if t is not None else None for t in (x, weight, b)]
    expected = F.conv2d(*tensors64, **kwargs)
    actual = fastconv.conv2d(*tensors32, **kwargs)
    # float32 rounding of sums of c/groups * r * s products of unit-variance values
    scale = (c // groups * r * s) ** 0.5
    torch.testing.assert_close(actual.double(), expected.detach(), rtol=1e-5, atol=1e-5 * scale)
    if not grad or expected.numel() == 0:
        return
    grad_output = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, [t for t in tensors64 if t is not None], grad_output)
    actual_grads = torch.autograd.grad(actual, [t for t in tensors32 if t is not None], grad_output.float())
    for a, e in zip(actual_grads, expected_grads):
        # weight gradients sum over the batch and the output plane as well
        grad_scale = (e.numel() and (n * k * h * w) ** 0.5) + scale
        torch.testing.assert_close(a.double(), e, rtol=1e-5, atol=1e-5 * grad_scale)


@pytest.mark.parametrize("case", EDGE_CASES.values(), ids=EDGE_CASES.keys())
@pytest.mark.parametrize("bias", [True, False])
def test_edges_of_the_tiling(case, bias):
    conv_float32_vs_float64(case, bias)


@st.composite
def float32_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2, "depthwise"]))
    c = draw(st.integers(1, 20))
    if groups == "depthwise":
        groups, k = c, c * draw(st.integers(1, 2))
    else:
        c, k = c * groups, draw(st.integers(1, 30)) * groups
    return (draw(st.integers(0, 4)), c, draw(st.integers(1, 20)), draw(st.integers(1, 40)), k,
            draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3)),
            draw(st.integers(0, 2)), draw(st.integers(1, 2)), groups)


@settings(max_examples=60, deadline=None)
@given(float32_configs(), st.booleans())
def test_random_float32_configurations(case, bias):
    n, c, h, w, k, r, s, stride, padding, dilation, groups = case
    if h + 2 * padding < dilation * (r - 1) + 1 or w + 2 * padding < dilation * (s - 1) + 1:
        return  # no output pixel: torch's error is checked in test_conv2d
    conv_float32_vs_float64(case, bias)


@pytest.mark.parametrize("case", [EDGE_CASES["pixels_span_images"], EDGE_CASES["depthwise"],
                                  EDGE_CASES["weight_grad_by_image_chunks"],
                                  (3, 16, 23, 29, 20, 3, 3, 1, 1, 1, 1)])
def test_results_do_not_depend_on_the_thread_count(case):
    n, c, h, w, k, r, s, stride, padding, dilation, groups = case
    x = torch.randn(n, c, h, w, requires_grad=True)
    weight = torch.randn(k, c // groups, r, s, requires_grad=True)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            out = fastconv.conv2d(x, weight, None, **kwargs)
            grads = torch.autograd.grad(out, (x, weight), torch.ones_like(out))
            results.append((out, *grads))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def test_workspace_is_bounded():
    """The packed forward needs a few hundred KiB per thread, whatever the image size."""
    x = torch.empty(64, 128, 512, 512, device="meta")
    weight = torch.empty(256, 128, 3, 3, device="meta")
    workspace = fastconv._C.conv2d_cpu_workspace_bytes(x, weight, [1, 1], [1, 1], [1, 1], 1)
    assert 0 < workspace <= torch.get_num_threads() * (1 << 20)


PORTABLE_KERNEL_CHECK = """
import torch, torch.nn.functional as F, fastconv
assert fastconv.build_info()["cpu_gemm_kernel"] == "portable", fastconv.build_info()
torch.manual_seed(0)
for n, c, h, k, groups in [(2, 9, 11, 13, 1), (1, 40, 9, 200, 1), (3, 6, 10, 6, 6)]:
    x, w = torch.randn(n, c, h, h), torch.randn(k, c // groups, 3, 3)
    expected = F.conv2d(x.double(), w.double(), None, 1, 1, 1, groups)
    actual = fastconv.conv2d(x, w, None, 1, 1, 1, groups)
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-4)
print("ok")
"""


def test_portable_microkernel_without_avx2():
    """ATEN_CPU_CAPABILITY=default, as on a CPU without AVX2, selects the portable micro-kernel,
    which must give the same values."""
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    result = subprocess.run([sys.executable, "-c", PORTABLE_KERNEL_CHECK], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
