"""Complex convolutions (conv2d, conv_transpose2d, conv1d, conv_transpose1d; complex64 and
complex128) against torch's, with gradients, modules, TorchScript and the mixed-dtype errors."""

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import fastconv
import fastconv.functional as FC

COMPLEX = (torch.complex64, torch.complex128)

# name -> (f(lib, x, w, b), x shape, w shape, bias size)
CASES = {
    "conv2d": (
        lambda lib, x, w, b: lib.conv2d(x, w, b, stride=(2, 1), padding=1, groups=2),
        (2, 4, 7, 6),
        (6, 2, 3, 3),
        6,
    ),
    "conv2d_same_dilated": (
        lambda lib, x, w, b: lib.conv2d(x, w, b, padding="same", dilation=2),
        (1, 3, 6, 7),
        (2, 3, 2, 3),
        2,
    ),
    "conv_transpose2d": (
        lambda lib, x, w, b: lib.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
        (2, 4, 4, 5),
        (4, 3, 3, 3),
        3,
    ),
    "conv1d": (lambda lib, x, w, b: lib.conv1d(x, w, b, stride=2), (2, 4, 9), (5, 4, 3), 5),
    "conv_transpose1d": (
        lambda lib, x, w, b: lib.conv_transpose1d(x, w, b, stride=3, groups=2),
        (2, 4, 5),
        (4, 1, 2),
        2,
    ),
}


def _tensors(name, dtype, requires_grad=False):
    torch.manual_seed(0)
    _, x_shape, w_shape, bias_size = CASES[name]
    return [
        torch.randn(*shape, dtype=dtype, requires_grad=requires_grad)
        for shape in (x_shape, w_shape, (bias_size,))
    ]


@pytest.mark.parametrize("dtype", COMPLEX)
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("with_bias", (True, False))
def test_values_and_gradients_match_torch(name, dtype, with_bias):
    f = CASES[name][0]
    results = []
    for lib in (FC, F):
        x, w, b = _tensors(name, dtype, requires_grad=True)
        b = b if with_bias else None
        output = f(lib, x, w, b)
        output.abs().pow(2).sum().backward()
        results.append((output, x.grad, w.grad, None if b is None else b.grad))
    tolerance = dict(rtol=1e-5, atol=1e-5) if dtype is torch.complex64 else {}
    for actual, expected in zip(*results):
        torch.testing.assert_close(actual, expected, **tolerance)


@pytest.mark.parametrize("name", CASES)
def test_gradcheck_and_gradgradcheck(name):
    f = CASES[name][0]
    x, w, b = _tensors(name, torch.complex128, requires_grad=True)
    # fast_mode: a random projection of the Jacobian (complex inputs double the full check's work)
    assert gradcheck(lambda x, w, b: f(FC, x, w, b), (x, w, b), fast_mode=True)
    assert gradgradcheck(lambda x, w, b: f(FC, x, w, b), (x, w, b), fast_mode=True)


def test_conjugate_views_and_unbatched_input():
    x, w, b = _tensors("conv2d", torch.complex64)
    conj_x, conj_w = x.conj(), w.conj()  # lazily conjugated views (the conj bit)
    f = CASES["conv2d"][0]
    torch.testing.assert_close(f(FC, conj_x, conj_w, b), f(F, conj_x, conj_w, b))
    torch.testing.assert_close(FC.conv2d(x[0], w, groups=2), F.conv2d(x[0], w, groups=2))


def test_complex_modules_scripted_and_converted():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.ConvTranspose2d(3, 2, 2, stride=2)
    ).to(torch.complex64)
    converted = fastconv.convert(model)
    assert fastconv.conversion_report(converted).converted == ["0", "1"]
    x = torch.randn(2, 2, 5, 5, dtype=torch.complex64)
    expected = model(x)
    torch.testing.assert_close(converted(x), expected, rtol=1e-5, atol=1e-5)
    scripted = torch.jit.script(fastconv.nn.Conv2d(2, 3, 3).to(torch.complex64))
    torch.testing.assert_close(scripted(x), scripted.forward(x))
    assert scripted(x).dtype is torch.complex64


MIXED = [
    # (op, input dtype, weight shape and dtype, bias dtype)
    ("conv2d", torch.complex64, (3, 2, 3, 3), torch.float32, None),
    ("conv2d", torch.float32, (3, 2, 3, 3), torch.complex64, None),
    ("conv2d", torch.complex64, (3, 2, 3, 3), torch.complex128, None),
    ("conv2d", torch.complex64, (3, 5, 3, 3), torch.complex128, None),  # types before shapes
    ("conv2d", torch.complex64, (3, 2, 3, 3), torch.complex64, torch.float32),
    ("conv_transpose2d", torch.complex64, (2, 3, 3, 3), torch.float32, None),
    ("conv_transpose2d", torch.complex64, (2, 3, 3, 3), torch.complex128, None),
    ("conv_transpose2d", torch.complex64, (2, 3, 3, 3), torch.complex64, torch.float32),
]


@pytest.mark.parametrize("op, input_dtype, weight_shape, weight_dtype, bias_dtype", MIXED)
def test_mixed_dtypes_raise_torchs_error(op, input_dtype, weight_shape, weight_dtype, bias_dtype):
    x = torch.randn(1, 2, 5, 5, dtype=input_dtype)
    w = torch.randn(*weight_shape, dtype=weight_dtype)
    b = None if bias_dtype is None else torch.randn(3, dtype=bias_dtype)
    with pytest.raises(RuntimeError) as expected:
        getattr(F, op)(x, w, b)
    with pytest.raises(RuntimeError) as actual:
        getattr(FC, op)(x, w, b)
    assert str(actual.value) == str(expected.value)
