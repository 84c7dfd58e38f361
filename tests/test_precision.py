"""float32 precision against a float64 evaluation: every CPU conv2d path keeps its error within
2x torch's own float32 error on the same call (Winograd, whose transforms round more, within its
documented 4x: tests/test_winograd.py). Long reductions are summed in blocks, so that no output
is one running total over thousands of products."""

import pytest
import torch
import torch.nn.functional as F

import fastconv

ops = torch.ops.fastconv


def _errors(x, w, go, stride, padding, groups, which):
    """(torch's float32 error, fastconv's) against float64, max-abs, for one pass."""
    s, p, d = [stride] * 2, [padding] * 2, [1, 1]
    if which == "forward":
        ref = F.conv2d(x.double(), w.double(), stride=stride, padding=padding, groups=groups)
        theirs = F.conv2d(x, w, stride=stride, padding=padding, groups=groups)
        ours = ops.conv2d(x, w, None, s, p, d, groups)
    elif which == "input_backward":
        grad = torch.nn.grad.conv2d_input
        ref = grad(x.shape, w.double(), go.double(), stride=stride, padding=padding, groups=groups)
        theirs = grad(x.shape, w, go, stride=stride, padding=padding, groups=groups)
        ours = ops.conv2d_input_backward(go, w, list(x.shape), s, p, d, groups)
    else:
        grad = torch.nn.grad.conv2d_weight
        ref = grad(x.double(), w.shape, go.double(), stride=stride, padding=padding, groups=groups)
        theirs = grad(x, w.shape, go, stride=stride, padding=padding, groups=groups)
        ours = ops.conv2d_weight_backward(go, x, list(w.shape), s, p, d, groups)
    return (theirs.double() - ref).abs().max().item(), (ours.double() - ref).abs().max().item()


# (x shape, w shape, stride, padding, groups, pass, the path it must take). Each case summed one
# running total over its whole reduction before the blocked sums: 7x, 9x and 4x torch's error.
CASES = [
    ((11, 22, 15, 39), (12, 22, 1, 1), 1, 0, 1, "weight_backward", "packed_gemm"),
    ((16, 64, 56, 56), (64, 64, 1, 1), 1, 0, 1, "weight_backward", "packed_gemm"),
    ((8, 512, 7, 7), (512, 512, 3, 3), 1, 1, 1, "input_backward", "packed_gemm_flipped"),
    ((1, 155, 5, 13), (21, 155, 3, 3), 2, 1, 1, "forward", "packed_gemm"),
    ((8, 512, 7, 7), (512, 512, 3, 3), 1, 1, 1, "forward", "packed_gemm"),
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, groups, which, path", CASES)
def test_packed_gemm_error_within_twice_torchs(
    x_shape, w_shape, stride, padding, groups, which, path
):
    torch.manual_seed(0)
    x, w = torch.randn(x_shape), torch.randn(w_shape)
    s, p = [stride] * 2, [padding] * 2
    assert fastconv._C._conv2d_cpu_paths(x, w, s, p, [1, 1], groups)[which] == path
    go = torch.randn_like(F.conv2d(x, w, stride=stride, padding=padding, groups=groups))
    theirs, ours = _errors(x, w, go, stride, padding, groups, which)
    assert ours <= 2 * theirs, f"{which} on {path}: error {ours:.3g}, torch's {theirs:.3g}"
