"""fastconv.convert / revert: which modules are replaced, that the replacement shares the replaced
module's state, what is reported, and that converted models compute what the originals do."""

import pytest
import torch
from torch import nn

import fastconv
from architectures import LeNet5, ResNet18
from fastconv.convert import FASTCONV_CLASS
from helpers import assert_close, num_threads

FASTCONV_TYPES = tuple(FASTCONV_CLASS.values())


class SubclassedConv(nn.Conv2d):
    pass


class PoolUnpool(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)

    def forward(self, x):
        return self.unpool(*self.pool(x))


def small_model():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        PoolUnpool(),
        nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2, padding_mode="reflect"),
        nn.MaxPool2d(3, 2, 1, ceil_mode=True),
    )


def types_of(model):
    return [type(m) for m in model.modules()]


def test_converts_exactly_the_torch_classes():
    model = fastconv.convert(small_model())
    assert types_of(model) == [
        nn.Sequential,
        fastconv.nn.Conv2d,
        nn.BatchNorm2d,
        nn.ReLU,
        PoolUnpool,
        fastconv.nn.MaxPool2d,
        fastconv.nn.MaxUnpool2d,
        fastconv.nn.Conv2d,
        fastconv.nn.MaxPool2d,
    ]
    assert fastconv.conversion_report(model).converted == ["0", "3.pool", "3.unpool", "4", "5"]
    # The architectures built from torch.nn convert into the ones built from fastconv.nn.
    assert types_of(fastconv.convert(ResNet18(nn))) == types_of(ResNet18(fastconv.nn))


def test_replacement_shares_state_and_keeps_hooks_mode_and_requires_grad():
    model = small_model()
    conv, bn = model[0], model[1]
    conv.bias.requires_grad_(False)
    model[4].eval()  # a module in eval mode inside a model in training mode
    calls = []
    kept = conv.register_forward_hook(lambda m, args, out: calls.append("forward"))
    conv.register_forward_pre_hook(lambda m, args: calls.append("pre"))
    conv.register_full_backward_hook(lambda m, grad_in, grad_out: calls.append("backward"))
    removed = conv.register_forward_hook(lambda m, args, out: calls.append("removed"))

    assert fastconv.convert(model, inplace=True) is model
    new = model[0]
    assert type(new) is fastconv.nn.Conv2d and new is not conv
    assert new.weight is conv.weight and new.bias is conv.bias and model[1] is bn
    assert not new.bias.requires_grad and new.weight.requires_grad
    assert model.training and new.training and not model[4].training
    removed.remove()  # a handle taken before the conversion still removes the hook

    model(torch.randn(2, 3, 8, 8, requires_grad=True)).sum().backward()
    assert calls == ["pre", "forward", "backward"]
    assert conv.weight.grad is not None and conv.bias.grad is None
    kept.remove()
    calls.clear()
    model(torch.randn(2, 3, 8, 8))
    assert calls == ["pre"]


def test_keeps_dtype_and_device():
    model = fastconv.convert(small_model().double())
    assert all(p.dtype == torch.float64 and p.device.type == "cpu" for p in model.parameters())
    with torch.device("meta"):  # fastconv runs on meta tensors too: shapes only
        meta_model = fastconv.convert(small_model())
    assert fastconv.conversion_report(meta_model).skipped == []
    assert meta_model(torch.empty(2, 3, 8, 8, device="meta")).shape == (2, 8, 5, 5)


def test_default_works_on_a_copy():
    original = small_model()
    model = fastconv.convert(original)
    assert not any(isinstance(m, FASTCONV_TYPES) for m in original.modules())
    assert model[0].weight is not original[0].weight
    assert torch.equal(model[0].weight, original[0].weight)


def test_module_registered_twice_is_replaced_once():
    conv = nn.Conv2d(3, 3, 3)
    model = fastconv.convert(nn.Sequential(conv, nn.ReLU(), conv), inplace=True)
    assert type(model[0]) is fastconv.nn.Conv2d and model[0] is model[2]
    assert fastconv.conversion_report(model).converted == ["0"]


