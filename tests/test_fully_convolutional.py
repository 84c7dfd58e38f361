"""fastconv.fully_convolutional: at the input size the new model returns the original's logits; on
a larger image each position of its class map is the original model on the corresponding crop
(networks without padding) or the original head on the corresponding window of the feature map
(padded networks, whose features near a crop's border differ); and what it cannot convert it
refuses, naming the layer."""

import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fastconv
from architectures import FullyConvolutionalLeNet, LeNet5

models = pytest.importorskip("torchvision.models")


class ValidVGG(nn.Module):
    """A small VGG-like classifier without padding, written in forward code as older tutorials do
    (x.view(x.shape[0], -1), F.relu, F.dropout): its class map is exactly the model on crops."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2)
        self.fc1 = nn.Linear(16 * 3 * 3, 32)
        self.fc2 = nn.Linear(32, 5)

    def forward(self, x):
        x = self.conv2(self.pool(F.relu(self.conv1(x))))
        x = x.view(x.shape[0], -1)
        x = F.dropout(F.relu(self.fc1(x)), 0.5, self.training)
        return self.fc2(x * 2.0)


def assert_crops(model, class_map, image, window, step, positions):
    """Each listed map position is `model` on the window x window crop `step` pixels apart."""
    for i, j in positions:
        crop = image[:, :, i * step : i * step + window, j * step : j * step + window]
        torch.testing.assert_close(
            class_map[:, :, i, j], model(crop), msg=lambda m: f"position {(i, j)}: {m}"
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("nn_namespace", [nn, fastconv.nn], ids=["torch.nn", "fastconv.nn"])
def test_lenet5_slides_over_a_larger_image(dtype, nn_namespace):
    lenet = LeNet5(nn_namespace).to(dtype).eval()
    fcn = fastconv.fully_convolutional(lenet, (1, 1, 32, 32))
    converted = [m for m in fcn.modules() if isinstance(m, nn.Conv2d)][-3:]
    assert [type(m) for m in converted] == [fastconv.nn.Conv2d] * 3
    assert [m.kernel_size for m in converted] == [(5, 5), (1, 1), (1, 1)]
    assert not any(isinstance(m, (nn.Linear, nn.Flatten)) for m in fcn.modules())

    x = torch.randn(3, 1, 32, 32, dtype=dtype)
    with torch.no_grad():
        torch.testing.assert_close(fcn(x), lenet(x)[:, :, None, None])  # (3, 10, 1, 1)
        image = torch.randn(2, 1, 48, 56, dtype=dtype)
        class_map = fcn(image)
        assert class_map.shape == (2, 10, 5, 7)  # windows 4 pixels apart: (48 - 32) / 4 + 1, ...
        assert_crops(lenet, class_map, image, 32, 4, [(0, 0), (2, 3), (4, 6), (3, 1)])
        # the hand-written twin of examples/architectures.py agrees
        twin = FullyConvolutionalLeNet.from_lenet5(lenet, fastconv.nn)
        torch.testing.assert_close(class_map, twin(image))
    # the receptive field of each class score is its 32x32 window
    scores = fastconv.summary(fcn, (1, 1, 32, 96)).rows[-1]
    assert scores.output_shape == ((1, 10, 1, 17),) and scores.receptive_field.size == (32, 32)


def test_leaves_the_original_alone_and_copies_parameters():
    lenet = LeNet5(nn).train()
    lenet.classifier[3].bias.requires_grad_(False)
    state = {k: v.clone() for k, v in lenet.state_dict().items()}
    fcn = fastconv.fully_convolutional(lenet, (1, 1, 32, 32))
    assert [type(m) for m in lenet.classifier] == [
        nn.Flatten,
        nn.Linear,
        nn.Tanh,
        nn.Linear,
        nn.Tanh,
        nn.Linear,
    ]
    assert all(torch.equal(v, state[k]) for k, v in lenet.state_dict().items())
    assert fcn.training and all(m.training for m in fcn.modules())
    # the batch norm-free propagation left the copies' values alone, and shares nothing
    originals = {p.data_ptr() for p in lenet.parameters()}
    assert not any(p.data_ptr() in originals for p in fcn.parameters())
    conv = fcn.get_submodule("classifier.1")
    torch.testing.assert_close(conv.weight, lenet.classifier[1].weight.view(120, 16, 5, 5))
    assert not fcn.get_submodule("classifier.3").bias.requires_grad and conv.weight.requires_grad
    # gradients flow to the converted layers
    fcn(torch.randn(2, 1, 40, 40)).sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.shape == (120, 16, 5, 5)


def test_batch_norm_statistics_are_not_updated():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    ).train()
    fcn = fastconv.fully_convolutional(model, (1, 1, 8, 8))  # batch 1 in training mode would fail
    assert torch.equal(fcn.get_submodule("1").running_mean, torch.zeros(4)) and fcn.training


def test_forward_code_with_view_functional_calls_and_scalars():
    model = ValidVGG().double().eval()
    fcn = fastconv.fully_convolutional(model, (2, 3, 16, 16))  # 14 -> 7 -> 3: fc1 becomes 3x3
    assert fcn.get_submodule("fc1").kernel_size == (3, 3) and fcn.get_submodule(
        "fc2"
    ).kernel_size == (1, 1)
    # the view, and the batch size read for it, are gone; the rest is the traced forward
    assert [n.target for n in fcn.graph.nodes if n.op != "call_module"] == [
        "x",
        F.relu,
        F.relu,
        F.dropout,
        operator.mul,
        "output",
    ]
    with torch.no_grad():
        x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
        torch.testing.assert_close(fcn(x), model(x)[:, :, None, None])
        image = torch.randn(1, 3, 40, 28, dtype=torch.float64)
        class_map = fcn(image)
        assert class_map.shape == (1, 5, 7, 4)  # one window every 4 pixels
        assert_crops(model, class_map, image, 16, 4, [(0, 0), (6, 3), (3, 2)])


def head_on_feature_windows(model, features, size):
    """The original head (avgpool, flatten, classifier) on every size x size window of the
    feature map: what each position of the class map must be."""
    rows, cols = features.shape[2] - size + 1, features.shape[3] - size + 1
    return torch.stack(
        [
            torch.stack(
                [
                    model.classifier(
                        torch.flatten(model.avgpool(features[:, :, i : i + size, j : j + size]), 1)
                    )
                    for j in range(cols)
                ],
                -1,
            )
            for i in range(rows)
        ],
        -2,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_alexnet(dtype):
    model = models.alexnet(weights=None).to(dtype).eval()
    fcn = fastconv.fully_convolutional(model, (1, 3, 224, 224))
    assert fcn.get_submodule("classifier.1").kernel_size == (
        6,
        6,
    )  # AdaptiveAvgPool2d((6, 6)) dropped
    with torch.no_grad():
        x = torch.randn(2, 3, 224, 224, dtype=dtype)
        torch.testing.assert_close(fcn(x), model(x)[:, :, None, None])
        image = torch.randn(1, 3, 256, 288, dtype=dtype)  # features 7x8: a 2x3 map, 32 pixels apart
        class_map = fcn(image)
        assert class_map.shape == (1, 1000, 2, 3)
        torch.testing.assert_close(
            class_map, head_on_feature_windows(model, model.features(image), 6)
        )


@pytest.mark.slow
def test_vgg16():
    model = models.vgg16(weights=None).eval()
    fcn = fastconv.fully_convolutional(model, (1, 3, 224, 224))
    assert fcn.get_submodule("classifier.0").kernel_size == (7, 7)
    assert [fcn.get_submodule(f"classifier.{i}").kernel_size for i in (3, 6)] == [(1, 1), (1, 1)]
    with torch.no_grad():
        x = torch.randn(1, 3, 224, 224)
        torch.testing.assert_close(fcn(x), model(x)[:, :, None, None])
        image = torch.randn(1, 3, 256, 224)  # features 8x7: a 2x1 map
        class_map = fcn(image)
        assert class_map.shape == (1, 1000, 2, 1)
        torch.testing.assert_close(
            class_map, head_on_feature_windows(model, model.features(image), 7)
        )


def refused(model, input_size, *words):
    with pytest.raises(ValueError) as error:
        fastconv.fully_convolutional(model, input_size)
    message = str(error.value)
    assert message.startswith("fastconv.fully_convolutional: ")
    for word in words:
        assert word in message, message
    return message


class MeanThenLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x):
        if x.sum() > 0:  # control flow on values: fx cannot trace it
            x = -x
        return self.fc(torch.flatten(x, 1))


class SubclassedLinear(nn.Linear):
    pass


def test_refusals_name_the_layer():
    refused(
        models.resnet18(weights=None),
        (1, 3, 224, 224),
        "adaptive pooling AdaptiveAvgPool2d 'avgpool' maps 1x512x7x7 to 1x512x1x1",
    )
    # alexnet's AdaptiveAvgPool2d((6, 6)) is an identity at 224 only
    refused(
        models.alexnet(weights=None), (1, 3, 256, 256), "AdaptiveAvgPool2d 'avgpool'", "1x256x7x7"
    )
    refused(MeanThenLinear(), (1, 3, 8, 8), "Linear 'fc' is fed by 'mean' (1x4 at input_size)")
    refused(
        nn.Sequential(
            nn.Conv2d(1, 2, 3), nn.Flatten(), nn.BatchNorm1d(2 * 6 * 6), nn.Linear(72, 3)
        ),
        (2, 1, 8, 8),
        "BatchNorm1d '2' takes the output of the flatten Flatten '1'",
        "elementwise",
    )
    refused(
        nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.Softmax(1), nn.Linear(4, 2)),
        (1, 3, 2, 2),
        "Softmax '2' takes the output of the Linear '1'",
    )
    refused(
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()),
        (1, 1, 5, 5),
        "the flatten Flatten '1' reaches the model's output without a Linear",
    )
    refused(
        nn.Sequential(nn.Linear(8, 2)),
        (1, 1, 4, 8),
        "Linear '0' is fed by the model's input (1x1x4x8 at input_size)",
    )
    refused(DataDependent(), (1, 3, 4, 4), "torch.fx cannot trace DataDependent")
    # fx traces into a Linear subclass defined outside torch.nn, and finds F.linear
    refused(
        nn.Sequential(nn.Flatten(), SubclassedLinear(12, 2)),
        (1, 3, 2, 2),
        "'linear' (linear in SubclassedLinear '1'): only torch.nn.Linear modules are converted",
    )
    attention = nn.MultiheadAttention(4, 1)  # its out_proj: torch.nn's own subclass of Linear
    refused(
        nn.Sequential(nn.Flatten(), attention.out_proj),
        (1, 1, 2, 2),
        "NonDynamicallyQuantizableLinear '1' is a subclass of torch.nn.Linear",
    )
    shared = nn.Linear(4, 4)
    refused(
        nn.Sequential(nn.Flatten(), shared, shared),
        (1, 1, 2, 2),
        "Linear '1' is called more than once",
    )
    refused(LeNet5(nn), (1, 32, 32), "input_size must be 4 positive ints")
    refused(
        LeNet5(nn), (1, 1, 16, 16), "running the model on zeros of input_size (1, 1, 16, 16) failed"
    )
