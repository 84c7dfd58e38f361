"""The ops as PyTorch library ops: opcheck, torch.compile(fullgraph=True), build info."""

import pytest
import torch
import torch.nn.functional as F

import fastconv

ops = torch.ops.fastconv


def _t(*shape, channels_last=False, grad=True):
    t = torch.randn(*shape, dtype=torch.float64)
    if channels_last:
        t = t.contiguous(memory_format=torch.channels_last)
    return t.requires_grad_(grad)


def _pool_sample(channels_last):
    x = _t(2, 3, 9, 9, channels_last=channels_last)
    return x, [3, 3], [2, 2], [1, 1], [1, 1], False


def _indices(channels_last=False):
    x = _t(2, 3, 8, 8, channels_last=channels_last, grad=False)
    return F.max_pool2d(x, 2, return_indices=True)


OPCHECK_SAMPLES = {
    "conv2d": lambda: [
        (_t(2, 4, 7, 7), _t(6, 2, 3, 3), _t(6), [1, 1], [1, 1], [1, 1], 2),
        (_t(1, 3, 8, 9, channels_last=True), _t(4, 3, 3, 2), None, [2, 1], [0, 1], [2, 1], 1),
        (_t(2, 4, 5, 5), _t(4, 4, 1, 1), None, [1, 1], [0, 0], [1, 1], 1),
        (_t(0, 3, 5, 5), _t(2, 3, 3, 3), _t(2), [1, 1], [1, 1], [1, 1], 1),
    ],
    "conv2d_input_backward": lambda: [
        (_t(2, 6, 4, 4), _t(6, 2, 3, 3), [2, 4, 8, 8], [2, 2], [1, 1], [1, 1], 2),
    ],
    "conv2d_weight_backward": lambda: [
        (_t(2, 6, 4, 4), _t(2, 4, 8, 8), [6, 2, 3, 3], [2, 2], [1, 1], [1, 1], 2),
    ],
    "conv_transpose2d": lambda: [
        (_t(2, 4, 5, 5), _t(4, 3, 3, 3), _t(6), [2, 2], [1, 1], [1, 1], 2, [1, 1]),
        (
            _t(1, 3, 4, 5, channels_last=True),
            _t(3, 2, 3, 2),
            None,
            [1, 2],
            [0, 1],
            [1, 1],
            1,
            [2, 1],
        ),
        (_t(0, 3, 5, 5), _t(3, 2, 3, 3), _t(2), [1, 1], [0, 0], [0, 0], 1, [1, 1]),
    ],
    "max_pool2d_with_indices": lambda: [
        _pool_sample(False),
        _pool_sample(True),
        (_t(3, 7, 8), [2, 3], [2, 1], [1, 0], [1, 2], True),
    ],
    "max_pool2d_with_indices_backward": lambda: [
        (
            _t(2, 3, 4, 4),
            _t(2, 3, 8, 8, grad=False),
            [2, 2],
            [2, 2],
            [0, 0],
            [1, 1],
            False,
            _indices()[1],
        ),
    ],
    "max_unpool2d": lambda: [
        (_indices()[0].requires_grad_(), _indices()[1], [8, 8]),
        (_indices(True)[0].requires_grad_(), _indices(True)[1], [9, 9]),
    ],
    "max_unpool2d_backward": lambda: [
        (_t(2, 3, 8, 8), _indices()[1]),
    ],
    "avg_pool2d": lambda: [
        (_t(2, 3, 9, 9), [3, 3], [2, 2], [1, 1], False, True, None),
        (_t(2, 3, 9, 8, channels_last=True), [3, 2], [2, 1], [1, 0], True, False, None),
        (_t(3, 7, 8), [2, 3], [2, 3], [1, 1], True, True, 5),
    ],
    "avg_pool2d_backward": lambda: [
        (_t(2, 3, 5, 5), _t(2, 3, 9, 9, grad=False), [3, 3], [2, 2], [1, 1], False, True, None),
        (
            _t(2, 3, 5, 7),
            _t(2, 3, 9, 8, channels_last=True, grad=False),
            [3, 2],
            [2, 1],
            [1, 0],
            True,
            False,
            3,
        ),
    ],
}


@pytest.mark.parametrize("name", OPCHECK_SAMPLES)
def test_opcheck(name):
    for args in OPCHECK_SAMPLES[name]():
        torch.library.opcheck(getattr(ops, name).default, args)


