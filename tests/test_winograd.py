"""The Winograd F(2x2, 3x3) paths of the CPU conv2d (csrc/ops/cpu/conv2d/winograd/: the forward, and
the weight gradient): where they are taken, values, input and
weight gradients against torch, the accuracy contract against float64 on every benchmark suite's
layers they serve, thread-count independence, and fastconv.backends.winograd."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import fastconv
from helpers import results_per_thread_count

sys.path.append(str(Path(__file__).resolve().parents[1]))  # after the installed fastconv
from bench.suites import SUITES  # noqa: E402

AVX512 = fastconv.build_info()["cpu_gemm_kernel"] == "avx512f"


def paths(n, c, h, w, k, padding, dilation=1):
    x = torch.empty(n, c, h, w, device="meta")
    weight = torch.empty(k, c, 3, 3, device="meta")
    found = fastconv._C._conv2d_cpu_paths(
        x, weight, [1, 1], [padding, padding], [dilation, dilation], 1
    )
    return found["forward"], found["input_backward"]


def weight_path(n, c, h, w, k, padding, dilation=1):
    x = torch.empty(n, c, h, w, device="meta")
    weight = torch.empty(k, c, 3, 3, device="meta")
    return fastconv._C._conv2d_cpu_paths(
        x, weight, [1, 1], [padding, padding], [dilation, dilation], 1
    )["weight_backward"]


def runs():
    counts = fastconv._C._conv2d_cpu_path_runs()
    return counts["forward", "winograd"], counts["input_backward", "winograd_flipped"]


def weight_runs():
    return fastconv._C._conv2d_cpu_path_runs()["weight_backward", "winograd"]


def test_which_layers_take_it():
    """3x3, stride 1, one group (dilated: as the dense convolutions of its dilation_h x dilation_w
    phase planes), 48+ channels on both sides and K x C <= 128 x 128;
    16 to 47 channels on one side from 768 output pixels on, on planes the tiles fill (DenseNet's
    128 -> 32 layers); the input gradient when its own convolution qualifies (padding <= 2). The
    shallow layers it turns down take the direct kernel."""
    assert paths(2, 64, 56, 56, 64, 1) == ("winograd", "winograd_flipped")
    assert paths(2, 48, 9, 9, 128, 0) == ("winograd", "winograd_flipped")
    assert paths(2, 64, 20, 20, 64, 3)[0] == "winograd"
    assert paths(2, 64, 20, 20, 64, 3)[1] != "winograd_flipped"  # padding 3: no stride-1 form
    assert paths(2, 47, 9, 9, 64, 1)[0] == "direct"  # too few input channels
    assert paths(2, 64, 9, 9, 47, 1)[0] == "direct"  # too few output channels
    assert paths(8, 128, 28, 28, 32, 1) == ("winograd", "winograd_flipped")  # DenseNet, 6272 pixels
    assert paths(8, 16, 16, 16, 16, 1) == ("winograd", "winograd_flipped")  # 2048 pixels
    assert paths(1, 128, 14, 14, 32, 1)[0] == "direct"  # 196 pixels
    assert paths(16, 128, 7, 7, 32, 1)[0] == "direct"  # 7x7: 16 tiles for 49 pixels
    assert paths(8, 15, 28, 28, 64, 1)[0] == "direct"  # too few input channels
    assert paths(1, 256, 10, 10, 256, 1)[0] != "winograd"  # filters past L2, 100 pixels
    x, w = torch.empty(2, 64, 9, 9, device="meta"), torch.empty(64, 32, 3, 3, device="meta")
    assert fastconv._C._conv2d_cpu_paths(x, w, [1, 1], [1, 1], [1, 1], 2)["forward"] == "direct"
    w = torch.empty(64, 64, 3, 3, device="meta")
    strided = fastconv._C._conv2d_cpu_paths(x, w, [2, 2], [1, 1], [1, 1], 1)["forward"]
    # (AVX2: the packed GEMM, test_direct.py::test_avx2_strided_and_deep_layer_rules)
    assert strided == ("direct" if AVX512 else "packed_gemm")
    # dilated: the dense convolutions of its phase planes (4 images of 6x6 each here) qualify
    assert fastconv._C._conv2d_cpu_paths(x, w, [1, 1], [1, 1], [2, 2], 1)["forward"] == "winograd"
    assert paths(2, 512, 33, 33, 512, 2, dilation=2) == ("winograd", "winograd_flipped")
    assert paths(2, 512, 33, 33, 512, 8, dilation=8)[0] != "winograd"  # 5x5 phase planes
    x, w = torch.empty(2, 64, 9, 9, dtype=torch.float64, device="meta"), w.double()
    assert (
        fastconv._C._conv2d_cpu_paths(x, w, [1, 1], [1, 1], [1, 1], 1)["forward"] == "im2col_blas"
    )


def test_which_layers_take_it_past_128_channels_and_for_the_weight_gradient():
    """Past 128 x 128 channels (up to 512 x 512) the forward takes it from 192 output pixels on,
    where the tiles cover at most 15% padding (not 7x7 planes: 16 tiles for 49 pixels); the weight
    gradient takes it up to 256 x 256 channels at any batch, never at 512 x 512."""
    assert paths(8, 256, 28, 28, 256, 1) == ("winograd", "winograd_flipped")  # 6272 pixels
    assert paths(8, 256, 14, 14, 256, 1) == ("winograd", "winograd_flipped")  # 1568
    assert paths(1, 256, 14, 14, 256, 1) == ("winograd", "winograd_flipped")  # 196
    assert paths(1, 256, 12, 12, 256, 1)[0] != "winograd"  # 144
    assert paths(4, 512, 14, 14, 512, 1) == ("winograd", "winograd_flipped")  # 784
    assert paths(4, 384, 13, 13, 384, 1)[0] == "winograd"  # 676, 86% of the tiles' outputs
    assert paths(8, 512, 7, 7, 512, 1)[0] != "winograd"  # 392, 77%
    assert paths(16, 512, 7, 7, 512, 1)[0] != "winograd"  # 7x7: 77% filled
    assert paths(8, 1024, 14, 14, 1024, 1)[0] != "winograd"  # past 512 x 512
    assert weight_path(2, 64, 56, 56, 64, 1) == "winograd"
    assert weight_path(1, 256, 14, 14, 256, 1) == "winograd"
    assert weight_path(8, 512, 7, 7, 512, 1) == "packed_gemm"
    assert weight_path(2, 15, 9, 9, 64, 1) == "packed_gemm"
    with fastconv.backends.winograd.flags(enabled=False):
        assert weight_path(2, 64, 56, 56, 64, 1) == "packed_gemm"


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3),
    c=st.integers(16, 40),
    k=st.integers(16, 70),
    h=st.integers(1, 23),
    w=st.integers(1, 41),
    padding=st.integers(0, 2),
)
def test_weight_gradient_matches_torch(n, c, k, h, w, padding):
    """Tiles that hang over the output (odd sizes), maps smaller than a tile, blocks of tile rows
    that cross images, channel counts off the 12-row and 16-lane panels: the weight gradient
    against torch in float64."""
    if h + 2 * padding < 3 or w + 2 * padding < 3:
        return
    assert weight_path(n, c, h, w, k, padding) == "winograd"
    torch.manual_seed(hash((n, c, k, h, w, padding)) % 2**31)  # the same data for an example
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    weight = torch.randn(k, c, 3, 3, dtype=torch.float64, requires_grad=True)
    expected = F.conv2d(x, weight, padding=padding)
    grad = torch.randn_like(expected)
    (expected_grad,) = torch.autograd.grad(expected, weight, grad)
    w32 = weight.detach().float().requires_grad_()
    before = weight_runs()
    (actual_grad,) = torch.autograd.grad(
        fastconv.conv2d(x.float(), w32, padding=padding), w32, grad.float()
    )
    assert weight_runs() > before
    # each element sums n * out_h * out_w products of unit-variance values, whose float32 error
    # is a few 1e-6 x their spread (4e-6 was exceeded by 6% at one of 12,663 elements)
    scale = (n * expected.shape[2] * expected.shape[3]) ** 0.5
    torch.testing.assert_close(actual_grad.double(), expected_grad, rtol=1e-5, atol=8e-6 * scale)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 2),
    c=st.integers(48, 56),
    k=st.integers(48, 60),
    h=st.integers(1, 27),
    w=st.integers(1, 31),
    dilation=st.tuples(st.integers(1, 4), st.integers(1, 4)).filter(lambda d: d != (1, 1)),
    padding=st.tuples(st.integers(0, 5), st.integers(0, 5)),
    bias=st.booleans(),
)
def test_dilated_values_and_gradients_match_torch(n, c, k, h, w, dilation, padding, bias):
    """Dilated layers on the phase planes: unequal dilations and paddings, planes whose phases
    differ in size by a row or column, phase planes smaller than a tile; forward, input gradient
    (itself dilated) and weight gradient against torch in float64."""
    if any(s + 2 * p < 2 * d + 1 for s, p, d in zip((h, w), padding, dilation)):
        return
    x = torch.randn(n, c, h, w, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(k, c, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(k, dtype=torch.float64) if bias else None
    found = fastconv._C._conv2d_cpu_paths(x.float(), weight.float(), [1, 1], padding, dilation, 1)
    assert found["forward"] == "winograd"
    x32, w32 = (t.detach().float().requires_grad_() for t in (x, weight))
    b32 = None if b is None else b.float()
    before = runs()
    actual = fastconv.conv2d(x32, w32, b32, padding=padding, dilation=dilation)
    assert runs() > before
    expected = F.conv2d(x, weight, b, padding=padding, dilation=dilation)
    scale = (9 * c) ** 0.5
    torch.testing.assert_close(actual.double(), expected.detach(), rtol=1e-5, atol=2e-6 * scale)
    grad = torch.randn_like(expected)
    actual_grads = torch.autograd.grad(actual, (x32, w32), grad.float())
    expected_grads = torch.autograd.grad(expected, (x, weight), grad)
    torch.testing.assert_close(
        actual_grads[0].double(), expected_grads[0], rtol=1e-5, atol=2e-6 * (9 * k) ** 0.5
    )
    pixels = (n * expected.shape[2] * expected.shape[3]) ** 0.5
    torch.testing.assert_close(
        actual_grads[1].double(), expected_grads[1], rtol=1e-5, atol=4e-6 * pixels
    )


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3),
    c=st.integers(48, 64),
    k=st.integers(48, 70),
    h=st.integers(1, 23),
    w=st.integers(1, 41),
    padding=st.integers(0, 2),
    bias=st.booleans(),
)
def test_values_and_input_gradient_match_torch(n, c, k, h, w, padding, bias):
    """Odd and even sizes (tiles that hang over the output), maps smaller than a tile, runs of
    tiles that cross images and panels: forward and input gradient against torch in float64."""
    if h + 2 * padding < 3 or w + 2 * padding < 3:
        return
    assert paths(n, c, h, w, k, padding) == ("winograd", "winograd_flipped")
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    weight = torch.randn(k, c, 3, 3, dtype=torch.float64)
    b = torch.randn(k, dtype=torch.float64) if bias else None
    x32 = x.float().requires_grad_()
    before = runs()
    actual = fastconv.conv2d(x32, weight.float(), None if b is None else b.float(), padding=padding)
    expected = F.conv2d(x.requires_grad_(), weight, b, padding=padding)
    scale = (9 * c) ** 0.5
    torch.testing.assert_close(actual.double(), expected.detach(), rtol=1e-5, atol=2e-6 * scale)
    grad = torch.randn_like(expected)
    (actual_grad,) = torch.autograd.grad(actual, x32, grad.float())
    (expected_grad,) = torch.autograd.grad(expected, x, grad)
    torch.testing.assert_close(
        actual_grad.double(), expected_grad, rtol=1e-5, atol=2e-6 * (9 * k) ** 0.5
    )
    after = runs()
    assert after[0] > before[0] and after[1] > before[1]


def test_empty_batch_and_channels_last():
    w = torch.randn(32, 16, 3, 3)
    out = fastconv.conv2d(torch.randn(0, 16, 8, 8), w, padding=1)
    assert out.shape == (0, 32, 8, 8)
    x = torch.randn(2, 16, 10, 12).contiguous(memory_format=torch.channels_last)
    actual = fastconv.conv2d(x, w, padding=1)
    assert actual.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(actual, F.conv2d(x, w, padding=1), rtol=1e-4, atol=1e-4)


def winograd_layers():
    """Every benchmark suite layer that takes a Winograd path at one of the suites' batches (1 and
    8), once each, with the smaller such batch."""
    layers = {}
    for batch in (1, 8):
        for suite in SUITES.values():
            if suite.op != "conv2d":
                continue
            for layer in suite.layers:
                shape = (batch, layer.c, layer.h, layer.w, layer.k, layer.padding, layer.dilation)
                if (
                    layer.groups == 1
                    and layer.r == layer.s == 3
                    and layer.stride == 1
                    and (
                        paths(*shape) == ("winograd", "winograd_flipped")
                        or weight_path(*shape) == "winograd"
                    )
                ):
                    layers.setdefault(shape, f"{suite.name}.{layer.name}")
    return {
        shape: name
        for shape, name in layers.items()
        if shape[0] == 1 or (1, *shape[1:]) not in layers
    }


WINOGRAD_LAYERS = winograd_layers()


def test_some_suite_layers_take_it():
    names = " ".join(WINOGRAD_LAYERS.values())
    assert "resnet18" in names and "vgg16" in names and "densenet121" in names, names
    assert "deeplab_dilated.block4.unit1.d2" in names, names  # dilated, on phase planes


@pytest.mark.parametrize("shape", WINOGRAD_LAYERS.keys(), ids=WINOGRAD_LAYERS.values())
def test_accuracy_contract_on_suite_layers(shape):
    """The README's contract: against a float64 evaluation, Winograd's float32 error (largest
    absolute difference: forward, input gradient, weight gradient) is at most 4x torch's own
    float32 error."""
    batch, c, h, w, k, padding, dilation = shape
    batch = max(batch, 2)
    x = torch.randn(batch, c, h, w, dtype=torch.float64, requires_grad=True)
    weight = (torch.randn(k, c, 3, 3, dtype=torch.float64) / (9 * c) ** 0.5).requires_grad_()
    reach = 2 * dilation - 2 * padding
    grad = torch.randn(batch, k, h - reach, w - reach, dtype=torch.float64)
    exact = F.conv2d(x, weight, padding=padding, dilation=dilation)
    exact_grads = torch.autograd.grad(exact, (x, weight), grad)

    def errors(conv):
        x32 = x.detach().float().requires_grad_()
        w32 = weight.detach().float().requires_grad_()
        out = conv(x32, w32, padding=padding, dilation=dilation)
        grads = torch.autograd.grad(out, (x32, w32), grad.float())
        return [
            (a.double() - e).abs().max().item()
            for a, e in zip((out, *grads), (exact, *exact_grads))
        ]

    ours, torchs = errors(fastconv.conv2d), errors(F.conv2d)
    # The passes that take Winograd at this batch (the direct paths' error is not this contract's).
    layer = (batch, c, h, w, k, padding, dilation)
    taken = [path.startswith("winograd") for path in (*paths(*layer), weight_path(*layer))]
    assert any(taken)
    assert all(o <= 4 * t for o, t, on in zip(ours, torchs, taken) if on), (ours, torchs, taken)


def test_results_do_not_depend_on_the_thread_count():
    x = torch.randn(3, 32, 21, 19, requires_grad=True)
    weight = torch.randn(48, 32, 3, 3, requires_grad=True)

    def run():
        out = fastconv.conv2d(x, weight, padding=1)
        return (out, *torch.autograd.grad(out, (x, weight), torch.ones_like(out)))

    results = results_per_thread_count(run, (1, 2, 3))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def test_backends_switches():
    """fastconv.backends.winograd.enabled and .direct.enabled, and their flags() contexts, which
    restore the settings."""
    assert fastconv.backends.winograd.enabled and fastconv.backends.direct.enabled
    x, w = torch.randn(2, 64, 9, 9), torch.randn(64, 64, 3, 3)
    with fastconv.backends.winograd.flags(enabled=False):
        assert not fastconv.backends.winograd.enabled
        assert paths(2, 64, 56, 56, 64, 1) == ("direct", "direct_flipped")
        before = fastconv._C._conv2d_cpu_path_runs()["forward", "direct"]
        direct = fastconv.conv2d(x, w, padding=1)
        assert fastconv._C._conv2d_cpu_path_runs()["forward", "direct"] == before + 1
        with fastconv.backends.direct.flags(enabled=False):
            assert not fastconv.backends.direct.enabled
            assert paths(2, 64, 56, 56, 64, 1) == ("packed_gemm", "packed_gemm_flipped")
            packed = fastconv.conv2d(x, w, padding=1)
        assert fastconv.backends.direct.enabled
    assert fastconv.backends.winograd.enabled
    # sums of 576 products of unit-variance values, in three orders
    torch.testing.assert_close(fastconv.conv2d(x, w, padding=1), direct, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(packed, direct, rtol=1e-5, atol=1e-4)
    fastconv.backends.winograd.enabled = False
    try:
        assert paths(2, 64, 56, 56, 64, 1)[0] == "direct"
    finally:
        fastconv.backends.winograd.enabled = True
    assert paths(2, 64, 56, 56, 64, 1)[0] == "winograd"
