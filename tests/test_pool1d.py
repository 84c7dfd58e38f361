"""The 1-d pooling functionals (max_pool1d, avg_pool1d, max_unpool1d, on the 2-d ops), the power-
average pools (lp_pool1d, lp_pool2d) and the new modules, against torch: values, indices, gradients,
errors, TorchScript."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import fastconv
from helpers import assert_raises_like_torch, call, check_against_torch


def leaf(shape, dtype=torch.float64, grad=True):
    return torch.randn(shape, dtype=dtype).requires_grad_(grad)


def check_pool(fast_fn, torch_fn, x, backward=True):
    """fast_fn(x) and torch_fn(x) on copies of x: the same values (indices identical; NaN where
    torch has NaN: lp_pool's root of a negative sum), or the same error; and, where x requires
    grad, the same gradient of the first output."""
    check_against_torch(
        fast_fn,
        torch_fn,
        x,
        requires_grad=x.requires_grad,
        equal_nan=True,
        backward=backward,
        errors=True,
    )


# ------------------------------------------------------------------------------------ max_pool1d

# (kernel_size, stride, padding, dilation, ceil_mode)
MAX_GRID = [
    (2, None, 0, 1, False),
    (3, 2, 1, 1, False),
    (3, 2, 1, 2, True),
    ((4,), (3,), (2,), 1, True),
    (1, 1, 0, 3, False),
    (3, [], 1, 1, True),
]


@pytest.mark.parametrize("args", MAX_GRID)
@pytest.mark.parametrize("shape", [(2, 3, 17), (3, 17), (0, 3, 9)])
@pytest.mark.parametrize("return_indices", [False, True])
def test_max_pool1d_matches_torch(args, shape, return_indices):
    x = leaf(shape)
    x.data[..., 3] = x.data[..., 4]  # a tie
    check_pool(
        lambda t: fastconv.max_pool1d(t, *args, return_indices=return_indices),
        lambda t: F.max_pool1d(t, *args, return_indices=return_indices),
        x,
    )


def test_max_pool1d_indices_are_flat_over_the_length_and_unpool():
    x = leaf((2, 4, 20))
    out, indices = fastconv.max_pool1d(x, 3, 2, 1, return_indices=True)
    assert torch.equal(torch.gather(x.detach(), -1, indices), out.detach())
    for output_size in (None, [20], (2, 4, 20), torch.Size([19])):
        check_pool(
            lambda t: fastconv.max_unpool1d(t, indices, 3, 2, 1, output_size),
            lambda t: F.max_unpool1d(t, indices, 3, 2, 1, output_size),
            out.detach().requires_grad_(),
        )


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int32, torch.uint8, torch.bool]
)
@pytest.mark.parametrize("return_indices", [False, True])
def test_max_pool1d_dtypes(dtype, return_indices):
    x = (torch.randn(2, 3, 12) * 20).to(dtype)
    check_pool(
        lambda t: fastconv.max_pool1d(t, 3, 2, 1, return_indices=return_indices),
        lambda t: F.max_pool1d(t, 3, 2, 1, return_indices=return_indices),
        x,
    )


# Calls torch refuses, or where it behaves differently with and without indices and gradients.
MAX_POOL1D_CALLS = [
    ((1, 2, 3, 8), (2,)),
    ((8,), (2,)),
    ((2, 3, 0), (1,)),
    ((2, 0, 4), (1,)),
    ((0, 4), (1,)),
    ((2, 3, 8), ((2, 2),)),
    ((2, 3, 8), ([],)),
    ((2, 3, 8), (2, (1, 1))),
    ((2, 3, 8), (2, 1, (0, 0))),
    ((2, 3, 8), (2, 1, 0, (1, 1))),
    ((2, 3, 8), (0,)),
    ((2, 3, 8), (2, 0)),
    ((2, 3, 8), (2, -1)),
    ((2, 3, 8), (2, 1, -1)),
    ((2, 3, 8), (2, 1, 2)),
    ((2, 3, 8), (2, 1, 0, 0)),
    ((2, 3, 8), (9,)),
    ((2, 3, 8), (2**31,)),
    ((2, 3, 8), (2, 2**40)),
    ((2, 3, 8), (1, 1, 0, 2**40)),
    ((1, 2, 3, 8), ((2, 2),)),
    ((2, 3, 8), ((2, 2), 0)),
    ((2, 3, 8), (0, 1, -1)),
    ((2, 3, 8), (2.0,)),
    ((2, 3, 8), (2, 1, 0, 1, 1)),
    ((2, 3, 1), (3, None, 0, 1, True)),
    ((2, 3, 8), (3, 2**40, 1, 1, True)),
]


@pytest.mark.parametrize("shape, args", MAX_POOL1D_CALLS)
@pytest.mark.parametrize("mode", ["plain", "requires_grad", "return_indices"])
def test_max_pool1d_errors_match_torch(shape, args, mode):
    x = torch.randn(shape, requires_grad=mode == "requires_grad")
    kwargs = dict(return_indices=True) if mode == "return_indices" else {}
    check_pool(
        lambda t: fastconv.max_pool1d(t, *args, **kwargs),
        lambda t: F.max_pool1d(t, *args, **kwargs),
        x,
        backward=False,
    )


# ------------------------------------------------------------------------------------ avg_pool1d

# (kernel_size, stride, padding, ceil_mode, count_include_pad)
AVG_GRID = [
    (2, None, 0, False, True),
    (3, 2, 1, False, False),
    (3, 2, 1, True, True),
    (3, 2, 1, True, False),
    ((5,), (3,), (2,), True, False),
    (1, 1, 0, False, True),
]


@pytest.mark.parametrize("args", AVG_GRID)
@pytest.mark.parametrize("shape", [(2, 3, 17), (3, 17), (0, 3, 9)])
def test_avg_pool1d_matches_torch(args, shape):
    check_pool(
        lambda t: fastconv.avg_pool1d(t, *args), lambda t: F.avg_pool1d(t, *args), leaf(shape)
    )


AVG_POOL1D_CALLS = [
    ((1, 2, 3, 8), (2,)),
    ((8,), (2,)),
    ((2, 3, 8), ((2, 2),)),
    ((2, 3, 8), (2, (1, 1))),
    ((2, 3, 8), (2, 1, (0, 0))),
    ((2, 3, 8), (0,)),
    ((2, 3, 8), (9,)),
    ((0, 3, 4), (2,)),
    ((2, 0, 4), (2,)),
    ((2, 3, 8), ([],)),
    ((2, 3, 8), (2.0,)),
    ((2, 3, 8), (2**31,)),
    ((2, 3, 8), (3, 1, 2)),
    ((2, 3, 8), (2, None, 0, False, True, 3)),
]


@pytest.mark.parametrize("shape, args", AVG_POOL1D_CALLS)
def test_avg_pool1d_errors_match_torch(shape, args):
    x = torch.randn(shape)
    check_pool(lambda t: fastconv.avg_pool1d(t, *args), lambda t: F.avg_pool1d(t, *args), x)
    assert_raises_like_torch(
        lambda: fastconv.avg_pool1d(x, *args, divisor_override=1),
        lambda: F.avg_pool1d(x, *args, divisor_override=1),
    )


def test_max_unpool1d_output_size_errors_match_torch():
    x = torch.randn(2, 3, 9)
    out, indices = F.max_pool1d(x, 2, return_indices=True)
    for output_size in ([5], [2, 3, 4, 5], [7], [10], [-1], [1.5]):
        assert_raises_like_torch(
            lambda: fastconv.max_unpool1d(out, indices, 2, output_size=output_size),
            lambda: F.max_unpool1d(out, indices, 2, output_size=output_size),
        )


def test_max_unpool1d_gradients():
    x = leaf((2, 3, 10))
    out, indices = F.max_pool1d(x.detach(), 2, return_indices=True)
    y = out.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: fastconv.max_unpool1d(t, indices, 2), (y,))
    assert torch.autograd.gradgradcheck(lambda t: fastconv.max_unpool1d(t, indices, 2), (y,))


# ----------------------------------------------------------------------------------------- lp pools

NORMS = [1, 2, 3, 1.5, -1.5, float("inf"), -float("inf")]


@pytest.mark.parametrize("norm_type", NORMS)
@pytest.mark.parametrize("args", [(2,), (3, 2), ((3, 2), (2, 1), True), (3, None, True)])
def test_lp_pool2d_matches_torch(norm_type, args):
    x = leaf((2, 3, 9, 8))  # negative values: x ** p of odd p, and a sign kept for the root
    check_pool(
        lambda t: fastconv.lp_pool2d(t, norm_type, *args),
        lambda t: F.lp_pool2d(t, norm_type, *args),
        x,
    )


@pytest.mark.parametrize("norm_type", NORMS)
@pytest.mark.parametrize("args", [(2,), (3, 2), (3, 2, True), (3, None, True)])
def test_lp_pool1d_matches_torch(norm_type, args):
    check_pool(
        lambda t: fastconv.lp_pool1d(t, norm_type, *args),
        lambda t: F.lp_pool1d(t, norm_type, *args),
        leaf((2, 3, 11)),
    )


@pytest.mark.parametrize("norm_type", [2, 3])
def test_lp_pool_gradcheck(norm_type):
    x = (torch.rand(1, 2, 6, 6, dtype=torch.float64) + 0.5).requires_grad_()  # positive: smooth
    assert torch.autograd.gradcheck(lambda t: fastconv.lp_pool2d(t, norm_type, 2, 1), (x,))
    assert torch.autograd.gradgradcheck(lambda t: fastconv.lp_pool2d(t, norm_type, 2, 1), (x,))
    assert torch.autograd.gradcheck(lambda t: fastconv.lp_pool1d(t, norm_type, 3, 2), (x[0],))


def test_lp_pool_zero_window_gets_torch_gradient():
    """An all-zero window: torch's sign * relu(abs) makes the gradient zero rather than NaN."""
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    x[..., 2:, 2:] = 1.0
    check_pool(
        lambda t: fastconv.lp_pool2d(t, 2, 2), lambda t: F.lp_pool2d(t, 2, 2), x.requires_grad_()
    )


LP_CALLS = [
    (0, 2),
    (0.0, 2),
    (2, (1, 2, 3)),
    (2, [3]),
    (2, 2.5),
    (2, 2, (1, 2, 3)),
    (2, 0),
    (2, 9),
    (2, 2, 0),
    (float("inf"), 9),
    ("a", 2),
]


@pytest.mark.parametrize("args", LP_CALLS)
def test_lp_pool_errors_match_torch(args):
    x = torch.randn(2, 3, 8, 8)
    assert_raises_like_torch(lambda: fastconv.lp_pool2d(x, *args), lambda: F.lp_pool2d(x, *args))
    x1 = x[0]
    assert_raises_like_torch(lambda: fastconv.lp_pool1d(x1, *args), lambda: F.lp_pool1d(x1, *args))


# ------------------------------------------------------------------------------------------ modules

MODULES = [
    (
        "AvgPool2d",
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        (2, 3, 9, 9),
    ),
    ("AvgPool2d", dict(kernel_size=(2, 3), divisor_override=4), (3, 9, 9)),
    ("LPPool2d", dict(norm_type=2, kernel_size=(2, 3), stride=1), (2, 3, 9, 9)),
    ("LPPool2d", dict(norm_type=float("inf"), kernel_size=2, ceil_mode=True), (2, 3, 9, 9)),
    ("MaxPool1d", dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True), (2, 3, 17)),
    ("MaxPool1d", dict(kernel_size=(2,), return_indices=True), (3, 17)),
    (
        "AvgPool1d",
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        (2, 3, 17),
    ),
    ("LPPool1d", dict(norm_type=3, kernel_size=3, stride=2), (2, 3, 17)),
]


