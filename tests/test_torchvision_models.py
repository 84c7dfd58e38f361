"""fastconv.convert on torchvision's networks (random weights, nothing downloaded): the converted
network computes what the original does, outputs in eval mode and parameter gradients in train
mode, and convert() reports what it replaced."""

from collections import Counter

import pytest
import torch

import fastconv
from helpers import TOLERANCES, assert_close

models = pytest.importorskip("torchvision.models")


# name: (builder, input shape, the fastconv modules convert() puts in). convert() leaves nothing
# alone in any of these: torchvision uses the exact torch classes, in configurations fastconv
# supports (googlenet's and squeezenet's pools use ceil_mode, fcn_resnet50's backbone dilation).
MODELS = {
    "resnet18": (lambda: models.resnet18(), (2, 3, 64, 64), {"Conv2d": 20, "MaxPool2d": 1}),
    "squeezenet1_1": (
        lambda: models.squeezenet1_1(),
        (2, 3, 64, 64),
        {"Conv2d": 26, "MaxPool2d": 3},
    ),
    "alexnet": (
        lambda: models.alexnet(),
        (2, 3, 64, 64),
        {"Conv2d": 5, "MaxPool2d": 3},
    ),  # needs >= 63x63
    "vgg11_bn": (lambda: models.vgg11_bn(), (2, 3, 64, 64), {"Conv2d": 8, "MaxPool2d": 5}),
    "googlenet": (
        lambda: models.googlenet(aux_logits=False, init_weights=True),
        (2, 3, 64, 64),
        {"Conv2d": 57, "MaxPool2d": 13},
    ),
    "mobilenet_v2": (lambda: models.mobilenet_v2(), (2, 3, 64, 64), {"Conv2d": 52}),
    "fcn_resnet50": (  # ResNet-50 with dilation 2 and 4 in layer3 and layer4 (output stride 8)
        lambda: models.segmentation.fcn_resnet50(
            weights=None, weights_backbone=None, aux_loss=False
        ),
        (2, 3, 64, 64),
        {"Conv2d": 55, "MaxPool2d": 1},
    ),
}
QUICK = {"resnet18", "squeezenet1_1"}  # the others take several seconds each on 2 cores
CASES = [pytest.param(name, marks=() if name in QUICK else pytest.mark.slow) for name in MODELS]


def output_of(result):
    return (
        result["out"] if isinstance(result, dict) else result
    )  # segmentation models return a dict


def calibrate_batchnorm(model, x):
    """Running statistics = the statistics of x. With torchvision's initial ones (mean 0, var 1)
    activations shrink layer by layer in eval mode, and googlenet's output would not depend on its
    input at all."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: after one batch, that batch's statistics
    model.train()
    with torch.no_grad():
        model(x)


def fastconv_module_counts(model):
    return Counter(
        type(m).__name__ for m in model.modules() if type(m).__module__.startswith("fastconv")
    )


@pytest.mark.parametrize("name", CASES)
def test_converted_model_matches_the_original(name):
    build, shape, expected_counts = MODELS[name]
    torch.manual_seed(0)
    original = build()
    x = torch.randn(shape)
    calibrate_batchnorm(original, x)
    model = fastconv.convert(original)

    report = fastconv.conversion_report(model)
    assert report.skipped == []
    assert fastconv_module_counts(model) == expected_counts
    assert len(report.converted) == sum(expected_counts.values())
    assert fastconv_module_counts(original) == {}  # inplace=False: the original is untouched

    # Eval, float32: fastconv is as accurate as torch, measured against the same network evaluated
    # in float64. (Over fcn_resnet50's 53 convolutions torch's own float32 rounding reaches 1.3e-4,
    # beyond the float32 TOLERANCES, so a direct comparison would test the depth, not fastconv.)
    original.eval()
    model.eval()
    with torch.no_grad():
        out, expected = output_of(model(x)), output_of(original(x))
        exact = output_of(original.double()(x.double()))
    fastconv_error = (out.double() - exact).abs().max()
    torch_error = (expected.double() - exact).abs().max()
    assert fastconv_error <= 2 * torch_error + 1e-6 * exact.abs().max(), (
        fastconv_error,
        torch_error,
    )
    assert not torch.allclose(exact[0], exact[1])  # the output depends on the input

    # Train mode (batch statistics; dropout draws the same masks after the same seed): the same
    # parameter gradients. In float64: batch norm over a batch this small is ill-conditioned enough
    # (googlenet's gradients reach 1e3) to amplify float32 rounding past any tolerance that would
    # still catch a wrong kernel.
    for net in (original, model):  # model is a deep copy: it needs converting too
        net.double().train()
    x = x.double()
    torch.manual_seed(1)
    expected = output_of(original(x))
    torch.manual_seed(1)
    out = output_of(model(x))
    assert_close(out, expected)
    grad = torch.randn_like(expected)
    out.backward(grad)
    expected.backward(grad)
    rtol, atol = TOLERANCES[torch.float64]
    for (param_name, p), q in zip(model.named_parameters(), original.parameters()):
        torch.testing.assert_close(
            p.grad, q.grad, rtol=rtol, atol=atol, msg=lambda m: f"{param_name}: {m}"
        )
