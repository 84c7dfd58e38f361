"""convert() and revert(): swap torch.nn's convolution and pooling layers (FASTCONV_CLASS: Conv2d,
ConvTranspose2d, MaxPool2d, MaxUnpool2d, AvgPool2d, LPPool2d and their 1-d forms) in an existing
model for fastconv's, and back.

A replacement is a new module object of the other class that takes over the replaced module's
state by reference: its parameter, buffer, submodule and hook dictionaries are the very same
objects, so `new.weight is old.weight`, hooks keep firing (and their handles still remove them),
and requires_grad, device, dtype and training mode carry over. Only the class, and so the forward,
changes. With fold_batchnorm=True, each converted Conv2d followed by a BatchNorm2d also takes that
BatchNorm into its weights while it is in eval mode (batchnorm_folding.py).
"""

import copy
import fnmatch
import weakref
from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Optional, Tuple, Union

import torch

from . import batchnorm_folding, nn as fastconv_nn
from ._extension import build_info
from ._rebuild import rebuilt_as

__all__ = ["convert", "revert", "conversion_report", "ConversionReport", "Skipped"]

# torch class -> fastconv class. Only these exact classes are converted: a subclass may override
# forward or add state that fastconv's module would ignore.
FASTCONV_CLASS = {
    torch.nn.Conv2d: fastconv_nn.Conv2d,
    torch.nn.ConvTranspose2d: fastconv_nn.ConvTranspose2d,
    torch.nn.Conv1d: fastconv_nn.Conv1d,
    torch.nn.ConvTranspose1d: fastconv_nn.ConvTranspose1d,
    torch.nn.MaxPool2d: fastconv_nn.MaxPool2d,
    torch.nn.MaxUnpool2d: fastconv_nn.MaxUnpool2d,
    torch.nn.AvgPool2d: fastconv_nn.AvgPool2d,
    torch.nn.LPPool2d: fastconv_nn.LPPool2d,
    torch.nn.MaxPool1d: fastconv_nn.MaxPool1d,
    torch.nn.AvgPool1d: fastconv_nn.AvgPool1d,
    torch.nn.MaxUnpool1d: fastconv_nn.MaxUnpool1d,
    torch.nn.LPPool1d: fastconv_nn.LPPool1d,
}
TORCH_CLASS = {fast: torch_cls for torch_cls, fast in FASTCONV_CLASS.items()}

CONV_DTYPES = (
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.complex64,
    torch.complex128,
)

Selector = Union[str, type]  # an fnmatch pattern for a qualified module name, or a module class


@dataclass(frozen=True)
class Skipped:
    """A torch layer of FASTCONV_CLASS (or subclass) that convert() left alone."""

    name: str  # qualified name in the model ("" for the model itself)
    type: str  # class name
    reason: str


@dataclass
class ConversionReport:
    """What one convert() call replaced and what it left alone, by qualified module name."""

    converted: List[str] = field(default_factory=list)
    skipped: List[Skipped] = field(default_factory=list)
    # (convolution, BatchNorm) names of the pairs folded by fold_batchnorm=True
    folded: List[Tuple[str, str]] = field(default_factory=list)

    def __str__(self):
        folded = f", {len(self.folded)} BatchNorms folded" if self.folded else ""
        lines = [
            f"fastconv.convert: {len(self.converted)} modules converted{folded}, "
            f"{len(self.skipped)} left alone"
        ]
        lines += [f"  {s.name or '(model)'} ({s.type}): {s.reason}" for s in self.skipped]
        return "\n".join(lines)


# The report of the latest convert() of each model, looked up by conversion_report(model).
_reports: "weakref.WeakKeyDictionary[torch.nn.Module, ConversionReport]" = (
    weakref.WeakKeyDictionary()
)


def conversion_report(model: torch.nn.Module) -> ConversionReport:
    """The report of the latest fastconv.convert() that returned `model`."""
    try:
        return _reports[model]
    except KeyError:
        raise KeyError("this model was not returned by fastconv.convert()") from None


def _as_list(selectors) -> List[Selector]:
    if selectors is None:
        return []
    if isinstance(selectors, (str, type)):
        return [selectors]
    return list(selectors)


def _matching_selector(
    name: str, module: torch.nn.Module, selectors: List[Selector]
) -> Optional[Selector]:
    """The first selector that matches the module: a class it is an instance of, or a pattern
    that matches its qualified name or the name of a module that contains it."""
    parts = name.split(".")
    names = [".".join(parts[:i]) for i in range(1, len(parts) + 1)] if name else [""]
    for selector in selectors:
        if isinstance(selector, type):
            if isinstance(module, selector):
                return selector
        elif any(fnmatch.fnmatchcase(n, selector) for n in names):
            return selector
    return None


def _describe(selector: Selector) -> str:
    return selector.__name__ if isinstance(selector, type) else repr(selector)


def _device_problem(device: torch.device) -> Optional[str]:
    if device.type in ("cpu", "meta"):
        return None
    if device.type == "cuda":
        return (
            None if build_info()["cuda"] else "on cuda, but this fastconv build has no CUDA kernels"
        )
    return f"on {device.type}: fastconv has CPU and CUDA kernels only"


def _first_tensor_device(model: torch.nn.Module) -> Optional[torch.device]:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return None


def _unsupported(module: torch.nn.Module, model_device: Optional[torch.device]) -> Optional[str]:
    """Why fastconv cannot run this module as configured, or None if it can."""
    if type(module) not in FASTCONV_CLASS:
        base = next(cls for cls in FASTCONV_CLASS if isinstance(module, cls))
        return (
            f"subclass of torch.nn.{base.__name__} (its forward may differ): only exact classes "
            "are converted"
        )
    if isinstance(module, torch.nn.modules.conv._ConvNd):
        if module.weight.dtype not in CONV_DTYPES:
            return (
                f"dtype {module.weight.dtype}: fastconv convolves floating-point and complex "
                "tensors only"
            )
        return _device_problem(module.weight.device)
    # Pooling layers hold no tensors: they are checked against the device the model is on.
    return _device_problem(model_device) if model_device is not None else None