def test_converts_a_bare_module():
    conv = nn.Conv2d(3, 4, 3)
    converted = fastconv.convert(conv, inplace=True)
    assert type(converted) is fastconv.nn.Conv2d and converted.weight is conv.weight
    assert fastconv.conversion_report(converted).converted == [""]


def test_reports_what_it_leaves_alone():
    integer_conv = nn.Conv2d(2, 2, 3)
    integer_conv.weight = nn.Parameter(integer_conv.weight.detach().to(torch.int32), False)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3),
        SubclassedConv(2, 2, 3),
        integer_conv,
        nn.Sequential(nn.Conv2d(2, 2, 1), nn.MaxPool2d(2)),
        nn.Conv2d(2, 2, 1),
    )
    model = fastconv.convert(model, exclude=["3", nn.MaxPool2d])
    report = fastconv.conversion_report(model)
    assert report.converted == ["0", "4"]
    assert [(s.name, s.type) for s in report.skipped] == [
        ("1", "SubclassedConv"),
        ("2", "Conv2d"),
        ("3.0", "Conv2d"),
        ("3.1", "MaxPool2d"),
    ]
    reasons = [s.reason for s in report.skipped]
    assert "subclass of torch.nn.Conv2d" in reasons[0]
    assert "dtype torch.int32" in reasons[1]
    assert reasons[2:] == ["excluded by '3'", "excluded by '3'"]  # a name matches what it contains
    assert "3.1 (MaxPool2d): excluded by '3'" in str(report)
    assert type(model[1]) is SubclassedConv and type(model[3][1]) is nn.MaxPool2d


def test_include_selects_by_type_and_by_pattern():
    model = fastconv.convert(ResNet18(nn), include=[nn.MaxPool2d, "layer4.*.conv?"])
    converted = fastconv.conversion_report(model).converted
    assert converted == [
        "maxpool",
        "layer4.0.conv1",
        "layer4.0.conv2",
        "layer4.1.conv1",
        "layer4.1.conv2",
    ]
    skipped = fastconv.conversion_report(model).skipped
    assert len(skipped) == 20 - 4 and {s.reason for s in skipped} == {"not selected by include"}
    # excluding by type wins over including by name
    model = fastconv.convert(ResNet18(nn), include="layer4", exclude=nn.Conv2d)
    assert fastconv.conversion_report(model).converted == []


def test_conversion_report_of_an_unconverted_model():
    with pytest.raises(KeyError, match="not returned by fastconv.convert"):
        fastconv.conversion_report(nn.Conv2d(1, 1, 1))


def test_revert_restores_the_torch_classes_sharing_state():
    model = fastconv.convert(small_model())
    reverted = fastconv.revert(model)
    assert types_of(reverted) == types_of(small_model())
    assert isinstance(model[0], fastconv.nn.Conv2d)  # inplace=False: model is untouched
    assert fastconv.revert(model, inplace=True) is model
    assert types_of(model) == types_of(small_model())
    fast = fastconv.convert(ResNet18(nn))
    torch_model = fastconv.revert(fast, inplace=True)
    assert types_of(torch_model) == types_of(ResNet18(nn))
    assert all(p is q for p, q in zip(torch_model.parameters(), fast.parameters()))


def test_state_dicts_load_both_ways():
    original = LeNet5(nn)
    model = fastconv.convert(LeNet5(nn))
    assert model.state_dict().keys() == original.state_dict().keys()
    model.load_state_dict(original.state_dict())
    x = torch.randn(3, 1, 32, 32)
    assert_close(model(x), original(x))
    other = fastconv.convert(LeNet5(nn))
    original.load_state_dict(other.state_dict())
    assert_close(original(x), other(x))
    fastconv.revert(other).load_state_dict(model.state_dict())


