"""Converted models script (torch.jit.script) and trace (torch.jit.trace), and the scripted and
traced models compute what the eager ones do, through fastconv's ops."""

import io

import pytest
import torch

import fastconv
from architectures import FullyConvolutionalLeNet, LeNet5

torchvision = pytest.importorskip("torchvision")
# torch >= 2.10 deprecates TorchScript (script, trace, save, load), but it still works.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


class EveryLayerKind(torch.nn.Module):
    """Each way torch's modules hold their arguments: int or pair, padding strings, padding
    modes, pooling with indices, unpooling to a given size."""

    def __init__(self):
        super().__init__()
        self.same = torch.nn.Conv2d(3, 8, 3, padding="same")
        self.reflect = torch.nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect")
        self.valid = torch.nn.Conv2d(
            8, 8, (3, 2), stride=2, dilation=(1, 2), padding="valid", groups=2
        )
        self.pool = torch.nn.MaxPool2d(2, return_indices=True)
        self.unpool = torch.nn.MaxUnpool2d(2)
        self.pool_pairs = torch.nn.MaxPool2d((3, 2), stride=(2, 1), padding=1, ceil_mode=True)

    def forward(self, x):
        y = self.reflect(self.same(x))
        values, indices = self.pool(y)
        y = self.unpool(values, indices, output_size=y.shape[-2:])
        return self.pool_pairs(self.valid(y))


def script(model):
    return torch.jit.script(model)


def fastconv_ops(scripted) -> set:
    graph = str(scripted.inlined_graph)
    return {
        name
        for name in ("conv2d", "max_pool2d_with_indices", "max_unpool2d")
        if f"fastconv::{name}(" in graph
    }


def reloaded(scripted):
    """A scripted model saved and loaded again: it must not depend on Python code."""
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


@pytest.mark.parametrize("batch_shape", [(2,), ()], ids=["batched", "unbatched"])
def test_scripted_layers_agree_with_eager(batch_shape):
    reference = EveryLayerKind().eval()
    model = fastconv.convert(reference)
    scripted = script(model)
    assert fastconv_ops(scripted) == {"conv2d", "max_pool2d_with_indices", "max_unpool2d"}
    x = torch.randn(*batch_shape, 3, 17, 16)
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(scripted(x), expected)
        assert torch.equal(reloaded(scripted)(x), expected)
        torch.testing.assert_close(expected, reference(x), rtol=1e-4, atol=1e-4)


def test_scripted_model_trains_like_eager():
    torch.manual_seed(0)
    model = fastconv.convert(LeNet5(torch.nn))
    scripted = script(fastconv.convert(LeNet5(torch.nn)))
    scripted.load_state_dict(model.state_dict())
    x = torch.randn(3, 1, 32, 32)
    model(x).square().sum().backward()
    scripted(x).square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), scripted.parameters()):
        assert torch.equal(p.grad, q.grad), name


def test_scripted_fully_convolutional_lenet():
    model = FullyConvolutionalLeNet(fastconv.nn).eval()
    x = torch.randn(1, 1, 64, 96)
    with torch.no_grad():
        assert torch.equal(script(model)(x), model(x))


@pytest.mark.parametrize("name", ["resnet18", "squeezenet1_1"])
def test_torchvision_models_script_and_trace(name):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(num_classes=10).eval()
    model = fastconv.convert(reference)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        scripted = script(model)
        traced = torch.jit.trace(model, x)
        assert "conv2d" in fastconv_ops(scripted) and "conv2d" in fastconv_ops(traced)
        assert torch.equal(scripted(x), expected)
        assert torch.equal(traced(x), expected)
        assert torch.equal(reloaded(scripted)(x), expected)
        torch.testing.assert_close(expected, reference(x), rtol=1e-4, atol=1e-4)


def test_traced_pooling_with_indices():
    pool = fastconv.nn.MaxPool2d(3, 2, 1, return_indices=True)
    x = torch.randn(2, 4, 11, 11)
    traced = torch.jit.trace(pool, x)
    values, indices = traced(x)
    expected_values, expected_indices = torch.nn.functional.max_pool2d(
        x, 3, 2, 1, return_indices=True
    )
    assert torch.equal(values, expected_values) and torch.equal(indices, expected_indices)


def test_export_keeps_the_fastconv_ops():
    """torch.export, which torch recommends over TorchScript, records the same ops."""
    model = fastconv.convert(torchvision.models.resnet18(num_classes=10)).eval()
    x = torch.randn(2, 3, 64, 64)
    exported = torch.export.export(model, (x,))
    targets = [str(node.target) for node in exported.graph.nodes if node.op == "call_function"]
    assert sum(t.startswith("fastconv.conv2d") for t in targets) == 20
    assert sum(t.startswith("fastconv.max_pool2d_with_indices") for t in targets) == 1
    with torch.no_grad():
        assert torch.equal(exported.module()(x), model(x))