@pytest.mark.parametrize("name, kwargs, shape", MODULES)
def test_modules_are_drop_ins(name, kwargs, shape):
    reference, module = getattr(torch.nn, name)(**kwargs), getattr(fastconv.nn, name)(**kwargs)
    assert isinstance(module, type(reference)) and repr(module) == repr(reference)
    check_pool(module, reference, leaf(shape))
    try:
        scripted_reference = torch.jit.script(reference)
    except Exception:  # noqa: BLE001  torch's own module does not script: nothing to match
        return
    scripted = torch.jit.script(module)
    x = leaf(shape, grad=False)
    for actual, expected in zip(
        *(r if isinstance(r, tuple) else (r,) for r in (scripted(x), scripted_reference(x)))
    ):
        torch.testing.assert_close(actual, expected, equal_nan=True)


def test_max_unpool1d_module_scripts_and_matches_torch():
    pool, unpool = fastconv.nn.MaxPool1d(2, return_indices=True), fastconv.nn.MaxUnpool1d(2)
    x = leaf((2, 3, 9))
    out, indices = pool(x)
    expected = torch.nn.MaxUnpool1d(2)(out, indices, output_size=x.shape)
    torch.testing.assert_close(unpool(out, indices, output_size=x.shape), expected)
    scripted = torch.jit.script(unpool)
    torch.testing.assert_close(scripted(out, indices, list(x.shape)), expected)
    assert "fastconv::max_unpool2d" in str(scripted.graph) or "fastconv::max_unpool2d" in str(
        scripted.inlined_graph
    )


