"""The float32 CPU fast paths of conv2d: the packed GEMM (its panel and block edges, pixel blocks
that span images, depth blocks, weight gradients summed by chunks of images, strided inputs read as
phase planes), its portable micro-kernel, and the direct depthwise kernels.

Each case is computed in float32 by fastconv and compared with torch's conv2d in float64, so that
the tolerance measures fastconv's rounding alone. Each edge case also asserts which kernel path each
pass takes and that it ran (fastconv._C's path hooks), so that a routing change cannot silently
take a path out of these tests.
"""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings, strategies as st

import fastconv
from helpers import results_per_thread_count, run_with_cpu_capability

# (N, C, H, W, K, R, S, stride, padding, dilation, groups): shapes chosen to hit the edges of the
# packed GEMM's tiling (12-row weight panels, 16-pixel panels taken two at a time, 128-pixel
# blocks, 256-deep blocks, row blocks), of the strided input's phase planes (pack_columns.h:
# InputPlanes, and phase_planes.h), of the direct kernels' tiles (8 channels, 48-pixel tiles
# whose stores wrap rows, grids narrower than a vector) and of the depthwise kernels.
EDGE_CASES = {
    "pixels_span_images": (5, 3, 7, 7, 7, 3, 3, 1, 1, 1, 1),  # 49-pixel planes in 128-pixel blocks
    "one_pixel_planes": (37, 4, 1, 1, 5, 1, 1, 1, 0, 1, 1),
    "deep_columns": (2, 40, 9, 9, 13, 3, 3, 1, 1, 1, 1),  # 360 > 256 rows: two depth blocks
    "many_weight_rows": (1, 8, 6, 6, 400, 3, 3, 1, 1, 1, 1),  # 400 rows: several row blocks
    "wide_rows": (1, 3, 5, 150, 6, 3, 3, 1, 1, 1, 1),  # a row longer than a pixel block
    "stride_2_interior": (2, 5, 20, 21, 12, 3, 3, 2, 1, 1, 1),
    "stride_3_dilation_2": (2, 4, 19, 17, 7, 3, 2, 3, 2, 2, 1),
    "stride_3_phase_planes": (2, 5, 17, 16, 9, 3, 3, 3, 1, 1, 1),  # 17 rows: a short last phase
    "stride_4_kernel_5": (1, 3, 23, 22, 40, 5, 5, 4, 2, 1, 1),
    # a pointwise convolution of the pixels it reads (is_subsampled_pointwise)
    "stride_2_pointwise": (2, 6, 9, 11, 20, 1, 1, 2, 0, 1, 1),
    "stride_2_dilation_2": (2, 3, 13, 12, 8, 3, 3, 2, 2, 2, 1),  # one phase read: not split
    # pointwise weight gradients read the input's planes in place (132 and 144 pixels), a last
    # partial panel of 5 channels copied
    "pointwise_in_place": (3, 29, 12, 11, 40, 1, 1, 1, 0, 1, 1),
    "pointwise_in_place_grouped": (2, 24, 16, 9, 36, 1, 1, 1, 0, 1, 2),
    "grouped": (2, 12, 11, 9, 18, 3, 3, 1, 1, 1, 3),
    "grouped_16_per_group": (2, 32, 9, 10, 32, 3, 3, 1, 1, 1, 2),
    "weight_grad_by_image_chunks": (19, 3, 8, 8, 5, 3, 3, 1, 1, 1, 1),  # 3 chunks of <= 8 images
    "depthwise": (3, 8, 13, 17, 8, 3, 3, 1, 1, 1, 8),
    "depthwise_stride_2": (2, 8, 14, 15, 8, 3, 3, 2, 1, 1, 8),
    "depthwise_multiplier": (2, 4, 9, 9, 12, 5, 3, 1, (2, 1), 1, 4),
    "depthwise_dilated_big_pad": (1, 3, 6, 5, 3, 3, 3, 2, 4, 3, 3),
    "depthwise_7x7_plane": (4, 16, 7, 7, 16, 3, 3, 1, 1, 1, 16),
}

