"""Bad calls raise what torch raises for the same call: the same exception type and message."""

import pytest
import torch
import torch.nn.functional as F

import fastconv
from helpers import assert_raises_like_torch, call


def x4(*shape, dtype=torch.float32):
    return torch.randn(*shape, dtype=dtype)


CONV_CASES = {
    "negative padding": lambda f: f(x4(1, 3, 5, 5), x4(2, 3, 3, 3), padding=-1),
    "zero stride": lambda f: f(x4(1, 3, 5, 5), x4(2, 3, 3, 3), stride=0),
    "negative stride": lambda f: f(x4(1, 3, 5, 5), x4(2, 3, 3, 3), stride=(1, -2)),
    "zero dilation": lambda f: f(x4(1, 3, 5, 5), x4(2, 3, 3, 3), dilation=0),
    "zero groups": lambda f: f(x4(1, 3, 5, 5), x4(2, 3, 3, 3), groups=0),
    "channels vs groups": lambda f: f(x4(2, 4, 5, 5), x4(6, 2, 3, 3), groups=3),
    "weight not divisible by groups": lambda f: f(x4(2, 4, 5, 5), x4(5, 2, 3, 3), groups=2),
    "fewer filters than groups": lambda f: f(x4(2, 3, 5, 5), x4(0, 3, 3, 3)),
    "channel mismatch": lambda f: f(x4(2, 4, 5, 5), x4(6, 3, 3, 3)),
    "channel mismatch unbatched": lambda f: f(x4(4, 5, 5), x4(6, 3, 3, 3)),
    "kernel larger than input": lambda f: f(x4(2, 3, 2, 2), x4(6, 3, 3, 3)),
    "dilated kernel larger than input": lambda f: f(x4(2, 3, 4, 4), x4(6, 3, 3, 3), dilation=2),
    "empty image": lambda f: f(x4(2, 3, 0, 5), x4(6, 3, 1, 1)),
    "bias dtype": lambda f: f(x4(2, 3, 5, 5), x4(6, 3, 3, 3), x4(6, dtype=torch.float64)),
    "weight dtype": lambda f: f(x4(2, 3, 5, 5), x4(6, 3, 3, 3, dtype=torch.float64)),
    "input dtype": lambda f: f(x4(2, 3, 5, 5, dtype=torch.float64), x4(6, 3, 3, 3)),
    "bias size": lambda f: f(x4(2, 3, 5, 5), x4(6, 3, 3, 3), x4(5)),
    "bias rank": lambda f: f(x4(2, 3, 5, 5), x4(6, 3, 3, 3), x4(6, 1)),
    "2-D input": lambda f: f(x4(3, 5), x4(6, 3, 3, 3)),
    "5-D input": lambda f: f(x4(1, 1, 3, 5, 5), x4(6, 3, 3, 3)),
    "3-D weight": lambda f: f(x4(2, 3, 5, 5), x4(6, 3, 3)),
    "5-D weight": lambda f: f(x4(2, 3, 5, 5), x4(6, 3, 3, 3, 1)),
    "2-D weight": lambda f: f(x4(2, 3, 5, 5), x4(6, 3)),
    "three strides": lambda f: f(x4(2, 3, 5, 5), x4(6, 3, 3, 3), stride=(1, 1, 1)),
    "three paddings": lambda f: f(x4(2, 3, 5, 5), x4(6, 3, 3, 3), padding=(1, 1, 1)),
    "three dilations": lambda f: f(x4(2, 3, 5, 5), x4(6, 3, 3, 3), dilation=(1, 1, 1)),
    "same with stride": lambda f: f(x4(2, 3, 5, 5), x4(6, 3, 3, 3), stride=2, padding="same"),
    "unknown padding string": lambda f: f(x4(2, 3, 5, 5), x4(6, 3, 3, 3), padding="full"),
}

POOL_CASES = {
    "zero kernel": lambda f: f(x4(2, 3, 8, 8), 0),
    "zero stride": lambda f: f(x4(2, 3, 8, 8), 2, stride=0),
    "zero dilation": lambda f: f(x4(2, 3, 8, 8), 2, dilation=0),
    "padding over half the kernel": lambda f: f(x4(2, 3, 8, 8), 3, padding=2),
    "negative padding": lambda f: f(x4(2, 3, 8, 8), 3, padding=-1),
    "output too small": lambda f: f(x4(2, 3, 2, 2), 3),
    "2-D input": lambda f: f(x4(8, 8), 2),
    "5-D input": lambda f: f(x4(1, 2, 3, 8, 8), 2),
    "zero channels": lambda f: f(x4(2, 0, 8, 8), 2),
    "zero channels unbatched": lambda f: f(x4(0, 8, 8), 2),
    "zero width": lambda f: f(x4(2, 3, 8, 0), 2),
    "three kernel sizes": lambda f: f(x4(2, 3, 8, 8), (2, 2, 2)),
    "three strides": lambda f: f(x4(2, 3, 8, 8), 2, stride=(2, 2, 2)),
    "three paddings": lambda f: f(x4(2, 3, 8, 8), 2, padding=(0, 0, 0)),
    "three dilations": lambda f: f(x4(2, 3, 8, 8), 2, dilation=(1, 1, 1)),
    "bool input": lambda f: f(x4(2, 3, 8, 8) > 0, 2),
}


def _pooled():
    torch.manual_seed(0)
    return F.max_pool2d(x4(2, 3, 8, 8), 2, return_indices=True)


def _one_bad_index(value):
    # One invalid index: with several, torch reports whichever its threads saw last.
    values, indices = _pooled()
    indices[1, 2, 3, 1] = value
    return values, indices


