"""The depthwise CPU kernels (csrc/ops/cpu/conv2d/depthwise/): strided layers on phase planes
(forward and weight gradient), the input gradient of strided or over-padded layers as per-phase
stencils, and the fallbacks: strides past 4 row by row, a non-finite weight or more taps per phase
than a stencil takes gathered exactly. Values and both gradients against float64, and the same at
1 and 3 threads. The shared path cases (thread counts, non-finite values) are in
tests/conv_path_cases.py."""

import pytest
import torch
import torch.nn.functional as F

import fastconv
from helpers import results_per_thread_count
from test_cpu_fast_paths import conv_float32_vs_float64


def paths(case):
    n, c, h, w, k, r, s, stride, padding, dilation, groups = case
    x = torch.empty(n, c, h, w, device="meta")
    weight = torch.empty(k, c // groups, r, s, device="meta")
    pair = lambda v: list(v) if isinstance(v, tuple) else [v, v]  # noqa: E731
    found = fastconv._C._conv2d_cpu_paths(
        x, weight, pair(stride), pair(padding), pair(dilation), groups
    )
    return found["forward"], found["input_backward"], found["weight_backward"]


# (n, c, h, w, k, kernel h, kernel w, stride, padding, dilation, groups)
CASES = {
    "mobilenet_stride_2": (2, 8, 16, 16, 8, 3, 3, 2, 1, 1, 8),
    "odd_planes_stride_2": (3, 5, 13, 11, 5, 3, 3, 2, 1, 1, 5),
    "stride_3_kernel_5": (2, 4, 17, 19, 4, 5, 5, 3, 2, 1, 4),
    "stride_4_dilated": (2, 3, 23, 21, 6, 3, 3, 4, 3, 2, 3),
    "unequal_strides": (2, 4, 15, 18, 4, 3, 5, (2, 3), (1, 2), 1, 4),
    "stride_larger_than_kernel": (2, 4, 14, 14, 4, 2, 2, 3, 0, 1, 4),  # inputs no tap reaches
    "multiplier_3_stride_2": (2, 4, 12, 12, 12, 3, 3, 2, 1, 1, 4),
    "padding_past_the_kernel": (1, 3, 6, 5, 3, 3, 3, 1, 3, 1, 3),
    "planes_narrower_than_the_stride": (2, 3, 2, 1, 3, 3, 3, 3, 1, 1, 3),
    "stride_5_row_by_row": (2, 4, 21, 22, 4, 3, 3, 5, 1, 1, 4),
    "stride_5_one_axis": (2, 4, 21, 22, 4, 3, 3, (5, 1), 1, 1, 4),
    # 9 taps per phase x 8 output channels per group: past a stencil's 64, gathered
    "too_many_taps_per_phase": (2, 2, 15, 15, 16, 5, 5, 2, 2, 1, 2),
}


@pytest.mark.parametrize("name", CASES)
def test_values_and_gradients_match_float64(name):
    case = CASES[name]
    assert paths(case)[0] == "depthwise" and paths(case)[2] == "depthwise"
    if name not in ("padding_past_the_kernel",):
        assert paths(case)[1] in ("depthwise_gather", "depthwise_flipped")
    torch.manual_seed(0)
    before = fastconv._C._conv2d_cpu_path_runs()
    conv_float32_vs_float64(case)
    after = fastconv._C._conv2d_cpu_path_runs()
    for which, path in zip(("forward", "input_backward", "weight_backward"), paths(case)):
        assert after[which, path] == before[which, path] + 1, (which, path)


def test_strided_input_gradient_takes_the_gather_path():
    assert paths(CASES["mobilenet_stride_2"])[1] == "depthwise_gather"
    assert paths(CASES["padding_past_the_kernel"])[1] == "depthwise_gather"


@pytest.mark.parametrize("where", ["first", "last"])
def test_non_finite_weight_in_a_strided_layer(where):
    """A strided layer's input gradient with an inf weight: torch adds only real outputs' products
    (no inf x 0 from the padding), so only the inputs that tap reaches are inf or NaN."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, 9, 9, requires_grad=True)
    w = torch.randn(4, 1, 3, 3)
    w[1, 0, 0 if where == "first" else 2, 0 if where == "first" else 2] = float("inf")
    w.requires_grad_()
    go = torch.randn(2, 4, 5, 5)
    expected = torch.autograd.grad(F.conv2d(x, w, None, 2, 1, 1, 4), (x, w), go)
    actual = torch.autograd.grad(fastconv.conv2d(x, w, None, 2, 1, 1, 4), (x, w), go)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, equal_nan=True, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "name", ["mobilenet_stride_2", "multiplier_3_stride_2", "stride_5_row_by_row"]
)
def test_results_do_not_depend_on_the_thread_count(name):
    n, c, h, w, k, r, s, stride, padding, dilation, groups = CASES[name]
    torch.manual_seed(0)
    x = torch.randn(n, c, h, w, requires_grad=True)
    weight = torch.randn(k, c // groups, r, s, requires_grad=True)

    def run():
        y = fastconv.conv2d(x, weight, None, stride, padding, dilation, groups)
        return (y, *torch.autograd.grad(y, (x, weight), torch.ones_like(y)))

    one, three = results_per_thread_count(run, (1, 3))
    for a, b in zip(one, three):
        assert torch.equal(a, b)


# channels_last layers: (n, c, h, w, kernel, stride, padding, dilation); one output channel per
# input channel, the channel counts on either side of the kernels' 32-, 16- and 8-channel blocks
CHANNELS_LAST_CASES = [
    (2, 32, 13, 11, 3, 1, 1, 1),
    (2, 40, 16, 16, 3, 2, 1, 1),
    (3, 19, 9, 10, 5, 2, 2, 1),
    (2, 24, 12, 12, 3, 1, 2, 2),
    (1, 8, 7, 7, 3, 3, 0, 1),
    (2, 7, 9, 8, 3, 1, 1, 1),
    (0, 16, 8, 8, 3, 1, 1, 1),
    (2, 50, 5, 6, 3, 1, 3, 1),  # padding past the kernel: no interior
]


@pytest.mark.parametrize("case", CHANNELS_LAST_CASES)
def test_channels_last_values_gradients_and_layout(case):
    """channels_last depthwise layers run on the NHWC kernels (no conversion): values and the three
    gradients against float64, outputs and input gradient channels_last."""
    n, c, h, w, kernel, stride, padding, dilation = case
    torch.manual_seed(0)
    cl = torch.channels_last
    x = torch.randn(n, c, h, w, dtype=torch.float64).contiguous(memory_format=cl)
    weight = torch.randn(c, 1, kernel, kernel, dtype=torch.float64)
    bias = torch.randn(c, dtype=torch.float64)
    args = (stride, padding, dilation, c)
    leaves64 = [t.requires_grad_() for t in (x, weight, bias)]
    leaves32 = [t.detach().float().requires_grad_() for t in (x, weight, bias)]
    leaves32[0] = x.detach().float().contiguous(memory_format=cl).requires_grad_()
    expected = F.conv2d(*leaves64, *args)
    before = fastconv._C._conv2d_cpu_path_runs()
    actual = fastconv.conv2d(*leaves32, *args)
    assert n == 0 or actual.is_contiguous(memory_format=cl)
    scale = kernel * kernel
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-6 * scale)
    if n == 0:
        return
    go = torch.randn_like(expected)
    grads64 = torch.autograd.grad(expected, leaves64, go)
    grads32 = torch.autograd.grad(actual, leaves32, go.float().contiguous(memory_format=cl))
    after = fastconv._C._conv2d_cpu_path_runs()
    for which in ("forward", "input_backward", "weight_backward"):
        key = (which, "depthwise_channels_last")
        assert after[key] == before[key] + 1, which
    assert grads32[0].is_contiguous(memory_format=cl)
    for a, e in zip(grads32, grads64):
        sums = (e.numel() and n * h * w) ** 0.5 + scale
        torch.testing.assert_close(a.double(), e, rtol=1e-5, atol=1e-6 * sums)


def test_channels_last_non_finite_values_reach_what_reads_them():
    """The inf/NaN rule of tests/test_nonfinite.py, against torch's float64 evaluation: a non-finite
    weight times the zero padding is NaN in the forward, an inf grad_output at the border reaches
    the weight gradient of the taps reading padding (inf x 0), the input gradient adds real
    outputs only."""
    torch.manual_seed(0)
    cl = torch.channels_last
    x = torch.randn(2, 16, 7, 7).contiguous(memory_format=cl)
    weight = torch.randn(16, 1, 3, 3)
    weight[3, 0, 0, 0] = float("inf")
    go = torch.randn(2, 16, 7, 7)
    go[1, 5, 0, 0] = float("inf")
    go = go.contiguous(memory_format=cl)
    for stride in (1, 2):
        g = go[:, :, ::stride, ::stride].contiguous(memory_format=cl)
        xs, ws = x.clone().requires_grad_(), weight.clone().requires_grad_()
        ours = fastconv.conv2d(xs, ws, None, stride, 1, 1, 16)
        ours_grads = torch.autograd.grad(ours, (xs, ws), g)
        xt, wt = x.double().requires_grad_(), weight.double().requires_grad_()
        theirs = F.conv2d(xt, wt, None, stride, 1, 1, 16)
        theirs_grads = torch.autograd.grad(theirs, (xt, wt), g.double())
        for a, e in zip((ours, *ours_grads), (theirs, *theirs_grads)):
            assert torch.equal(a.isnan(), e.isnan()) and torch.equal(a.isinf(), e.isinf())


def test_channels_last_results_do_not_depend_on_the_thread_count():
    torch.manual_seed(0)
    cl = torch.channels_last
    x = torch.randn(3, 56, 20, 20).contiguous(memory_format=cl).requires_grad_()
    weight = torch.randn(56, 1, 3, 3, requires_grad=True)

    def run():
        y = fastconv.conv2d(x, weight, None, 2, 1, 1, 56)
        go = torch.ones_like(y).contiguous(memory_format=cl)
        return (y, *torch.autograd.grad(y, (x, weight), go))

    one, three = results_per_thread_count(run, (1, 3))
    for a, b in zip(one, three):
        assert torch.equal(a, b)