# The path of each pass (forward, input_backward, weight_backward) that each edge case covers
# (csrc/ops/cpu/conv2d_path.h), with fastconv.backends.direct on (the default) and off: the
# shallow cases take the direct kernels by default (the weight gradient's up to 32 output channels)
# and the packed GEMM without them, so both meet every edge.
PACKED = ("packed_gemm", "packed_gemm_flipped", "packed_gemm")
STRIDED_PACKED = ("packed_gemm", "im2col_blas", "packed_gemm")
DIRECT = ("direct", "direct_flipped", "direct")
STRIDED_DIRECT = ("direct", "im2col_blas", "direct")
EXPECTED_PATHS = {  # name: (direct on, direct off)
    "pixels_span_images": (DIRECT, PACKED),
    "one_pixel_planes": (("im2col_blas", "im2col_blas", "packed_gemm"),) * 2,  # pointwise: BLAS
    "deep_columns": (DIRECT, PACKED),
    # 400 * 9 rows (deep) back
    "many_weight_rows": (("direct", "im2col_blas", "packed_gemm"), STRIDED_PACKED),
    "wide_rows": (DIRECT, PACKED),
    "stride_2_interior": (STRIDED_DIRECT, STRIDED_PACKED),
    "stride_3_dilation_2": (STRIDED_DIRECT, STRIDED_PACKED),
    "stride_3_phase_planes": (STRIDED_DIRECT, STRIDED_PACKED),
    "stride_4_kernel_5": (("direct", "im2col_blas", "packed_gemm"), STRIDED_PACKED),  # 40 outputs
    "stride_2_pointwise": (("im2col_blas", "im2col_blas", "packed_gemm"),) * 2,  # as pointwise
    "stride_2_dilation_2": (STRIDED_DIRECT, STRIDED_PACKED),
    "pointwise_in_place": (("im2col_blas", "im2col_blas", "packed_gemm"),) * 2,
    "pointwise_in_place_grouped": (("im2col_blas", "im2col_blas", "packed_gemm"),) * 2,
    "grouped": (DIRECT, PACKED),
    "grouped_16_per_group": (DIRECT, PACKED),
    "weight_grad_by_image_chunks": (DIRECT, PACKED),
    "depthwise": (("depthwise", "depthwise_flipped", "depthwise"),) * 2,
    "depthwise_stride_2": (("depthwise", "depthwise_gather", "depthwise"),) * 2,
    # 3 channels per group back
    "depthwise_multiplier": (
        ("depthwise", "direct_flipped", "depthwise"),
        ("depthwise", "packed_gemm_flipped", "depthwise"),
    ),
    "depthwise_dilated_big_pad": (("depthwise", "depthwise_gather", "depthwise"),) * 2,
    "depthwise_7x7_plane": (("depthwise", "depthwise_flipped", "depthwise"),) * 2,
}
PASSES = ("forward", "input_backward", "weight_backward")


