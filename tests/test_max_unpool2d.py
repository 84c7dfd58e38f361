"""fastconv.max_unpool2d against torch.nn.functional.max_unpool2d, fed with max_pool2d indices."""

import pytest
import torch
import torch.nn.functional as F

import fastconv
from helpers import check_against_torch, is_channels_last, with_layout


def pooled(shape, kernel, stride=None, padding=0, layout="contiguous"):
    x = with_layout(torch.randn(shape, dtype=torch.float64), layout)
    return F.max_pool2d(x, kernel, stride, padding, return_indices=True)


CASES = [  # shape, kernel, stride, padding, output_size
    ((2, 3, 8, 8), 2, None, 0, None),
    ((2, 3, 9, 9), 2, None, 0, (9, 9)),  # odd size: output_size says which
    ((2, 3, 9, 9), 2, None, 0, (2, 3, 9, 9)),  # output_size with batch and channel dims
    ((2, 3, 11, 10), 3, 2, 1, (11, 10)),
    ((0, 3, 8, 8), 2, None, 0, None),  # empty batch
]
UNBATCHED = ((3, 8, 8), 2, None, 0, None)


@pytest.mark.parametrize(
    "case,layout",
    [(case, layout) for case in CASES for layout in ("contiguous", "channels_last")]
    + [(UNBATCHED, "contiguous")],
)
def test_matches_torch(case, layout):
    shape, kernel, stride, padding, output_size = case
    values, indices = pooled(shape, kernel, stride, padding, layout)
    fast_in = values.detach().clone().requires_grad_()
    torch_in = values.detach().clone().requires_grad_()
    actual = fastconv.max_unpool2d(fast_in, indices, kernel, stride, padding, output_size)
    expected = F.max_unpool2d(torch_in, indices, kernel, stride, padding, output_size)
    assert torch.equal(actual, expected)
    assert is_channels_last(actual) == is_channels_last(expected)
    grad_output = torch.randn_like(expected)
    actual.backward(grad_output)
    expected.backward(grad_output)
    assert torch.equal(fast_in.grad, torch_in.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dtypes(dtype):
    values, indices = F.max_pool2d(torch.randn(2, 3, 8, 8).to(dtype), 2, return_indices=True)
    assert torch.equal(
        fastconv.max_unpool2d(values, indices, 2), F.max_unpool2d(values, indices, 2)
    )


def test_gradcheck():
    values, indices = pooled((1, 2, 6, 6), 2)
    values.requires_grad_()
    fn = lambda v: fastconv.max_unpool2d(v, indices, 2)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (values,))
    assert torch.autograd.gradgradcheck(fn, (values,))


def test_roundtrip_keeps_only_the_maxima():
    x = torch.randn(2, 4, 8, 8)
    values, indices = fastconv.max_pool2d(x, 2, return_indices=True)
    restored = fastconv.max_unpool2d(values, indices, 2)
    kept = restored != 0
    assert torch.equal(restored[kept], x[kept])
    assert kept.sum() == values.numel()


def test_module_pair_like_torch():
    pool, unpool = fastconv.nn.MaxPool2d(2, return_indices=True), fastconv.nn.MaxUnpool2d(2)
    x = torch.randn(1, 1, 5, 5)
    out, idx = pool(x)
    expected = torch.nn.MaxUnpool2d(2)(
        *torch.nn.MaxPool2d(2, return_indices=True)(x), output_size=x.size()
    )
    assert torch.equal(unpool(out, idx, output_size=x.size()), expected)


def test_sliced_channels_last_input_gives_channels_last_output():
    """torch's layout rule (suggest_memory_format) for a sliced channels_last input."""
    x = torch.randn(2, 8, 4, 8, dtype=torch.float64)
    pooled, indices = F.max_pool2d(x, 2, return_indices=True)

    def sliced(t):  # the same values in every other row of a channels_last buffer
        wide = torch.zeros(2, 8, 4, 4, dtype=t.dtype).to(memory_format=torch.channels_last)
        wide[:, :, ::2] = t
        return wide[:, :, ::2]

    # (torch's own backward fails on this input: a view of the sliced gradient)
    _, (_, (expected,)) = check_against_torch(
        fastconv.max_unpool2d, F.max_unpool2d, sliced(pooled), sliced(indices), 2, backward=False
    )
    assert expected.is_contiguous(memory_format=torch.channels_last)