@pytest.mark.parametrize("train", [False, True])
def test_converted_model_matches_the_original(train):
    original = LeNet5(nn).double().train(train)
    model = fastconv.convert(original)
    x = torch.randn(4, 1, 32, 32, dtype=torch.float64)
    out, expected = model(x), original(x)
    assert_close(out, expected)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    for (name, p), q in zip(model.named_parameters(), original.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=lambda m: f"{name}: {m}")


class EncoderDecoder(nn.Module):
    """Every convolution convert() knows: 2-d, transposed 2-d, 1-d and transposed 1-d."""

    def __init__(self):
        super().__init__()
        self.encode = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.decode = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.sequence = nn.Conv1d(4, 6, 5, padding=2, padding_mode="reflect")
        self.expand = nn.ConvTranspose1d(6, 2, 4, stride=2, groups=2)

    def forward(self, x):
        y = self.decode(torch.relu(self.encode(x)), output_size=x.shape[-2:])
        return self.expand(torch.relu(self.sequence(y.flatten(2))))


def test_converts_transposed_and_1d_convolutions():
    original = EncoderDecoder().double()
    model = fastconv.convert(original)
    assert types_of(model) == [
        EncoderDecoder,
        fastconv.nn.Conv2d,
        fastconv.nn.ConvTranspose2d,
        fastconv.nn.Conv1d,
        fastconv.nn.ConvTranspose1d,
    ]
    assert fastconv.conversion_report(model).converted == ["encode", "decode", "sequence", "expand"]
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    out, expected = model(x), original(x)
    assert_close(out, expected)
    out.sum().backward()
    expected.sum().backward()
    for p, q in zip(model.parameters(), original.parameters()):
        assert_close(p.grad, q.grad)
    assert types_of(fastconv.revert(model)) == types_of(original)
    scripted = torch.jit.script(model)
    assert_close(scripted(x), expected)


# Every layer class that fastconv has, or is getting, a module for. convert() must leave none of
# these exact classes in a torchvision network.
CONVERTIBLE = (
    nn.Conv1d,
    nn.Conv2d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.LPPool1d,
    nn.LPPool2d,
    nn.MaxUnpool1d,
    nn.MaxUnpool2d,
)
# A subset of torchvision's classification and segmentation models that holds every distinct
# class of CONVERTIBLE they use (a survey of all of them with weights=None found only Conv2d,
# MaxPool2d and AvgPool2d: AvgPool2d in the densenets and maxvit_t) and their configurations:
# dilated (segmentation backbones, ASPP), grouped (regnet, resnext-like), depthwise (mobilenets,
# efficientnet, convnext), ceil_mode pools (squeezenet, googlenet, inception), patch embeddings
# (swin), average pooling with and without padding (maxvit_t, densenet121).
# name: (builder arguments, input size, dtype, the CONVERTIBLE classes it holds)
COVERAGE_MODELS = {
    "resnet18": ({}, 64, torch.float64, {nn.Conv2d, nn.MaxPool2d}),
    "squeezenet1_1": ({}, 64, torch.float64, {nn.Conv2d, nn.MaxPool2d}),
    "googlenet": (
        {"init_weights": False, "aux_logits": False},
        64,
        torch.float64,
        {nn.Conv2d, nn.MaxPool2d},
    ),
    "inception_v3": (
        {"init_weights": False, "aux_logits": False},
        75,
        torch.float64,
        {nn.Conv2d, nn.MaxPool2d},
    ),
    "alexnet": ({}, 64, torch.float64, {nn.Conv2d, nn.MaxPool2d}),
    "shufflenet_v2_x0_5": ({}, 64, torch.float64, {nn.Conv2d, nn.MaxPool2d}),
    "mobilenet_v3_small": ({}, 64, torch.float64, {nn.Conv2d}),
    "mnasnet0_5": ({}, 64, torch.float64, {nn.Conv2d}),
    "efficientnet_b0": ({}, 64, torch.float64, {nn.Conv2d}),
    "regnet_x_400mf": ({}, 64, torch.float64, {nn.Conv2d}),
    "convnext_tiny": ({}, 64, torch.float64, {nn.Conv2d}),
    "swin_t": ({}, 64, torch.float64, {nn.Conv2d}),
    "densenet121": ({}, 64, torch.float64, {nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d}),
    "maxvit_t": ({}, 224, torch.float32, {nn.Conv2d, nn.AvgPool2d}),  # its attention needs 224x224
    "fcn_resnet50": (
        {"weights_backbone": None, "aux_loss": False},
        64,
        torch.float64,
        {nn.Conv2d, nn.MaxPool2d},
    ),
    "deeplabv3_resnet50": (
        {"weights_backbone": None, "aux_loss": False},
        64,
        torch.float64,
        {nn.Conv2d, nn.MaxPool2d},
    ),
    "deeplabv3_mobilenet_v3_large": (
        {"weights_backbone": None, "aux_loss": False},
        64,
        torch.float64,
        {nn.Conv2d},
    ),
    "lraspp_mobilenet_v3_large": ({"weights_backbone": None}, 64, torch.float64, {nn.Conv2d}),
}