def cpu_paths(case, dtype=torch.float32):
    """The path each pass takes for this case, as the kernels decide it."""
    n, c, h, w, k, r, s, stride, padding, dilation, groups = case
    pair = lambda v: list(v) if isinstance(v, tuple) else [v, v]  # noqa: E731
    x = torch.empty(n, c, h, w, dtype=dtype, device="meta")
    weight = torch.empty(k, c // groups, r, s, dtype=dtype, device="meta")
    paths = fastconv._C._conv2d_cpu_paths(
        x, weight, pair(stride), pair(padding), pair(dilation), groups
    )
    return tuple(paths[p] for p in PASSES)


def conv_float32_vs_float64(case, bias=True, grad=True):
    n, c, h, w, k, r, s, stride, padding, dilation, groups = case
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    weight = torch.randn(k, c // groups, r, s, dtype=torch.float64)
    b = torch.randn(k, dtype=torch.float64) if bias else None
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    tensors64 = [t.requires_grad_() if t is not None else None for t in (x, weight, b)]
    tensors32 = [
        t.detach().float().requires_grad_() if t is not None else None for t in (x, weight, b)
    ]
    expected = F.conv2d(*tensors64, **kwargs)
    actual = fastconv.conv2d(*tensors32, **kwargs)
    # float32 rounding of sums of c/groups * r * s products of unit-variance values
    scale = (c // groups * r * s) ** 0.5
    torch.testing.assert_close(actual.double(), expected.detach(), rtol=1e-5, atol=1e-5 * scale)
    if not grad or expected.numel() == 0:
        return
    grad_output = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(
        expected, [t for t in tensors64 if t is not None], grad_output
    )
    actual_grads = torch.autograd.grad(
        actual, [t for t in tensors32 if t is not None], grad_output.float()
    )
    for a, e in zip(actual_grads, expected_grads):
        # weight gradients sum over the batch and the output plane as well
        grad_scale = (e.numel() and (n * k * h * w) ** 0.5) + scale
        torch.testing.assert_close(a.double(), e, rtol=1e-5, atol=1e-5 * grad_scale)


@pytest.mark.parametrize("name", EDGE_CASES.keys())
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("direct", [True, False])
def test_edges_of_the_tiling(name, bias, direct):
    case = EDGE_CASES[name]
    expected = EXPECTED_PATHS[name][0 if direct else 1]
    with fastconv.backends.direct.flags(enabled=direct):
        assert cpu_paths(case) == expected
        before = fastconv._C._conv2d_cpu_path_runs()
        conv_float32_vs_float64(case, bias)
        after = fastconv._C._conv2d_cpu_path_runs()
    for pass_name, path in zip(PASSES, expected):
        assert after[pass_name, path] > before[pass_name, path], (pass_name, path)


def test_other_dtypes_take_the_im2col_blas_path():
    assert cpu_paths(EDGE_CASES["pixels_span_images"], torch.float64) == ("im2col_blas",) * 3
    assert cpu_paths(EDGE_CASES["depthwise"], torch.bfloat16) == ("im2col_blas",) * 3


@st.composite
def float32_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2, "depthwise"]))
    c = draw(st.integers(1, 20))
    if groups == "depthwise":
        groups, k = c, c * draw(st.integers(1, 2))
    else:
        c, k = c * groups, draw(st.integers(1, 30)) * groups
    return (
        draw(st.integers(0, 4)),
        c,
        draw(st.integers(1, 20)),
        draw(st.integers(1, 40)),
        k,
        draw(st.integers(1, 4)),
        draw(st.integers(1, 4)),
        draw(st.integers(1, 3)),
        draw(st.integers(0, 2)),
        draw(st.integers(1, 2)),
        groups,
    )


@settings(max_examples=60, deadline=None)
@given(float32_configs(), st.booleans())
def test_random_float32_configurations(case, bias):
    n, c, h, w, k, r, s, stride, padding, dilation, groups = case
    # With no output pixel torch raises; that error is checked in test_conv2d.
    assume(h + 2 * padding >= dilation * (r - 1) + 1 and w + 2 * padding >= dilation * (s - 1) + 1)
    conv_float32_vs_float64(case, bias)


