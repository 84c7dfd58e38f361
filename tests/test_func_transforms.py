"""torch.func transforms (grad, vjp, jvp, vmap, hessian, jacrev, jacfwd) and forward-mode AD on
every fastconv op, each checked against the same transform of torch's function."""

import warnings

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch.func import grad, hessian, jacfwd, jacrev, jvp, vjp, vmap

import fastconv
import fastconv.functional as FC

DOUBLE = torch.float64


def _weight(*shape):
    return torch.randn(*shape, dtype=DOUBLE)


# name -> (builder of f(lib, x), input shape): f uses only the input as its tensor argument, the
# weights being fixed; the weight-taking cases are below.
_W2 = _weight(6, 2, 3, 3)
_WT = _weight(4, 3, 3, 3)
_W1 = _weight(6, 4, 3)
_WT1 = _weight(4, 3, 2)
_BIAS = _weight(6)
OPS = {
    "conv2d": (
        lambda lib, x: lib.conv2d(x, _W2, _BIAS, stride=2, padding=1, groups=2),
        (2, 4, 7, 6),
    ),
    "conv2d_same": (
        lambda lib, x: lib.conv2d(x, _W2[:, :, :2], padding="same", groups=2),
        (2, 4, 5, 6),
    ),
    "conv_transpose2d": (
        lambda lib, x: lib.conv_transpose2d(x, _WT, stride=2, padding=1, output_padding=1),
        (2, 4, 4, 5),
    ),
    "conv1d": (lambda lib, x: lib.conv1d(x, _W1, _BIAS, padding=1, dilation=2), (2, 4, 9)),
    "conv_transpose1d": (lambda lib, x: lib.conv_transpose1d(x, _WT1, stride=3), (2, 4, 5)),
    "max_pool2d": (lambda lib, x: lib.max_pool2d(x, 3, 2, 1), (2, 3, 8, 7)),
    "max_pool2d_ceil_dilated": (
        lambda lib, x: lib.max_pool2d(x, 2, 2, dilation=2, ceil_mode=True),
        (2, 3, 8, 7),
    ),
    "max_pool1d": (lambda lib, x: lib.max_pool1d(x, 3, 2), (2, 3, 9)),
    "max_unpool2d": (
        lambda lib, x: lib.max_unpool2d(*lib.max_pool2d(x, 2, return_indices=True), 2),
        (2, 3, 6, 6),
    ),
    "max_unpool1d": (
        lambda lib, x: lib.max_unpool1d(*lib.max_pool1d(x, 2, return_indices=True), 2),
        (2, 3, 8),
    ),
    "avg_pool2d": (
        lambda lib, x: lib.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
        (2, 3, 7, 8),
    ),
    "avg_pool1d": (lambda lib, x: lib.avg_pool1d(x, 3, 2, 1), (2, 3, 9)),
    "lp_pool2d": (lambda lib, x: lib.lp_pool2d(x, 2, 2), (2, 3, 6, 6)),
    "lp_pool1d": (lambda lib, x: lib.lp_pool1d(x, 3, 3), (2, 3, 9)),
}
# Ties between equal values would let the two libraries' maxima differ; random inputs have none.