UNPOOL_CASES = {
    "index past the plane": lambda f: f(*_one_bad_index(64), 2),
    "negative index": lambda f: f(*_one_bad_index(-3), 2),
    "indices shape": lambda f: f(_pooled()[0], _pooled()[1][:, :, :2], 2),
    "int32 indices": lambda f: f(_pooled()[0], _pooled()[1].int(), 2),
    "output size too small": lambda f: f(*_pooled(), 2, output_size=(3, 3)),
    "output size too large": lambda f: f(*_pooled(), 2, output_size=(20, 20)),
    "output size of 3 elements": lambda f: f(*_pooled(), 2, output_size=(3, 9, 9)),
    "2-D input": lambda f: f(_pooled()[0][0, 0], _pooled()[1][0, 0], 2),
    "zero channels": lambda f: f(_pooled()[0][:, :0], _pooled()[1][:, :0], 2),
    "integer values": lambda f: f(_pooled()[0].long(), _pooled()[1], 2),
}


@pytest.mark.parametrize("case", CONV_CASES, ids=list(CONV_CASES))
def test_conv2d_errors(case):
    assert_raises_like_torch(
        lambda: CONV_CASES[case](fastconv.conv2d), lambda: CONV_CASES[case](F.conv2d)
    )


@pytest.mark.parametrize("return_indices", [False, True])
@pytest.mark.parametrize("case", POOL_CASES, ids=list(POOL_CASES))
def test_max_pool2d_errors(case, return_indices):
    def with_flag(f):
        return lambda *args, **kwargs: f(*args, return_indices=return_indices, **kwargs)

    assert_raises_like_torch(
        lambda: POOL_CASES[case](with_flag(fastconv.max_pool2d)),
        lambda: POOL_CASES[case](with_flag(F.max_pool2d)),
    )


@pytest.mark.parametrize("case", UNPOOL_CASES, ids=list(UNPOOL_CASES))
def test_max_unpool2d_errors(case):
    assert_raises_like_torch(
        lambda: UNPOOL_CASES[case](fastconv.max_unpool2d),
        lambda: UNPOOL_CASES[case](F.max_unpool2d),
    )


def test_module_errors_match():
    assert_raises_like_torch(
        lambda: fastconv.nn.Conv2d(3, 4, 3)(x4(1, 2, 5, 5)),
        lambda: torch.nn.Conv2d(3, 4, 3)(x4(1, 2, 5, 5)),
    )
    assert_raises_like_torch(
        lambda: fastconv.nn.Conv2d(3, 6, 3, groups=4), lambda: torch.nn.Conv2d(3, 6, 3, groups=4)
    )
    assert_raises_like_torch(
        lambda: fastconv.nn.MaxPool2d(3, padding=2)(x4(1, 2, 5, 5)),
        lambda: torch.nn.MaxPool2d(3, padding=2)(x4(1, 2, 5, 5)),
    )


def test_unsupported_dtype_is_a_clear_error():
    # torch computes integer convolutions; fastconv does not (yet) and says so.
    with pytest.raises(NotImplementedError, match="not implemented for 'Long'"):
        fastconv.conv2d(
            torch.ones(1, 1, 3, 3, dtype=torch.long), torch.ones(1, 1, 1, 1, dtype=torch.long)
        )


# A module called without a tensor: the TypeError of torch's parser (conv1d and conv2d, which have
# several signatures, word it differently); LPPool and MaxUnpool fail alike in Python.
NON_TENSOR_MODULES = [
    ("Conv2d", (3, 3, 3)),
    ("Conv1d", (3, 3, 3)),
    ("ConvTranspose2d", (3, 3, 3)),
    ("ConvTranspose1d", (3, 3, 3)),
    ("MaxPool2d", (2,)),
    ("MaxPool1d", (2,)),
    ("AvgPool2d", (2,)),
    ("AvgPool1d", (2,)),
    ("LPPool2d", (2, 2)),
    ("LPPool1d", (2, 2)),
]


@pytest.mark.parametrize("name, args", NON_TENSOR_MODULES, ids=[n for n, _ in NON_TENSOR_MODULES])
def test_module_called_with_none_raises_like_torch(name, args):
    _, torch_error = call(lambda: getattr(torch.nn, name)(*args)(None))
    _, fast_error = call(lambda: getattr(fastconv.nn, name)(*args)(None))
    assert type(fast_error) is type(torch_error), f"{fast_error!r} vs torch's {torch_error!r}"
    if name not in ("Conv2d", "Conv1d"):
        assert str(fast_error) == str(torch_error)


SPARSE_CALLS = {
    "conv2d input": lambda f: f.conv2d(x4(1, 3, 5, 5).to_sparse(), x4(4, 3, 3, 3)),
    "conv2d weight": lambda f: f.conv2d(x4(1, 3, 5, 5), x4(4, 3, 3, 3).to_sparse()),
    "conv2d unbatched": lambda f: f.conv2d(x4(3, 5, 5).to_sparse(), x4(4, 3, 3, 3)),
    "conv1d input": lambda f: f.conv1d(x4(1, 3, 5).to_sparse(), x4(4, 3, 3)),
    "conv_transpose2d input": lambda f: f.conv_transpose2d(
        x4(1, 3, 5, 5).to_sparse(), x4(3, 4, 3, 3)
    ),
    "conv_transpose1d input": lambda f: f.conv_transpose1d(x4(1, 3, 5).to_sparse(), x4(3, 4, 3)),
}


@pytest.mark.parametrize("case", SPARSE_CALLS.values(), ids=list(SPARSE_CALLS))
def test_sparse_tensors_are_refused_like_torch(case):
    """torch's dense convolution asks the sparse tensor for its memory format and fails."""
    assert_raises_like_torch(lambda: case(fastconv), lambda: case(F))
