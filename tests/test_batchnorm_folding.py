"""convert(model, fold_batchnorm=True): which pairs fold, the same results as the unfolded model in
eval and in train mode (values, gradients, running statistics), the cache of folded weights, and
state_dict, revert, TorchScript and torch.compile."""

import copy

import pytest
import torch
import torchvision
from torch import nn
from torch.testing import assert_close

import fastconv
from fastconv.batchnorm_folding import BatchNormFoldedConv2d, FoldedBatchNorm2d


def randomise_batchnorms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics and affine parameters away from their initial 0 / 1, so that a fold
    that forgot one of them shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(torch.rand(c, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(c, generator=generator) * 1.5 + 0.5)
                if module.affine:
                    module.weight.copy_(torch.rand(c, generator=generator) + 0.5)
                    module.bias.copy_(torch.rand(c, generator=generator) * 0.4 - 0.2)
    return model


def conv_bn(bias=False, affine=True):
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=bias),
        nn.BatchNorm2d(8, affine=affine),
        nn.ReLU(),
        nn.Conv2d(8, 4, 1),
        nn.BatchNorm2d(4),
    )


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("affine", [False, True])
def test_folded_eval_matches_unfolded_in_float64(bias, affine):
    model = randomise_batchnorms(conv_bn(bias, affine)).double().eval()
    folded = fastconv.convert(model, fold_batchnorm=True)
    assert fastconv.conversion_report(folded).folded == [("0", "1"), ("3", "4")]
    assert [type(m) for m in folded] == [
        BatchNormFoldedConv2d,
        FoldedBatchNorm2d,
        nn.ReLU,
        BatchNormFoldedConv2d,
        FoldedBatchNorm2d,
    ]
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    with torch.no_grad():
        assert_close(folded(x), model(x), rtol=1e-12, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_torchvision_model_in_float32_within_torchs_error(name):
    torch.manual_seed(0)
    model = randomise_batchnorms(getattr(torchvision.models, name)()).eval()
    folded = fastconv.convert(model, fold_batchnorm=True)
    assert (
        len(fastconv.conversion_report(folded).folded) == {"resnet18": 20, "mobilenet_v2": 52}[name]
    )
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        reference = copy.deepcopy(model).double()(x.double())
        scale = reference.abs().max()
        torch_error = (model(x).double() - reference).abs().max() / scale
        folded_error = (folded(x).double() - reference).abs().max() / scale
    assert folded_error <= 2 * torch_error + 1e-7


def test_only_a_convolution_feeding_just_its_batchnorm_folds():
    class Shapes(nn.Module):
        def __init__(self):
            super().__init__()
            self.shared_input = nn.Conv2d(3, 4, 1)  # its output also goes elsewhere
            self.bn_a = nn.BatchNorm2d(4)
            self.conv_b = nn.Conv2d(4, 4, 1)
            self.bn_twice = nn.BatchNorm2d(4)  # called twice
            self.pre_bn = nn.BatchNorm2d(4)  # before its convolution (DenseNet's order)
            self.conv_c = nn.Conv2d(4, 4, 1)
            self.conv_d = nn.Conv2d(4, 4, 3, padding=1)
            self.bn_d = nn.BatchNorm2d(4)

        def forward(self, x):
            a = self.shared_input(x)
            y = self.bn_a(a) + a
            y = self.bn_twice(self.conv_b(y))
            y = self.bn_twice(y)
            y = self.conv_c(torch.relu(self.pre_bn(y)))
            return self.bn_d(self.conv_d(y))

    model = randomise_batchnorms(Shapes()).eval()
    folded = fastconv.convert(model, fold_batchnorm=True)
    assert fastconv.conversion_report(folded).folded == [("conv_d", "bn_d")]
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        assert_close(folded(x), model(x), rtol=1e-5, atol=1e-6)


def test_untraceable_model_is_converted_unfolded_with_a_warning():
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            if x.sum() > 0:  # torch.fx cannot trace a branch on a value
                x = -x
            return self.bn(self.conv(x))

    with pytest.warns(UserWarning, match="does not trace with torch.fx"):
        model = fastconv.convert(DataDependent().eval(), fold_batchnorm=True)
    assert fastconv.conversion_report(model).folded == []
    assert type(model.conv) is fastconv.nn.Conv2d and type(model.bn) is nn.BatchNorm2d


def test_excluded_convolution_keeps_its_batchnorm_and_a_converted_model_folds():
    model = fastconv.convert(conv_bn().eval(), exclude="3", fold_batchnorm=True)
    assert fastconv.conversion_report(model).folded == [("0", "1")]
    assert type(model[3]) is nn.Conv2d and type(model[4]) is nn.BatchNorm2d
    model = fastconv.convert(fastconv.convert(conv_bn().eval()), fold_batchnorm=True)
    assert fastconv.conversion_report(model).folded == [("0", "1"), ("3", "4")]


def test_train_mode_is_unfolded_batchnorm():
    torch.manual_seed(1)
    model = randomise_batchnorms(conv_bn(bias=True)).double()
    plain = fastconv.convert(model)
    folded = fastconv.convert(model, fold_batchnorm=True)
    x = torch.randn(3, 3, 5, 5, dtype=torch.float64)
    for m in (plain, folded):
        m(x).square().sum().backward()
    for (name, a), b in zip(plain.named_parameters(), folded.parameters()):
        assert_close(b.grad, a.grad, rtol=1e-12, atol=1e-12, msg=name)
    for a, b in zip(plain.buffers(), folded.buffers()):  # running statistics updated alike
        assert torch.equal(a, b)
    folded.eval()  # and now the updated statistics are folded
    plain.eval()
    with torch.no_grad():
        assert_close(folded(x), plain(x), rtol=1e-12, atol=1e-12)


def test_eval_mode_gradients_reach_convolution_and_batchnorm_parameters():
    """Fine-tuning with frozen BatchNorm statistics: the fold is differentiable."""
    model = randomise_batchnorms(conv_bn(bias=True)).double().eval()
    folded = fastconv.convert(model, fold_batchnorm=True)
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    x_folded = x.detach().clone().requires_grad_()
    model(x).sin().sum().backward()
    folded(x_folded).sin().sum().backward()
    assert_close(x_folded.grad, x.grad, rtol=1e-10, atol=1e-12)
    for (name, a), b in zip(model.named_parameters(), folded.parameters()):
        assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12, msg=name)