@pytest.mark.parametrize(
    "case",
    [
        EDGE_CASES["pixels_span_images"],
        EDGE_CASES["depthwise"],
        EDGE_CASES["weight_grad_by_image_chunks"],
        EDGE_CASES["stride_3_phase_planes"],
        EDGE_CASES["pointwise_in_place"],
        (3, 16, 23, 29, 20, 3, 3, 1, 1, 1, 1),
        # 18 column rows, 96 channels: the weight gradient's tasks split
        # the channels, differently for each thread count
        (9, 2, 12, 12, 96, 3, 3, 1, 1, 1, 1),
        # pointwise layers on 7x7 planes: one GEMM over the batch
        # (BLAS threads: the 2048-channel one is ResNet-50's size)
        (6, 96, 7, 7, 80, 1, 1, 1, 0, 1, 1),
        (4, 512, 7, 7, 2048, 1, 1, 1, 0, 1, 1),
        # the packed forward on 7x7 planes, 20 channels: tiles split
        # between images and a partial row panel, summed in scratch
        # tiles; the pixel blocks are balanced per thread count
        (3, 160, 7, 7, 20, 3, 3, 1, 1, 1, 1),
        # Winograd past 128 x 128 channels, its tile blocks balanced per
        # thread count
        (4, 160, 14, 14, 160, 3, 3, 1, 1, 1, 1),
    ],
)
def test_results_do_not_depend_on_the_thread_count(case):
    n, c, h, w, k, r, s, stride, padding, dilation, groups = case
    x = torch.randn(n, c, h, w, requires_grad=True)
    weight = torch.randn(k, c // groups, r, s, requires_grad=True)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)

    def run():
        out = fastconv.conv2d(x, weight, None, **kwargs)
        return (out, *torch.autograd.grad(out, (x, weight), torch.ones_like(out)))

    results = results_per_thread_count(run, (1, 2, 3))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def measured_forward_workspace(x, weight, **kwargs):
    """(bytes the forward's workspaces held at their peak, the figure the path choice reports)."""
    stride, padding, dilation = (
        [kwargs.get(k, d)] * 2 for k, d in (("stride", 1), ("padding", 0), ("dilation", 1))
    )
    groups = kwargs.get("groups", 1)
    figure = fastconv._C.conv2d_cpu_workspace_bytes(x, weight, stride, padding, dilation, groups)
    fastconv._C._cpu_workspace_peak_bytes(reset=True)
    with torch.no_grad():
        fastconv.conv2d(x, weight, None, **kwargs)
    return fastconv._C._cpu_workspace_peak_bytes(), figure


@pytest.mark.parametrize(
    "dtype, groups, winograd, direct, expected_path",
    [
        (torch.float32, 1, True, True, "winograd"),
        (torch.float32, 1, False, True, "direct"),
        (torch.float32, 1, False, False, "packed_gemm"),
        (torch.float32, 64, True, True, "depthwise"),
        (torch.float64, 1, True, True, "im2col_blas"),
    ],
)
def test_workspace_is_what_the_kernel_allocates_and_bounded(
    dtype, groups, winograd, direct, expected_path
):
    """The forward's real workspace (counted as it is allocated) stays within the reported figure,
    which is a few hundred KiB per thread for the packed GEMM and Winograd (which also holds its
    16 x K x C transformed filters), a padded plane per thread for depthwise, the zero-padded
    input (no larger than the input and its border) and the repacked weights for the direct
    kernel, and an im2col band (16 MiB at most) per thread otherwise: never the whole column
    matrix (here 64 x 9 x 96 x 96 x 2 images = 42 MiB in float64)."""
    x = torch.randn(2, 64, 96, 96, dtype=dtype)
    weight = torch.randn(64, 64 // groups, 3, 3, dtype=dtype)
    with (
        fastconv.backends.winograd.flags(enabled=winograd),
        fastconv.backends.direct.flags(enabled=direct),
    ):
        assert cpu_paths((2, 64, 96, 96, 64, 3, 3, 1, 1, 1, groups), dtype)[0] == expected_path
        peak, figure = measured_forward_workspace(x, weight, padding=1, groups=groups)
    assert 0 < peak <= figure
    per_thread = {
        "packed_gemm": 1 << 20,
        "winograd": 1 << 20,
        "depthwise": 128 << 10,
        "direct": 0,
        "im2col_blas": 16 << 20,
    }[expected_path]
    fixed = {
        "winograd": 16 * 64 * 64 * 4,
        "direct": 2 * 64 * 98 * 98 * 4 + 64 * 64 * 9 * 4 + (64 << 10),
    }.get(expected_path, 0)
    assert figure <= torch.get_num_threads() * per_thread + fixed


def test_dilated_winograd_workspace_is_its_phase_planes_and_bounded():
    """A dilated layer on Winograd holds the zero-padded input as phase planes and their outputs
    (about the input and output, with the padding), and Winograd's own workspace."""
    x, weight = torch.randn(2, 64, 40, 40), torch.randn(64, 64, 3, 3)
    assert cpu_paths((2, 64, 40, 40, 64, 3, 3, 1, 2, 2, 1))[0] == "winograd"
    peak, figure = measured_forward_workspace(x, weight, padding=2, dilation=2)
    assert 0 < peak <= figure
    planes = 2 * 64 * 44 * 44 * 4 + 2 * 64 * 4 * 20 * 20 * 4  # the padded input, the outputs
    assert figure <= planes + 16 * 64 * 64 * 4 + torch.get_num_threads() * (1 << 20)


PORTABLE_KERNEL_CHECK = """
import torch, torch.nn.functional as F, fastconv
assert fastconv.build_info()["cpu_gemm_kernel"] == "portable", fastconv.build_info()
torch.manual_seed(0)
for n, c, h, k, groups in [(2, 9, 11, 13, 1), (1, 48, 9, 200, 1), (3, 6, 10, 6, 6), (2, 8, 9, 8, 2),
                          (2, 150, 5, 9, 1)]:
    x, w = torch.randn(n, c, h, h), torch.randn(k, c // groups, 3, 3)
    expected = F.conv2d(x.double(), w.double(), None, 1, 1, 1, groups)
    actual = fastconv.conv2d(x, w, None, 1, 1, 1, groups)
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-4)
# (1, 48, 9, 200) ran on the Winograd path, (2, 9, 11, 13) and (2, 8, 9, 8) on the direct kernel,
# (2, 150, 5, 9) (1,350 weight columns) on the packed GEMM: their portable builds are checked too.
runs = fastconv._C._conv2d_cpu_path_runs()
assert runs["forward", "winograd"] == 1, runs
assert runs["forward", "direct"] == 2, runs
assert runs["forward", "packed_gemm"] == 1, runs
print("ok")
"""


def test_portable_microkernel_without_avx2():
    """ATEN_CPU_CAPABILITY=default, as on a CPU without AVX2, selects the portable micro-kernel,
    which must give the same values."""
    result = run_with_cpu_capability("default", PORTABLE_KERNEL_CHECK)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


VECTOR_KERNEL_RESULTS = """
import sys, torch, fastconv
assert fastconv.build_info()["cpu_gemm_kernel"] == sys.argv[2], fastconv.build_info()
torch.manual_seed(0)
results = []
# Output channels on either side of the GEMM's 4-, 8- and 12-row tiles and the direct kernel's
# 8-channel tiles, on the direct kernel (the first four, grouped and strided ones too), the packed
# GEMM (150 channels: 1,350 weight columns) and Winograd (48 -> 200); forward and both gradients.
for n, c, h, k, groups, stride in [
    (2, 9, 11, 13, 1, 1), (3, 16, 10, 4, 1, 1), (2, 24, 12, 8, 1, 1), (2, 32, 9, 70, 1, 1),
    (2, 100, 8, 12, 1, 1), (2, 32, 13, 40, 4, 2), (2, 64, 10, 64, 32, 1), (2, 150, 6, 20, 1, 1),
    (2, 150, 9, 13, 1, 2), (1, 48, 9, 200, 1, 1),
]:
    x = torch.randn(n, c, h, h, requires_grad=True)
    w = torch.randn(k, c // groups, 3, 3, requires_grad=True)
    b = torch.randn(k)
    y = fastconv.conv2d(x, w, b, stride, 1, 1, groups)
    y.backward(torch.randn_like(y))
    results += [y.detach(), x.grad, w.grad]
runs = fastconv._C._conv2d_cpu_path_runs()
for path in ("direct", "packed_gemm", "winograd"):
    assert runs["forward", path] > 0, (path, runs)
torch.save(results, sys.argv[1])
"""


def _vector_kernel_results(tmp_path, capability, expected_kernel):
    path = tmp_path / f"{expected_kernel}.pt"
    result = run_with_cpu_capability(capability, VECTOR_KERNEL_RESULTS, path, expected_kernel)
    assert result.returncode == 0, result.stderr
    return torch.load(path)


@pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() != "AVX512",
    reason="the AVX-512 micro-kernel needs a CPU (and torch) with AVX-512",
)
def test_avx512_microkernel_matches_avx2_bitwise(tmp_path):
    """The AVX-512 and AVX2 micro-kernels add the same products in the same order with one
    rounding each (FMA), so forward and weight gradient agree bit for bit, row tails included;
    ATEN_CPU_CAPABILITY=avx2 selects the AVX2 build."""
    wide = _vector_kernel_results(tmp_path, "avx512", "avx512f")
    narrow = _vector_kernel_results(tmp_path, "avx2", "avx2_fma")
    assert len(wide) == len(narrow) == 30
    for a, b in zip(wide, narrow):
        assert torch.equal(a, b)
