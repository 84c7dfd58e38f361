"""torch's own OpInfo samples and error inputs (common_methods_invocations.op_db), run through
fastconv's functionals and compared with torch's: values, indices, gradients and errors.

Each op is one row of OPS: the op_db name and the fastconv function taking the same arguments.
A new functional adds its row here."""

import pytest
import torch

# torch's test inputs; they need the expecttest package (.ci/run installs it): a missing one fails
# here rather than skipping the file.
from torch.testing._internal.common_methods_invocations import op_db

import fastconv
from helpers import assert_close, assert_same_error, call

# op_db name -> fastconv's function with the same signature.
OPS = {
    "nn.functional.conv2d": fastconv.conv2d,
    "nn.functional.conv_transpose2d": fastconv.conv_transpose2d,
    "nn.functional.conv1d": fastconv.conv1d,
    "nn.functional.conv_transpose1d": fastconv.conv_transpose1d,
    "nn.functional.max_pool2d": fastconv.max_pool2d,
    "nn.functional.max_unpool2d": fastconv.max_unpool2d,
    "nn.functional.avg_pool2d": fastconv.avg_pool2d,
    "nn.functional.avg_pool1d": fastconv.avg_pool1d,
    "nn.functional.max_pool1d": fastconv.max_pool1d,
    "nn.functional.max_unpool1d": fastconv.max_unpool1d,
}

DTYPES = [torch.float32, torch.float64]


def _opinfos(name):
    found = [op for op in op_db if op.name == name]
    assert found, f"{name} is not in torch's op_db"
    return found


def _cases(kind):
    cases = []
    for name in OPS:
        for op in _opinfos(name):
            test_id = name.split(".")[-1] + (
                f"-{op.variant_test_name}" if op.variant_test_name else ""
            )
            cases.append(pytest.param(name, op, id=test_id))
    return cases


def _leaves(sample):
    return [
        t
        for t in [sample.input, *sample.args, *sample.kwargs.values()]
        if isinstance(t, torch.Tensor) and t.requires_grad
    ]


def _outputs(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def _assert_same_results(fast, ref, dtype):
    fast, ref = _outputs(fast), _outputs(ref)
    assert len(fast) == len(ref)
    for actual, expected in zip(fast, ref):
        if expected.dtype == torch.int64:  # indices: identical, int64
            assert actual.dtype == torch.int64
            torch.testing.assert_close(actual, expected, rtol=0, atol=0)
        else:
            assert_close(actual, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name, op", _cases("samples"))
def test_samples_match_torch(name, op, dtype):
    """Every sample: the same values and indices; for floating samples the same gradients."""
    fast_fn = OPS[name]
    count = 0
    for sample in op.sample_inputs("cpu", dtype, requires_grad=True):
        ref, ref_error = call(lambda: op.op(sample.input, *sample.args, **sample.kwargs))
        fast, fast_error = call(lambda: fast_fn(sample.input, *sample.args, **sample.kwargs))
        if ref_error is not None:
            assert_same_error(fast_error, ref_error)
            continue
        assert fast_error is None, f"{sample}: fastconv raised {fast_error!r}"
        _assert_same_results(fast, ref, dtype)
        leaves = _leaves(sample)
        differentiable = [o for o in _outputs(ref) if o.is_floating_point() and o.requires_grad]
        if leaves and differentiable:
            first = _outputs(ref)[0]
            grad_out = torch.randn_like(first)
            ref_grads = torch.autograd.grad(first, leaves, grad_out, allow_unused=True)
            fast_grads = torch.autograd.grad(_outputs(fast)[0], leaves, grad_out, allow_unused=True)
            for actual, expected in zip(fast_grads, ref_grads):
                assert (actual is None) == (expected is None)
                if expected is not None:
                    assert_close(actual, expected, dtype)
        count += 1
    assert count > 0, f"no sample of {name} ran"


@pytest.mark.parametrize("name, op", [c for c in _cases("errors") if c.values[1].error_inputs_func])
def test_error_inputs_match_torch(name, op):
    """Every error input: the same exception type and message as torch's own op."""
    fast_fn = OPS[name]
    for error_input in op.error_inputs("cpu"):
        sample = error_input.sample_input
        _, ref_error = call(lambda: op.op(sample.input, *sample.args, **sample.kwargs))
        assert ref_error is not None, f"torch accepted its own error input {sample}"
        _, fast_error = call(lambda: fast_fn(sample.input, *sample.args, **sample.kwargs))
        assert_same_error(fast_error, ref_error)