def test_cached_fold_follows_parameter_and_statistic_changes():
    model = randomise_batchnorms(conv_bn(bias=True)).eval()
    folded = fastconv.convert(model, fold_batchnorm=True, inplace=False)
    x = torch.randn(2, 3, 6, 6)

    def check():
        with torch.no_grad():
            assert_close(folded(x), model(x), rtol=1e-5, atol=1e-6)

    check()
    with torch.no_grad():  # an optimiser step, in place
        for m in (model, folded):
            m[0].weight.mul_(1.5)
            m[1].running_var.add_(0.25)
            m[4].bias.sub_(0.5)
    check()
    folded.load_state_dict(randomise_batchnorms(model, seed=3).state_dict())
    check()
    folded[1].eps = model[1].eps = 0.5
    check()
    folded.double()
    model.double()
    x = x.double()
    check()


def test_functional_call_uses_the_parameters_it_is_given():
    model = randomise_batchnorms(conv_bn()).eval()
    folded = fastconv.convert(model, fold_batchnorm=True)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        folded(x)  # fills the cache
        for scale in (2.0, 3.0):
            params = {k: v * scale for k, v in model.named_parameters()}
            expected = torch.func.functional_call(model, params, (x,))
            assert_close(
                torch.func.functional_call(folded, params, (x,)), expected, rtol=1e-5, atol=1e-5
            )


def test_state_dict_revert_deepcopy_and_layout():
    model = randomise_batchnorms(conv_bn(bias=True)).eval()
    folded = fastconv.convert(model, fold_batchnorm=True)
    assert list(folded.state_dict()) == list(model.state_dict())
    assert all(
        torch.equal(a, b) for a, b in zip(folded.state_dict().values(), model.state_dict().values())
    )
    reverted = fastconv.revert(folded)
    assert [type(m) for m in reverted] == [type(m) for m in model]
    assert not any("_folded_batchnorm" in vars(m) or "_fold_cache" in vars(m) for m in reverted)
    copied = copy.deepcopy(folded)
    assert copied[0]._folded_batchnorm is copied[1]
    x = torch.randn(2, 3, 6, 6).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = model(x)
        for m in (folded, copied, reverted):
            y = m(x)
            assert_close(y, expected, rtol=1e-5, atol=1e-6)
            assert y.is_contiguous(memory_format=torch.channels_last)


def test_scripts_as_unfolded_modules():
    model = randomise_batchnorms(conv_bn(bias=True)).eval()
    folded = fastconv.convert(model, fold_batchnorm=True)
    scripted = torch.jit.script(folded)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        assert_close(scripted(x), model(x), rtol=1e-5, atol=1e-6)
        # torch.jit.script puts what __prepare_scriptable__ returns into the model it was given
        assert [type(m) for m in folded][:2] == [fastconv.nn.Conv2d, nn.BatchNorm2d]
        assert_close(folded(x), model(x), rtol=1e-5, atol=1e-6)


def test_compiles_with_fullgraph_unfolded():
    """Under torch.compile the pairs compute unfolded (the graph would fold the weights at every
    call): the captured graph holds the BatchNorms."""
    model = randomise_batchnorms(conv_bn(bias=True)).eval()
    folded = fastconv.convert(model, fold_batchnorm=True)
    graphs = []

    def backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module

    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        compiled = torch.compile(folded, fullgraph=True, backend=backend)
        assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-6)
    code = "".join(graph.code for graph in graphs)
    assert code.count("batch_norm") == 2 and "fastconv" in code
    with torch.no_grad():  # eager calls still fold
        assert_close(folded(x), model(x), rtol=1e-5, atol=1e-6)
