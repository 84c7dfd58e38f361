"""BatchNorm folded into the convolution before it: convert(model, fold_batchnorm=True).

A BatchNorm2d in eval mode is an affine map per channel, y = (x - mean) * s + beta with
s = gamma / sqrt(var + eps), so after a convolution it folds into that convolution's weights:
W' = W * s (per output channel) and b' = (b - mean) * s + beta. One pass over the activations
fewer: a memory-bound pass of its own in eager torch (torch.fx's conv-bn fuser and Inductor's
freezing do the same).

The fold is made at each call, from the modules' current state, so the model stays a model:
- the convolution (BatchNormFoldedConv2d) computes with the folded weights while its BatchNorm is
  in eval mode with running statistics, and the BatchNorm (FoldedBatchNorm2d) then passes its input
  through; in train mode both do what torch's do (batch statistics, running-stat updates);
- parameters, buffers and state_dict keys stay where they were, so optimisers, load_state_dict,
  .to() and revert() (which gives back torch's Conv2d and BatchNorm2d) work as before;
- the folded weights are cached, for calls that record no gradient, until a parameter or running
  statistic changes (identity, storage and version of each); calls that need gradients of the
  parameters (frozen BatchNorm while fine-tuning), torch.func transforms and tracing fold afresh,
  differentiably;
- under torch.compile (and torch.export) both compute unfolded: the graph would fold the weights
  again at every call (12 ms of a 60 ms resnet18 inference at batch 1), where Inductor fuses the
  BatchNorm into one pass with what follows it;
- torch.jit.script scripts the two modules as a plain Conv2d and BatchNorm2d (same results,
  unfolded); torch puts what __prepare_scriptable__ returns into the model being scripted, so
  that model's pairs are unfolded from then on too.

Pairs are found by tracing the model with torch.fx: a Conv2d whose only user is a BatchNorm2d with
as many channels, each module called once. A model that does not trace is converted without
folding, with a warning.
"""

import warnings
from collections import Counter
from typing import List, Optional, Tuple

import torch
import torch.fx

from . import _transforms
from ._rebuild import rebuilt_as
from .nn import Conv2d


def _uses_batch_statistics(batchnorm: torch.nn.BatchNorm2d) -> bool:
    """torch's rule in BatchNorm's forward: batch statistics in train mode, or without running
    statistics."""
    return batchnorm.training or batchnorm.running_mean is None or batchnorm.running_var is None


def folded_weight_and_bias(
    weight: torch.Tensor, bias: Optional[torch.Tensor], batchnorm: torch.nn.BatchNorm2d
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(W', b') of the convolution (weight, bias) followed by `batchnorm` in eval mode; computed
    in float64 (or float32 for half-precision weights) and rounded once to the weight's dtype."""
    wide = torch.float64 if weight.dtype in (torch.float32, torch.float64) else torch.float32
    scale = torch.rsqrt(batchnorm.running_var.to(wide) + batchnorm.eps)
    if batchnorm.weight is not None:
        scale = scale * batchnorm.weight.to(wide)
    shift = -batchnorm.running_mean.to(wide)
    if bias is not None:
        shift = shift + bias.to(wide)
    folded_bias = shift * scale
    if batchnorm.bias is not None:
        folded_bias = folded_bias + batchnorm.bias.to(wide)
    folded_weight = weight.to(wide) * scale.reshape(-1, *[1] * (weight.dim() - 1))
    return folded_weight.to(weight.dtype), folded_bias.to(weight.dtype)


def _fold_sources(conv: torch.nn.Conv2d, batchnorm: torch.nn.BatchNorm2d):
    return (
        conv.weight,
        conv.bias,
        batchnorm.weight,
        batchnorm.bias,
        batchnorm.running_mean,
        batchnorm.running_var,
    )


def _cache_key(sources) -> tuple:
    return tuple(
        None if t is None else (t._version, t.data_ptr(), t.dtype, t.device) for t in sources
    )


class BatchNormFoldedConv2d(Conv2d):
    """A fastconv Conv2d with the BatchNorm2d that follows it folded in while that BatchNorm is in
    eval mode (module docstring). Made by convert(model, fold_batchnorm=True)."""

    _folded_batchnorm: torch.nn.BatchNorm2d  # not a submodule: it stays where the model has it

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        batchnorm = self._folded_batchnorm
        if _uses_batch_statistics(batchnorm) or torch.compiler.is_compiling():
            return self._conv_forward(input, self.weight, self.bias)
        weight, bias = self._folded(batchnorm)
        return self._conv_forward(input, weight, bias)

    def _folded(self, batchnorm: torch.nn.BatchNorm2d) -> Tuple[torch.Tensor, torch.Tensor]:
        sources = _fold_sources(self, batchnorm)
        if (
            torch.jit.is_tracing()
            or _transforms.active()
            or (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in sources))
        ):
            return folded_weight_and_bias(self.weight, self.bias, batchnorm)
        cache = self.__dict__.get("_fold_cache")
        key = (_cache_key(sources), batchnorm.eps)
        # The sources themselves are held with the key: a tensor freed and another allocated at
        # its address with the same version would otherwise match.
        if cache is None or cache[0] != key or any(a is not b for a, b in zip(cache[1], sources)):
            with torch.no_grad():
                cache = (key, sources, folded_weight_and_bias(self.weight, self.bias, batchnorm))
            self.__dict__["_fold_cache"] = cache
        return cache[2]

    def __prepare_scriptable__(self):
        return unfolded(self, Conv2d)


