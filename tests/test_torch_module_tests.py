"""torch's own module test definitions, run against fastconv's modules and compared with torch's:

- common_modules.module_db (the ModuleInfo entries behind torch's test_modules.py): for every conv
  and pooling entry that fastconv.nn provides, each ModuleInput builds torch's module and
  fastconv's from the same constructor arguments (fastconv's loads torch's state_dict), and both
  run the same forward input: outputs (values, dtype, layout), gradients of the inputs and of the
  parameters; the same in every combination of contiguous and channels_last inputs and
  parameters, as test_modules.py's test_memory_format does; and each module_error_inputs_func
  error input raises torch's exception type, matching torch's message regex.
- common_nn's module_tests and get_new_module_tests() dicts for those modules: torch's module and
  fastconv's (built from constructor_args, or by the dict's constructor with fastconv's class in
  torch.nn's place) on input_size inputs: outputs and gradients.

module_db has no MaxUnpool, and neither list has Lazy or 3-d forms fastconv provides; those
entries are not run. Every test asserts that it ran samples, so that none passes empty."""

import contextlib

import pytest
import torch
from torch.testing._internal import common_nn
from torch.testing._internal.common_modules import ModuleErrorEnum, module_db

import fastconv
from helpers import assert_close, check_against_torch

# torch.nn class name -> fastconv's drop-in, for every fastconv module.
FAST_MODULES = {name: getattr(fastconv.nn, name) for name in fastconv.nn.__all__}

DTYPES = [torch.float64, torch.float32]


def _module_infos():
    infos = [info for info in module_db if info.module_cls.__name__ in FAST_MODULES]
    names = {info.module_cls.__name__ for info in infos}
    # The entries module_db has today; a rename or removal there shows here instead of shrinking
    # the run.
    expected = set(FAST_MODULES) - {"MaxUnpool1d", "MaxUnpool2d"}
    assert names == expected, f"module_db's fastconv modules changed: {sorted(names ^ expected)}"
    return [pytest.param(info, id=info.name.split(".")[-1]) for info in infos]


MODULE_INFOS = _module_infos()


def _twins(info, constructor_input, dtype, memory_format=None):
    """torch's module and fastconv's, from the same constructor arguments, with torch's state."""
    args, kwargs = constructor_input.args, constructor_input.kwargs
    reference = info.module_cls(*args, **kwargs).to(dtype)
    fast = FAST_MODULES[info.module_cls.__name__](*args, **kwargs).to(dtype)
    fast.load_state_dict(reference.state_dict())
    if memory_format is not None:
        reference.to(memory_format=memory_format)
        fast.to(memory_format=memory_format)
    return fast, reference


def _assert_same_layout(fast, reference):
    fast = fast if isinstance(fast, tuple) else (fast,)
    reference = reference if isinstance(reference, tuple) else (reference,)
    for actual, expected in zip(fast, reference):
        for memory_format in (torch.contiguous_format, torch.channels_last):
            if expected.dim() != 4 and memory_format is torch.channels_last:
                continue
            assert actual.is_contiguous(memory_format=memory_format) == expected.is_contiguous(
                memory_format=memory_format
            ), f"{memory_format}: {actual.stride()} vs torch's {expected.stride()}"


def _check_module_pair(fast, reference, inputs, kwargs):
    """Outputs, input gradients (check_against_torch) and parameter gradients, as torch's (NaN
    where torch gives NaN: LPPool of negative values with a fractional norm)."""
    runs = check_against_torch(fast, reference, *inputs, kwargs=kwargs, errors=True, equal_nan=True)
    if runs is None:  # torch raised; fastconv raised the same
        return
    _assert_same_layout(runs[0].outputs, runs[1].outputs)
    fast_params, reference_params = (
        dict(fast.named_parameters()),
        dict(reference.named_parameters()),
    )
    assert fast_params.keys() == reference_params.keys()
    for name, expected in reference_params.items():
        actual = fast_params[name].grad
        if expected.grad is None:
            assert actual is None, f"{name}: fastconv gives a gradient where torch gives none"
        else:
            assert actual is not None, f"{name}: torch gives a gradient, fastconv none"
            assert actual.shape == expected.grad.shape, name
            assert_close(actual, expected.grad, equal_nan=True)


def _samples(info, dtype, requires_grad=True):
    return info.module_inputs_func(info, "cpu", dtype, requires_grad, True)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("info", MODULE_INFOS)
def test_module_db_samples_match_torch(info, dtype):
    """Every ModuleInput: outputs, input and parameter gradients as torch's module gives them."""
    count = 0
    for sample in _samples(info, dtype):
        fast, reference = _twins(info, sample.constructor_input, dtype)
        forward = sample.forward_input
        _check_module_pair(fast, reference, forward.args, forward.kwargs)
        count += 1
    assert count > 0, f"no sample of {info.name} ran"


