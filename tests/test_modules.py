"""fastconv.nn as a drop-in for torch.nn: the module API, and whole networks built from it."""

import pytest
import torch

import fastconv
from architectures import FullyConvolutionalLeNet, LeNet5, ResNet18


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(in_channels=3, out_channels=8, kernel_size=3),
        dict(
            in_channels=4,
            out_channels=8,
            kernel_size=(3, 5),
            stride=2,
            padding=(1, 2),
            dilation=2,
            groups=2,
            bias=False,
        ),
        dict(in_channels=4, out_channels=4, kernel_size=3, padding="same", groups=4),
        dict(in_channels=3, out_channels=5, kernel_size=3, padding=2, padding_mode="reflect"),
        dict(in_channels=3, out_channels=5, kernel_size=3, padding=1, padding_mode="replicate"),
        dict(in_channels=3, out_channels=5, kernel_size=3, padding=(1, 2), padding_mode="circular"),
    ],
)
def test_conv2d_module_is_a_drop_in(kwargs):
    torch.manual_seed(1)
    reference = torch.nn.Conv2d(**kwargs).double()
    torch.manual_seed(1)
    module = fastconv.nn.Conv2d(**kwargs).double()
    assert isinstance(module, torch.nn.Conv2d)
    assert repr(module) == repr(reference)
    assert module.state_dict().keys() == reference.state_dict().keys()
    for key, value in reference.state_dict().items():
        assert torch.equal(module.state_dict()[key], value)  # same initialisation
    x = torch.randn(2, kwargs["in_channels"], 9, 10, dtype=torch.float64)
    torch.testing.assert_close(module(x), reference(x))


def test_state_dict_loads_both_ways():
    reference, module = torch.nn.Conv2d(3, 4, 3), fastconv.nn.Conv2d(3, 4, 3)
    module.load_state_dict(reference.state_dict())
    x = torch.randn(1, 3, 6, 6)
    torch.testing.assert_close(module(x), reference(x))
    reference.load_state_dict(fastconv.nn.Conv2d(3, 4, 3).state_dict())


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=True),
        dict(kernel_size=(3, 2), return_indices=True),
    ],
)
def test_pool_modules_are_drop_ins(kwargs):
    reference, module = torch.nn.MaxPool2d(**kwargs), fastconv.nn.MaxPool2d(**kwargs)
    assert isinstance(module, torch.nn.MaxPool2d) and repr(module) == repr(reference)
    x = torch.randn(2, 3, 9, 9)
    actual, expected = module(x), reference(x)
    if kwargs.get("return_indices"):
        assert torch.equal(actual[0], expected[0]) and torch.equal(actual[1], expected[1])
        unpool = fastconv.nn.MaxUnpool2d(kwargs["kernel_size"])
        assert repr(unpool) == repr(torch.nn.MaxUnpool2d(kwargs["kernel_size"]))
        assert torch.equal(
            unpool(*actual, output_size=x.shape),
            torch.nn.MaxUnpool2d(kwargs["kernel_size"])(*expected, output_size=x.shape),
        )
    else:
        assert torch.equal(actual, expected)


def twins(architecture, dtype=torch.float64):
    """The architecture built from torch.nn and from fastconv.nn, with the same weights."""
    reference = architecture(torch.nn).to(dtype)
    model = architecture(fastconv.nn).to(dtype)
    model.load_state_dict(reference.state_dict())
    return model, reference


def assert_same_outputs_and_gradients(model, reference, x, train):
    model.train(train)
    reference.train(train)
    out, expected = model(x), reference(x)
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(expected)
    out.backward(grad)
    expected.backward(grad)
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("train", [False, True])
def test_lenet5(train):
    model, reference = twins(LeNet5)
    assert_same_outputs_and_gradients(
        model, reference, torch.randn(4, 1, 32, 32, dtype=torch.float64), train
    )


def test_fully_convolutional_lenet_gives_a_class_map():
    model, reference = twins(FullyConvolutionalLeNet)
    x = torch.randn(2, 1, 64, 64, dtype=torch.float64)
    assert model(x).shape == (2, 10, 9, 9)  # a 9x9 grid of class scores on a 64x64 image
    assert_same_outputs_and_gradients(model, reference, x, train=True)
    # On a 32x32 image it computes exactly what LeNet-5 with the same weights does.
    lenet = LeNet5(fastconv.nn).double()
    model = FullyConvolutionalLeNet.from_lenet5(lenet, fastconv.nn)
    digit = x[:, :, :32, :32]
    torch.testing.assert_close(model(digit).flatten(1), lenet(digit))
    # and on a larger image, at every 4th position, what LeNet-5 computes on the 32x32 window there
    torch.testing.assert_close(model(x)[:, :, 2, 5], lenet(x[:, :, 8:40, 20:52]))


@pytest.mark.parametrize("train", [False, True])
def test_resnet18(train):
    torch.manual_seed(0)
    model, reference = twins(ResNet18)
    assert sum(isinstance(m, fastconv.nn.Conv2d) for m in model.modules()) == 20
    assert_same_outputs_and_gradients(
        model, reference, torch.randn(2, 3, 64, 64, dtype=torch.float64), train
    )