@pytest.fixture(autouse=True)
def _no_fallback_warning():
    """vmap must find fastconv's batching rules, not functorch's per-entry fallback."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*batching rule.*fastconv.*")
        yield


def _close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-7, atol=1e-9, equal_nan=True)


def _scalar(lib, name):
    f, _ = OPS[name]
    return lambda x: f(lib, x).sin().sum()


def _input(name):
    torch.manual_seed(0)
    return torch.randn(*OPS[name][1], dtype=DOUBLE)


@pytest.mark.parametrize("name", OPS)
def test_grad_vjp_jvp(name):
    x = _input(name)
    _close(grad(_scalar(FC, name))(x), grad(_scalar(F, name))(x))
    f_fc, f_torch = (lambda x, lib=lib: OPS[name][0](lib, x) for lib in (FC, F))
    out_fc, pullback_fc = vjp(f_fc, x)
    out_torch, pullback_torch = vjp(f_torch, x)
    _close(out_fc, out_torch)
    cotangent = torch.randn_like(out_torch)
    _close(pullback_fc(cotangent), pullback_torch(cotangent))
    tangent = torch.randn_like(x)
    _close(jvp(f_fc, (x,), (tangent,)), jvp(f_torch, (x,), (tangent,)))


@pytest.mark.parametrize("name", OPS)
def test_vmap_forward_and_per_sample_grad(name):
    x = _input(name)
    f_fc, f_torch = (lambda x, lib=lib: OPS[name][0](lib, x) for lib in (FC, F))
    # Each sample of the vmapped dimension as a batch of one: what per-sample gradients do.
    batched = x.unsqueeze(1)
    _close(vmap(f_fc)(batched), vmap(f_torch)(batched))
    stacked = torch.stack([x, x.cos()], dim=1)
    _close(
        vmap(f_fc, in_dims=1, out_dims=1)(stacked), torch.stack([f_torch(x), f_torch(x.cos())], 1)
    )
    _close(vmap(grad(_scalar(FC, name)))(batched), vmap(grad(_scalar(F, name)))(batched))


@pytest.mark.parametrize("name", OPS)
def test_second_order(name):
    x = _input(name)[:1]
    _close(hessian(_scalar(FC, name))(x), hessian(_scalar(F, name))(x))
    f_fc, f_torch = (lambda x, lib=lib: OPS[name][0](lib, x).tanh() for lib in (FC, F))
    _close(jacfwd(jacrev(f_fc))(x), jacfwd(jacrev(f_torch))(x))


@pytest.mark.parametrize("name", OPS)
def test_forward_mode_ad(name):
    x = _input(name)
    tangent = torch.randn_like(x)
    results = []
    with fwAD.dual_level():
        for lib in (FC, F):
            output = OPS[name][0](lib, fwAD.make_dual(x, tangent))
            results.append(fwAD.unpack_dual(output))
    _close(results[0].primal, results[1].primal)
    _close(results[0].tangent, results[1].tangent)


# -------------------------------------------------------------------- weights, biases, modules

CONVS = {
    "conv2d": (
        lambda lib, x, w, b: lib.conv2d(x, w, b, padding=1, groups=2),
        (2, 4, 6, 5),
        (6, 2, 3, 3),
    ),
    "conv_transpose2d": (
        lambda lib, x, w, b: lib.conv_transpose2d(x, w, b, stride=2, groups=2, dilation=2),
        (2, 4, 4, 5),
        (4, 3, 3, 2),
    ),
    "conv1d": (lambda lib, x, w, b: lib.conv1d(x, w, b, stride=2), (2, 4, 9), (6, 4, 3)),
}


def _conv_case(name):
    torch.manual_seed(1)
    f, x_shape, w_shape = CONVS[name]
    out_channels = w_shape[0] if name != "conv_transpose2d" else w_shape[1] * 2
    return f, _weight(*x_shape), _weight(*w_shape), _weight(out_channels)


@pytest.mark.parametrize("name", CONVS)
def test_conv_weight_transforms(name):
    f, x, w, b = _conv_case(name)
    loss = {lib: (lambda w, b, x, lib=lib: f(lib, x, w, b).pow(2).sum()) for lib in (FC, F)}
    _close(grad(loss[FC], argnums=(0, 1))(w, b, x), grad(loss[F], argnums=(0, 1))(w, b, x))
    # Per-sample gradients of the weights and bias (as Opacus and torch.func's tutorial compute).
    per_sample = {
        lib: vmap(grad(loss[lib], argnums=(0, 1)), in_dims=(None, None, 0))(w, b, x.unsqueeze(1))
        for lib in (FC, F)
    }
    _close(per_sample[FC], per_sample[F])
    # vmap over a stack of weights and biases, with and without a batched input: each a group trick.
    weights, biases = torch.stack([w, 2 * w, -w]), torch.stack([b, -b, 3 * b])
    for in_dims in ((None, 0, 0), (None, 0, None), (0, 0, 0), (0, None, 0)):
        xs = torch.stack([x, x.flip(0), x.cos()])
        outputs = [
            vmap(lambda x, w, b, lib=lib: f(lib, x, w, b), in_dims=in_dims)(
                xs if in_dims[0] == 0 else x,
                weights if in_dims[1] == 0 else w,
                biases if in_dims[2] == 0 else b,
            )
            for lib in (FC, F)
        ]
        _close(outputs[0], outputs[1])
    tangents = (torch.randn_like(x), torch.randn_like(w), torch.randn_like(b))
    with fwAD.dual_level():
        duals = [fwAD.make_dual(p, t) for p, t in zip((x, w, b), tangents)]
        tangent_fc = fwAD.unpack_dual(f(FC, *duals)).tangent
        tangent_torch = fwAD.unpack_dual(f(F, *duals)).tangent
    _close(tangent_fc, tangent_torch)


def test_hessian_of_a_small_network():
    torch.manual_seed(2)
    x = torch.randn(2, 3, 8, 8, dtype=DOUBLE)
    torch_net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 2, 3),
        torch.nn.AvgPool2d(2),
    ).double()
    fast_net = fastconv.convert(torch_net)
    params = {k: v.detach() for k, v in torch_net.named_parameters()}
    weight = params["3.weight"]

    def loss(net):
        def f(w):
            return torch.func.functional_call(net, {**params, "3.weight": w}, (x,)).pow(2).sum()

        return f

    _close(hessian(loss(fast_net))(weight), hessian(loss(torch_net))(weight))


def test_eager_calls_keep_the_cpp_autograd():
    """Outside transforms the ops record C++ autograd nodes, not the Python ones."""
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    output = FC.conv2d(x, torch.randn(3, 2, 3, 3))
    assert (
        output.grad_fn.name()
        == "torch::autograd::CppNode<fastconv::(anonymous namespace)::Conv2dFunction>"
    )
    with fwAD.dual_level():
        dual = FC.conv2d(fwAD.make_dual(x.detach(), torch.ones_like(x)), torch.ones(3, 2, 3, 3))
        assert fwAD.unpack_dual(dual).tangent is not None


def test_conv_transpose2d_empty_output_plane_under_grad():
    """padding that eats the whole output: zero gradients, as torch's (and the C++ autograd's).
    float32: torch's float64 kernel refuses the shape."""
    x, w = torch.randn(1, 2, 5, 4), torch.randn(2, 1, 2, 1)

    def loss(lib):
        return lambda x, w: lib.conv_transpose2d(x, w, padding=2, groups=2).sum()

    expected = grad(loss(F), argnums=(0, 1))(x, w)
    actual = grad(loss(FC), argnums=(0, 1))(x, w)
    _close(actual, expected)
    assert not any(t.any() for t in actual)