def _as_format(value, memory_format):
    if isinstance(value, torch.Tensor) and value.dim() == 4:
        return value.detach().to(memory_format=memory_format)
    return value


@pytest.mark.parametrize("info", MODULE_INFOS)
def test_module_db_memory_formats_match_torch(info):
    """test_modules.py's test_memory_format: each 4-d input contiguous and channels_last, the
    parameters contiguous and channels_last; values, gradients and every layout as torch's."""
    formats = [torch.contiguous_format, torch.channels_last]
    count = 0
    for sample in _samples(info, torch.float64):
        forward = sample.forward_input
        for input_format in formats:
            inputs = [_as_format(a, input_format) for a in forward.args]
            for module_format in formats:
                fast, reference = _twins(
                    info, sample.constructor_input, torch.float64, module_format
                )
                _check_module_pair(fast, reference, inputs, forward.kwargs)
                count += 1
    assert count > 0, f"no sample of {info.name} ran"


@pytest.mark.parametrize(
    "info", [p for p in MODULE_INFOS if p.values[0].module_error_inputs_func is not None]
)
def test_module_db_error_inputs_match_torch(info):
    """Every module_error_inputs_func input: torch's exception type, with a message that matches
    torch's regex (at construction or in the forward, where torch's entry says)."""
    count = 0
    for error_input in info.module_error_inputs_func(info, "cpu", torch.float32, False, True):
        sample = error_input.module_error_input
        for cls in (info.module_cls, FAST_MODULES[info.module_cls.__name__]):
            args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
            if error_input.error_on == ModuleErrorEnum.CONSTRUCTION_ERROR:
                run = lambda: cls(*args, **kwargs)  # noqa: E731
            else:
                module = cls(*args, **kwargs)
                forward = sample.forward_input
                run = lambda: module(*forward.args, **forward.kwargs)  # noqa: E731
            with pytest.raises(error_input.error_type, match=error_input.error_regex):
                run()
        count += 1
    assert count > 0, f"no error input of {info.name} ran"


# ------------------------------------------------------------------------------------ common_nn


def _common_nn_entries():
    entries = []
    for entry in common_nn.module_tests + common_nn.get_new_module_tests():
        name = entry.get("module_name") or entry["fullname"].split("_")[0]
        if name not in FAST_MODULES or "input_size" not in entry:
            continue
        test_id = entry.get("fullname") or "_".join(filter(None, [name, entry.get("desc")]))
        entries.append(pytest.param(name, entry, id=test_id))
    return entries


COMMON_NN_ENTRIES = _common_nn_entries()


@contextlib.contextmanager
def _fastconv_in_torch_nn(name):
    """torch.nn.<name> is fastconv's class inside the block (for the dicts' constructors)."""
    original = getattr(torch.nn, name)
    setattr(torch.nn, name, FAST_MODULES[name])
    try:
        yield
    finally:
        setattr(torch.nn, name, original)


def _common_nn_twins(name, entry, dtype):
    if "constructor_args" in entry:
        reference = getattr(torch.nn, name)(*entry["constructor_args"])
        fast = FAST_MODULES[name](*entry["constructor_args"])
    else:
        reference = entry["constructor"]()
        with _fastconv_in_torch_nn(name):
            fast = entry["constructor"]()
    assert type(reference) is getattr(torch.nn, name) and type(fast) is FAST_MODULES[name]
    reference, fast = reference.to(dtype), fast.to(dtype)
    fast.load_state_dict(reference.state_dict())
    return fast, reference


def test_common_nn_entries_found():
    """The conv entries of common_nn that fastconv's modules take (a rename there fails here)."""
    names = {p.values[0] for p in COMMON_NN_ENTRIES}
    assert names == {"Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"}, names
    assert len(COMMON_NN_ENTRIES) >= 40, len(COMMON_NN_ENTRIES)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name, entry", COMMON_NN_ENTRIES)
def test_common_nn_entry_matches_torch(name, entry, dtype):
    """torch's module and fastconv's on the entry's input: outputs and all gradients; the
    output_size where the entry gives one."""
    fast, reference = _common_nn_twins(name, entry, dtype)
    x = torch.randn(entry["input_size"], dtype=dtype)
    _check_module_pair(fast, reference, [x], {})
    if "output_size" in entry:
        assert tuple(fast(x).shape) == tuple(entry["output_size"])


def test_module_db_and_common_nn_ran():
    """The counts this file runs (a shrinking module_db or common_nn shows here)."""
    samples = sum(len(list(_samples(p.values[0], torch.float64))) for p in MODULE_INFOS)
    assert len(MODULE_INFOS) == 10 and samples >= 30, (len(MODULE_INFOS), samples)