class FoldedBatchNorm2d(torch.nn.BatchNorm2d):
    """A BatchNorm2d folded into the convolution before it: the identity while in eval mode with
    running statistics (the convolution applied it), torch's BatchNorm2d otherwise (and under
    torch.compile, where the convolution does not fold)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if _uses_batch_statistics(self) or torch.compiler.is_compiling():
            return super().forward(input)
        self._check_input_dim(input)
        return input

    def __prepare_scriptable__(self):
        return unfolded(self, torch.nn.BatchNorm2d)


def unfolded(module: torch.nn.Module, cls: type) -> torch.nn.Module:
    """`module` as class `cls`, sharing its state, without the folding's attributes."""
    plain = rebuilt_as(module, cls)
    plain.__dict__.pop("_folded_batchnorm", None)
    plain.__dict__.pop("_fold_cache", None)
    return plain


UNFOLDED_CLASS = {BatchNormFoldedConv2d: Conv2d, FoldedBatchNorm2d: torch.nn.BatchNorm2d}


class _ConvBatchNormTracer(torch.fx.Tracer):
    """Keeps convolutions (torch's and fastconv's) and BatchNorms as single calls."""

    def is_leaf_module(self, module: torch.nn.Module, qualified_name: str) -> bool:
        return isinstance(
            module, (torch.nn.Conv2d, torch.nn.BatchNorm2d)
        ) or super().is_leaf_module(module, qualified_name)


def conv_batchnorm_pairs(model: torch.nn.Module) -> List[Tuple[str, str]]:
    """(convolution name, BatchNorm name) of each Conv2d whose output goes only to a BatchNorm2d
    of as many channels, both modules called once in the model's forward (as torch.fx traces it).
    A model that does not trace has none, with a warning."""
    try:
        graph = _ConvBatchNormTracer().trace(model)
    except Exception as error:  # noqa: BLE001  any tracing failure: convert without folding
        warnings.warn(
            "fastconv.convert(fold_batchnorm=True): the model does not trace with torch.fx, so no "
            f"BatchNorm was folded ({type(error).__name__}: {error})",
            stacklevel=3,
        )
        return []
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
            continue
        batchnorm = model.get_submodule(node.target)
        source = node.args[0]
        if (
            type(batchnorm) is not torch.nn.BatchNorm2d
            or not isinstance(source, torch.fx.Node)
            or source.op != "call_module"
            or len(source.users) != 1
            or calls[node.target] != 1
            or calls[source.target] != 1
        ):
            continue
        conv = model.get_submodule(source.target)
        if type(conv) in (torch.nn.Conv2d, Conv2d) and conv.out_channels == batchnorm.num_features:
            pairs.append((source.target, node.target))
    return pairs


def folded_modules(
    conv: Conv2d, batchnorm: torch.nn.BatchNorm2d
) -> Tuple[BatchNormFoldedConv2d, FoldedBatchNorm2d]:
    """The two replacements, sharing the modules' state (as convert's replacements do)."""
    folded_batchnorm = rebuilt_as(batchnorm, FoldedBatchNorm2d)
    folded_conv = rebuilt_as(conv, BatchNormFoldedConv2d)
    folded_conv.__dict__["_folded_batchnorm"] = folded_batchnorm  # a reference, not a submodule
    return folded_conv, folded_batchnorm
