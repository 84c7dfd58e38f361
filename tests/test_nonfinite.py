"""The inf/NaN rule of the CPU conv2d paths: a non-finite value in the input, the weight or
grad_output reaches exactly the outputs and gradients whose sums hold it as a term: the NaN, inf
and -inf masks of the output and both gradients equal those of torch's float64 evaluation of the
same values, on every path (tests/conv_path_cases.py) but Winograd, whose transforms mix
neighbouring values (a pass on it is left out). As there, zero padding is read as zeros by the
forward and the weight gradient (an inf weight tap over padding gives 0 x inf = NaN), and the input
gradient adds only the products of outputs that exist. (oneDNN, torch's float32 CPU backend,
skips the taps over padding instead, so its pattern differs there.)"""

import pytest
import torch
import torch.nn.functional as F

import fastconv
from conv_path_cases import PATH_CASES, conv2d_paths

SPECIALS = [float("inf"), float("-inf"), float("nan")]


def _poison(t):
    """t with an inf, a -inf and a NaN: at its first element, its last, and the first column of a
    middle row of its first plane (where the padding of a row's end meets the next row)."""
    t = t.clone()
    flat = t.view(-1)
    places = [0, flat.numel() - 1, (t.shape[-2] // 2) * t.shape[-1]]
    for place, value in zip(places, SPECIALS):
        flat[place] = value
    return t


def _passes(conv, x, w, go):
    """conv's output and the gradients of x and w for grad_output go."""
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    y = conv(x, w)
    gx, gw = torch.autograd.grad(y, (x, w), go)
    return y.detach(), gx, gw


def _assert_same_pattern(actual, expected, what):
    for name, mask in (("NaN", torch.isnan), ("inf", torch.isposinf), ("-inf", torch.isneginf)):
        got, want = mask(actual).nonzero().tolist(), mask(expected).nonzero().tolist()
        assert got == want, f"{what}: {name} at {got[:8]}, torch's at {want[:8]}"


def _check(fast, reference, x, w, go, paths, which):
    if which == "input":
        x = _poison(x)
    elif which == "weight":
        w = _poison(w)
    else:
        go = _poison(go)
    ours = _passes(fast, x, w, go)
    theirs = _passes(reference, x.double(), w.double(), go.double())
    for name, path, a, e in zip(("output", "grad_input", "grad_weight"), paths, ours, theirs):
        if "winograd" not in path:
            _assert_same_pattern(a, e, f"{name} ({path}), non-finite {which}")


@pytest.mark.parametrize("which", ["input", "weight", "grad_output"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", PATH_CASES)
def test_conv2d_non_finite_reaches_what_reads_it(case, dtype, which):
    x_shape, w_shape, kwargs, expected = PATH_CASES[case]
    torch.manual_seed(0)
    x, w = torch.randn(x_shape, dtype=dtype), torch.randn(w_shape, dtype=dtype)
    paths = conv2d_paths(x, w, kwargs)
    assert paths == (expected if dtype == torch.float32 else ("im2col_blas",) * 3)
    go = torch.randn_like(F.conv2d(x, w, **kwargs))
    _check(
        lambda x, w: fastconv.conv2d(x, w, **kwargs),
        lambda x, w: F.conv2d(x, w, **kwargs),
        x,
        w,
        go,
        paths,
        which,
    )


# conv_transpose2d runs on conv2d's input-gradient kernels: (x shape, w shape, keywords).
TRANSPOSED_CASES = {
    "stride_1": ((2, 12, 9, 8), (12, 5, 3, 3), dict(padding=1)),
    "strided": ((2, 6, 5, 6), (6, 4, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    "depthwise": ((2, 6, 7, 7), (6, 1, 3, 3), dict(padding=1, groups=6)),
}


@pytest.mark.parametrize("which", ["input", "weight", "grad_output"])
@pytest.mark.parametrize("case", TRANSPOSED_CASES)
def test_conv_transpose2d_non_finite_reaches_what_reads_it(case, which):
    x_shape, w_shape, kwargs = TRANSPOSED_CASES[case]
    torch.manual_seed(0)
    x, w = torch.randn(x_shape), torch.randn(w_shape)
    go = torch.randn_like(F.conv_transpose2d(x, w, **kwargs))
    _check(
        lambda x, w: fastconv.conv_transpose2d(x, w, **kwargs),
        lambda x, w: F.conv_transpose2d(x, w, **kwargs),
        x,
        w,
        go,
        ("", "", ""),
        which,
    )