@pytest.mark.parametrize("name", COVERAGE_MODELS)
def test_torchvision_models_keep_no_convertible_torch_layer(name):
    models = pytest.importorskip("torchvision.models")
    arguments, size, dtype, classes = COVERAGE_MODELS[name]
    original = models.get_model(name, weights=None, **arguments).to(dtype).eval()
    assert {
        type(m) for m in original.modules() if type(m) in CONVERTIBLE
    } == classes  # the table is right
    model = fastconv.convert(original)
    report = fastconv.conversion_report(model)
    assert report.skipped == [] and len(report.converted) > 0
    left = [
        f"{name} ({type(m).__name__})"
        for name, m in model.named_modules()
        if type(m) in CONVERTIBLE
    ]
    assert left == []
    x = torch.randn(1, 3, size, size, dtype=dtype)
    # small images: one thread is as fast, and immune to a loaded machine
    with num_threads(1), torch.no_grad():
        out, expected = model(x), original(x)
    if isinstance(expected, dict):  # segmentation models
        out, expected = out["out"], expected["out"]
    assert_close(out, expected)


class EveryNewPool(nn.Module):
    """The average, power-average and 1-d pooling layers, each once."""

    def __init__(self):
        super().__init__()
        self.pool2d = nn.Sequential(
            nn.AvgPool2d(3, 2, 1, count_include_pad=False), nn.LPPool2d(2, 2)
        )
        self.pool1d = nn.MaxPool1d(2, return_indices=True)
        self.unpool1d = nn.MaxUnpool1d(2)
        self.tail = nn.Sequential(nn.AvgPool1d(3, 1, 1), nn.LPPool1d(3, 2))

    def forward(self, x):
        y, indices = self.pool1d(self.pool2d(x).flatten(2))
        return self.tail(self.unpool1d(y, indices) + 1)


def test_converts_every_pooling_layer_and_back():
    original = EveryNewPool()
    model = fastconv.convert(original)
    assert types_of(model) == [
        EveryNewPool,
        nn.Sequential,
        fastconv.nn.AvgPool2d,
        fastconv.nn.LPPool2d,
        fastconv.nn.MaxPool1d,
        fastconv.nn.MaxUnpool1d,
        nn.Sequential,
        fastconv.nn.AvgPool1d,
        fastconv.nn.LPPool1d,
    ]
    assert fastconv.conversion_report(model).converted == [
        "pool2d.0",
        "pool2d.1",
        "pool1d",
        "unpool1d",
        "tail.0",
        "tail.1",
    ]
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64, requires_grad=True)
    out, expected = model(x), original(x)
    assert_close(out, expected)
    grad = torch.randn_like(out)
    assert_close(torch.autograd.grad(out, x, grad)[0], torch.autograd.grad(expected, x, grad)[0])
    assert types_of(fastconv.revert(model)) == types_of(original)
    skipped = fastconv.conversion_report(fastconv.convert(original, exclude=nn.AvgPool1d)).skipped
    assert [(s.name, s.type) for s in skipped] == [("tail.0", "AvgPool1d")]
