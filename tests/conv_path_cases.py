"""Shapes that reach each CPU conv2d path, shared by the tests that must hold on every path
(thread counts, non-finite inputs). Each entry: x shape, w shape, conv2d keywords, and the float32
paths of (forward, input_backward, weight_backward) as fastconv._C._conv2d_cpu_paths names them
(float64 and the half types take im2col_blas for every pass)."""

import torch

import fastconv

PACKED = ("packed_gemm", "packed_gemm_flipped", "packed_gemm")
POINTWISE = ("im2col_blas", "im2col_blas", "packed_gemm")
# The weight gradient of a pointwise layer on planes of 256+ pixels: dot products of the planes
# (csrc/ops/cpu/conv2d/pointwise/) where fastconv runs its AVX2 or portable kernels; AVX-512 keeps
# the packed GEMM.
POINTWISE_WEIGHT = (
    "packed_gemm" if fastconv.build_info()["cpu_gemm_kernel"] == "avx512f" else "pointwise"
)
POINTWISE_PLANES = ("im2col_blas", "im2col_blas", POINTWISE_WEIGHT)

PATH_CASES = {
    "packed": ((2, 64, 9, 9), (48, 64, 5, 5), dict(padding=2), PACKED),
    "packed_strided": (
        (2, 144, 13, 12),
        (16, 144, 3, 3),
        dict(stride=2, padding=1),
        ("packed_gemm", "im2col_blas", "packed_gemm"),
    ),
    "packed_grouped": (
        (2, 96, 8, 8),
        (32, 48, 5, 5),
        dict(padding=2, groups=2),
        ("packed_gemm", "direct_flipped", "packed_gemm"),
    ),
    # the images side by side in one GEMM (planes under 64 pixels)
    "pointwise_batched": ((9, 37, 7, 5), (10, 37, 1, 1), {}, POINTWISE),
    "pointwise": ((3, 29, 12, 11), (40, 29, 1, 1), {}, POINTWISE),
    "pointwise_grouped": ((2, 24, 16, 9), (36, 12, 1, 1), dict(groups=2), POINTWISE),
    # 289 pixels: a tail after the vectors; 14 and 5 output channels: partial 3-row tiles
    "pointwise_planes": ((2, 20, 17, 17), (14, 20, 1, 1), {}, POINTWISE_PLANES),
    "pointwise_planes_grouped": ((3, 18, 17, 19), (15, 6, 1, 1), dict(groups=3), POINTWISE_PLANES),
    "deep_few_pixels": (
        (1, 256, 5, 5),
        (32, 256, 3, 3),
        dict(padding=1),
        ("im2col_blas", "direct_flipped", "winograd"),
    ),
    "winograd": (
        (2, 48, 10, 10),
        (48, 48, 3, 3),
        dict(padding=1),
        ("winograd", "winograd_flipped", "winograd"),
    ),
    # dilated: Winograd on the phase planes (unequal dilations and paddings)
    "winograd_dilated": (
        (2, 48, 13, 11),
        (48, 48, 3, 3),
        dict(padding=(3, 1), dilation=(2, 3)),
        ("winograd", "winograd_flipped", "packed_gemm"),
    ),
    # a stride and no padding: a pointwise convolution of the pixels it reads
    "pointwise_strided": ((2, 24, 13, 12), (20, 24, 1, 1), dict(stride=(2, 3)), POINTWISE),
    "direct": (
        (2, 12, 11, 9),
        (24, 12, 3, 3),
        dict(padding=1),
        ("direct", "direct_flipped", "direct"),
    ),
    "direct_grouped": (
        (2, 32, 9, 10),
        (32, 4, 3, 3),
        dict(padding=1, groups=8),
        ("direct", "direct_flipped", "direct"),
    ),
    "direct_strided_dilated": (
        (2, 4, 31, 29),
        (7, 4, 3, 2),
        dict(stride=3, padding=2, dilation=2),
        ("direct", "im2col_blas", "direct"),
    ),
    "depthwise": (
        (3, 8, 13, 17),
        (8, 1, 3, 3),
        dict(padding=1, groups=8),
        ("depthwise", "depthwise_flipped", "depthwise"),
    ),
    "depthwise_wide_kernel": (
        (2, 3, 6, 10),
        (3, 1, 1, 7),
        dict(padding=(0, 3), groups=3),
        ("depthwise", "depthwise_flipped", "depthwise"),
    ),
    "depthwise_strided": (
        (2, 8, 14, 15),
        (8, 1, 3, 3),
        dict(stride=2, padding=1, groups=8),
        ("depthwise", "depthwise_gather", "depthwise"),
    ),
    "depthwise_multiplier": (
        (2, 4, 9, 9),
        (12, 1, 5, 3),
        dict(padding=(2, 1), groups=4),
        ("depthwise", "direct_flipped", "depthwise"),
    ),
}


def _pair(v):
    return list(v) if isinstance(v, (tuple, list)) else [v, v]


def conv2d_paths(x, w, kwargs):
    """(forward, input_backward, weight_backward) paths of fastconv.conv2d(x, w, **kwargs)."""
    paths = fastconv._C._conv2d_cpu_paths(
        x,
        w,
        _pair(kwargs.get("stride", 1)),
        _pair(kwargs.get("padding", 0)),
        _pair(kwargs.get("dilation", 1)),
        kwargs.get("groups", 1),
    )
    return paths["forward"], paths["input_backward"], paths["weight_backward"]


def expected_paths(case, dtype, layout="contiguous"):
    """The paths of PATH_CASES[case] for this dtype and input layout: channels_last input takes the
    channels_last kernels where they apply (float32 depthwise layers of one output channel per
    input channel; unstrided, unpadded pointwise layers without groups, float32 and float64)."""
    x_shape, w_shape, kwargs, expected = PATH_CASES[case]
    groups = kwargs.get("groups", 1)
    if layout == "channels_last":
        if dtype == torch.float32 and groups == x_shape[1] == w_shape[0]:
            return ("depthwise_channels_last",) * 3
        pointwise = tuple(w_shape[2:]) == (1, 1) and kwargs.get("stride", 1) in (1, (1, 1))
        if pointwise and groups == 1 and kwargs.get("padding", 0) in (0, (0, 0)):
            return ("im2col_blas",) * 3
    return expected if dtype == torch.float32 else ("im2col_blas",) * 3