class _Net(torch.nn.Module):
    """Conv, pool with indices, unpool, a dilated conv, a transposed conv, the average and
    power-average pools and the 1-d convs and pools: every op in one graph."""

    def __init__(self):
        super().__init__()
        self.conv = fastconv.nn.Conv2d(3, 8, 3, padding=1)
        self.pool = fastconv.nn.MaxPool2d(2, return_indices=True)
        self.unpool = fastconv.nn.MaxUnpool2d(2)
        self.dilated = fastconv.nn.Conv2d(8, 4, 3, padding="same", dilation=2, groups=2, bias=False)
        self.transposed = fastconv.nn.ConvTranspose2d(
            4, 4, 3, stride=2, padding=1, output_padding=1, groups=2
        )
        self.average = fastconv.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
        self.l2 = fastconv.nn.LPPool2d(2, 2)
        self.conv1d = fastconv.nn.Conv1d(4, 6, 3, padding="same")
        self.transposed1d = fastconv.nn.ConvTranspose1d(6, 2, 3, stride=2)
        self.pool1d = fastconv.nn.MaxPool1d(2, return_indices=True)
        self.unpool1d = fastconv.nn.MaxUnpool1d(2)
        self.average1d = fastconv.nn.AvgPool1d(3, 1, 1)
        self.l2_1d = fastconv.nn.LPPool1d(2, 2)

    def forward(self, x):
        y, indices = self.pool(torch.relu(self.conv(x)))
        y = self.transposed(self.dilated(self.unpool(y, indices)))
        # + 1 keeps the power-average pools' windows away from 0, where their gradient is not finite
        y = self.l2(self.average(y) + 1)
        z, indices1d = self.pool1d(self.transposed1d(self.conv1d(y.flatten(2))))
        return self.l2_1d(self.average1d(self.unpool1d(z, indices1d)) + 1).sum(-1)


def test_torch_compile_fullgraph_matches_eager():
    model = _Net()
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    compiled = torch.compile(model, fullgraph=True)
    expected = model(x)
    actual = compiled(x)
    torch.testing.assert_close(actual, expected)
    (grad_x,) = torch.autograd.grad(actual.sum(), x)
    (expected_grad_x,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(grad_x, expected_grad_x)


def test_torch_compile_dynamic_shapes():
    compiled = torch.compile(fastconv.conv2d, fullgraph=True, dynamic=True, backend="aot_eager")
    weight = torch.randn(4, 3, 3, 3)
    for size in (8, 11, 14):
        x = torch.randn(2, 3, size, size + 1)
        torch.testing.assert_close(compiled(x, weight, None, 2, 1), F.conv2d(x, weight, None, 2, 1))


def test_meta_tensors_give_shapes():
    x = torch.empty(2, 3, 32, 32, device="meta")
    transposed = fastconv.conv_transpose2d(x, torch.empty(3, 4, 3, 3, device="meta"), None, 2, 1, 1)
    assert transposed.shape == (2, 4, 64, 64)
    assert fastconv.conv2d(x, torch.empty(8, 3, 5, 5, device="meta"), stride=2).shape == (
        2,
        8,
        14,
        14,
    )
    out, idx = fastconv.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    assert (
        out.shape
        == idx.shape
        == F.max_pool2d(torch.empty(2, 3, 32, 32), 3, 2, 1, ceil_mode=True).shape
    )
    assert idx.dtype == torch.int64


def test_build_info():
    info = fastconv.build_info()
    assert info["torch_version"] == torch.__version__
    assert isinstance(info["cuda"], bool) and info["openmp"] is True
    if info["cuda"]:
        assert info["cuda_archs"]


def test_torch_version_mismatch_is_a_clear_error():
    fastconv.check_torch_version(torch.__version__, torch.__version__)
    with pytest.raises(
        ImportError, match="built against torch 2.0.0.*pip install --no-build-isolation"
    ):
        fastconv.check_torch_version("2.0.0", torch.__version__)


def test_eager_calls_are_the_ops_to_tracing_and_autograd():
    """fastconv.functional's eager calls reach conv2d and max_pool2d through _C (skipping torch.ops'
    Python cost): they are still the dispatcher's ops, so torch.jit.trace records them and autograd
    runs their C++ formulas."""

    def net(x, w):
        y, _ = fastconv.max_pool2d(fastconv.conv2d(x, w, padding=1), 2, return_indices=True)
        return y

    x, w = torch.randn(1, 3, 8, 8, requires_grad=True), torch.randn(4, 3, 3, 3)
    graph = str(torch.jit.trace(net, (x, w)).graph)
    assert "fastconv::conv2d" in graph and "fastconv::max_pool2d_with_indices" in graph
    out = net(x, w)
    (grad,) = torch.autograd.grad(out.sum(), x)
    (expected,) = torch.autograd.grad(F.max_pool2d(F.conv2d(x, w, padding=1), 2).sum(), x)
    torch.testing.assert_close(grad, expected)