def _replace_modules(
    model: torch.nn.Module, replacement: Callable[[str, torch.nn.Module], Optional[torch.nn.Module]]
) -> torch.nn.Module:
    """Puts replacement(name, module) in place of every module (the model included) for which it
    returns a module. A module registered under several names is decided once, by its first name,
    and replaced by the same new module everywhere."""
    decided = {}  # id(old) -> (old, new or None); holding old keeps its id from being reused

    def visit(parent: torch.nn.Module, prefix: str):
        for child_name, child in parent._modules.items():
            if child is None:
                continue
            if id(child) not in decided:
                name = f"{prefix}.{child_name}" if prefix else child_name
                decided[id(child)] = (child, replacement(name, child))
                visit(child, name)
            new = decided[id(child)][1]
            if new is not None:
                parent._modules[child_name] = new  # same key: the dict's size does not change

    visit(model, "")
    root = replacement("", model)
    return model if root is None else root


def convert(
    model: torch.nn.Module,
    inplace: bool = False,
    include: Union[Selector, Iterable[Selector], None] = None,
    exclude: Union[Selector, Iterable[Selector], None] = None,
    fold_batchnorm: bool = False,
) -> torch.nn.Module:
    """Replaces every torch.nn convolution and pooling layer of FASTCONV_CLASS in `model` (exact
    classes) by fastconv's module, where fastconv supports its configuration, and returns the model.

    The replacement shares the replaced module's parameters, buffers and hooks (the same objects)
    and keeps its training mode. With inplace=False (the default) `model` is left untouched: the
    conversion happens in a deep copy, which is returned. include / exclude select modules by
    class (isinstance) or by fnmatch pattern on the qualified name, which also matches everything
    inside a module of that name ("features", "layer4.*", "*.downsample.0"): only modules matching
    include (when given) and not matching exclude are converted.

    fold_batchnorm=True: each converted Conv2d whose output goes only to a BatchNorm2d (as
    torch.fx traces the model) computes with that BatchNorm folded into its weights while the
    BatchNorm is in eval mode, which then passes its input through: inference without BatchNorm's
    pass over the activations. In train mode both compute as before; parameters, buffers and
    state_dict stay as they are (fastconv/batchnorm_folding.py).

    fastconv.conversion_report(returned_model) lists what was converted and, with the reason,
    every such layer (or subclass) left alone. fastconv.revert undoes it.
    """
    include, exclude = _as_list(include), _as_list(exclude)
    if not inplace:
        model = copy.deepcopy(model)
    model_device = _first_tensor_device(model)
    report = ConversionReport()
    # Traced before the replacement: torch's layers are calls of their own to torch.fx.
    pairs = batchnorm_folding.conv_batchnorm_pairs(model) if fold_batchnorm else []

    def replacement(name: str, module: torch.nn.Module) -> Optional[torch.nn.Module]:
        if not isinstance(module, tuple(FASTCONV_CLASS)) or isinstance(module, tuple(TORCH_CLASS)):
            return None  # not a layer fastconv has, or fastconv's already
        reason = _unsupported(module, model_device)
        if reason is None and include and _matching_selector(name, module, include) is None:
            reason = "not selected by include"
        if reason is None and exclude:
            selector = _matching_selector(name, module, exclude)
            if selector is not None:
                reason = f"excluded by {_describe(selector)}"
        if reason is not None:
            report.skipped.append(Skipped(name, type(module).__name__, reason))
            return None
        report.converted.append(name)
        return rebuilt_as(module, FASTCONV_CLASS[type(module)])

    model = _replace_modules(model, replacement)
    if pairs:
        model = _fold(model, pairs, report)
    _reports[model] = report
    return model


def _fold(model: torch.nn.Module, pairs, report: ConversionReport) -> torch.nn.Module:
    """Puts the folded pairs whose convolution is fastconv's (converted now or before) in place of
    their two modules."""
    replacements = {}
    for conv_name, batchnorm_name in pairs:
        conv, batchnorm = model.get_submodule(conv_name), model.get_submodule(batchnorm_name)
        if type(conv) is fastconv_nn.Conv2d:
            folded_conv, folded_batchnorm = batchnorm_folding.folded_modules(conv, batchnorm)
            replacements[id(conv)], replacements[id(batchnorm)] = folded_conv, folded_batchnorm
            report.folded.append((conv_name, batchnorm_name))
    return _replace_modules(model, lambda name, module: replacements.get(id(module)))


def revert(model: torch.nn.Module, inplace: bool = False) -> torch.nn.Module:
    """Undoes convert(): replaces every fastconv.nn module of FASTCONV_CLASS (exact classes) by the
    torch.nn module, sharing its state as convert() does. With inplace=False (the default) works
    on, and returns, a deep copy."""
    if not inplace:
        model = copy.deepcopy(model)

    def replacement(name: str, module: torch.nn.Module) -> Optional[torch.nn.Module]:
        unfolded = batchnorm_folding.UNFOLDED_CLASS.get(type(module))
        if unfolded is not None:
            module = batchnorm_folding.unfolded(module, unfolded)
            if unfolded is torch.nn.BatchNorm2d:
                return module
        torch_class = TORCH_CLASS.get(type(module))
        return None if torch_class is None else rebuilt_as(module, torch_class)

    return _replace_modules(model, replacement)