# --------------------------------------------------------------------------------------- hypothesis


@st.composite
def pool1d_configs(draw):
    return dict(
        shape=draw(st.sampled_from([(2, 3), (1, 2), (0, 2), (3,)])) + (draw(st.integers(1, 14)),),
        kernel=draw(st.integers(1, 5)),
        stride=draw(st.one_of(st.none(), st.integers(1, 4))),
        padding=draw(st.integers(0, 2)),
        dilation=draw(st.integers(1, 3)),
        ceil_mode=draw(st.booleans()),
        count_include_pad=draw(st.booleans()),
        return_indices=draw(st.booleans()),
        requires_grad=draw(st.booleans()),
    )


@settings(max_examples=200, deadline=None)
@given(pool1d_configs())
def test_random_1d_configurations(cfg):
    """Any configuration: torch's values, indices and gradients, or torch's error."""
    x = leaf(cfg["shape"], grad=cfg["requires_grad"])
    common = (cfg["kernel"], cfg["stride"], cfg["padding"])
    max_args = common + (cfg["dilation"], cfg["ceil_mode"], cfg["return_indices"])
    # A window with no tap inside the input (dilation and padding) has an index outside the input:
    # torch's CPU backward then writes outside the plane, fastconv passes no gradient (README).
    _, indices = call(lambda: F.max_pool1d(x.detach(), *max_args[:-1], return_indices=True))[0] or (
        None,
        None,
    )
    taps_inside = indices is None or bool(((indices >= 0) & (indices < x.shape[-1])).all())
    check_pool(
        lambda t: fastconv.max_pool1d(t, *max_args),
        lambda t: F.max_pool1d(t, *max_args),
        x,
        backward=taps_inside,
    )
    avg_args = common + (cfg["ceil_mode"], cfg["count_include_pad"])
    check_pool(lambda t: fastconv.avg_pool1d(t, *avg_args), lambda t: F.avg_pool1d(t, *avg_args), x)


def _length_major(t):
    """The same values stored (N, L, C): a transposed tensor, as after a sequence model."""
    return t.transpose(1, 2).contiguous().transpose(1, 2)


# Indices for max_unpool1d of (2, 8, 5) input with kernel 2: one per window, stored length-major.
_UNPOOL_INDICES = _length_major((2 * torch.arange(5) + torch.arange(5) % 2).repeat(2, 8, 1))

# torch's 1-d pooling without indices or gradient (on the CPU) runs a 1-d kernel with a contiguous
# output, also for a length-major input; with them, its 2-d kernel keeps that layout. max_unpool1d
# views the length as the height of one-column planes, which torch takes as contiguous.
LENGTH_MAJOR_CALLS = {
    "max_pool1d": lambda f, x: f.max_pool1d(x, 2),
    "max_pool1d with indices": lambda f, x: f.max_pool1d(x, 2, return_indices=True),
    "max_pool1d requiring grad": lambda f, x: f.max_pool1d(x.requires_grad_(), 2),
    "lp_pool1d inf": lambda f, x: f.lp_pool1d(x, float("inf"), 2),
    "lp_pool1d inf requiring grad": lambda f, x: f.lp_pool1d(x.requires_grad_(), float("inf"), 2),
    "lp_pool1d 2": lambda f, x: f.lp_pool1d(x, 2, 2),
    "avg_pool1d": lambda f, x: f.avg_pool1d(x, 2),
    "max_unpool1d": lambda f, x: f.max_unpool1d(x[..., :5], _UNPOOL_INDICES, 2),
}


@pytest.mark.parametrize("call", LENGTH_MAJOR_CALLS.values(), ids=list(LENGTH_MAJOR_CALLS))
def test_length_major_input_gives_torchs_layout(call):
    x = _length_major(torch.randn(2, 8, 10, dtype=torch.float64))
    fast, expected = call(fastconv, x.detach().clone()), call(F, x.detach().clone())
    fast = fast if isinstance(fast, tuple) else (fast,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    for actual, reference in zip(fast, expected):
        torch.testing.assert_close(actual, reference)
        assert actual.stride() == reference.stride()


def test_max_unpool1d_dtype_error_names_torchs_kernel():
    """An int64 input stored length-major: torch's dtype error names its contiguous kernel."""
    x = _length_major(torch.randint(9, (2, 8, 5)))
    assert_raises_like_torch(
        lambda: fastconv.max_unpool1d(x, _UNPOOL_INDICES, 2),
        lambda: F.max_unpool1d(x, _UNPOOL_INDICES, 2),
    )
