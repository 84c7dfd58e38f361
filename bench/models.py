"""The models suite: whole torchvision networks, converted by fastconv.convert(model,
fold_batchnorm=True) against the same networks with torch's own layers (random weights, nothing
downloaded). The folding acts in eval mode only: inference runs each BatchNorm that follows a
convolution inside it, the training step runs every BatchNorm as torch does.

Passes of a network (names distinct from the layer suites' fwd / bwd / fwdbwd, as they differ in
kind, not only in scope):
  infer  eval mode under torch.no_grad(): model(x), at N=1 and N=8;
  train  train mode: gradients set to None, model(x), cross-entropy against fixed targets,
         backward (parameter gradients). No optimizer step: it would be the same code on the
         same parameters for both models, and would only dilute the ratio.

Each case is checked before it is timed: infer compares the eval output, train the train-mode
output and every parameter's gradient, each against the same network evaluated in float64
(fastconv's error may be at most a few times torch's own float32 error; see CHECK_FACTORS).
"""

import copy
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

import fastconv

from .timing import Candidate
from .workloads import CorrectnessError, normalized_error

MODEL_PASSES = ("infer", "train")
# The implementations timed: the converted network and the original, each fed NCHW input and, with
# the network's parameters and input in channels_last, the same with CHANNELS_LAST appended.
IMPLS = ("fastconv", "torch")
CHANNELS_LAST = "_cl"
INFERENCE_BATCHES = (1, 8)
IMAGE_SIZE = 224
CLASSES = 1000
SUITE_NAME = "models"
# fastconv's error against the float64 network may be this many times torch's own (per pass), plus
# FLOOR_EPS epsilons of the dtype (where torch happens to be exact). Inference: twice, as
# tests/test_torchvision_models.py asks; the error is the largest deviation relative to the
# largest value. Training: four times, as the layer suites ask of gradients, but at least
# GRADIENT_FLOOR; each gradient's error is the norm of its deviation relative to its own norm, not
# the largest element's. A max-pool near tie or a ReLU input at zero that rounding decides
# differently reroutes a gradient element: in float32 that is a lottery. Torch's own worst-element
# error was 0.08-0.22 (train-mode batch norm over 8 images: resnet18, resnet50, mobilenet_v2,
# googlenet, densenet121); in vgg16 at N=2 torch's norm error was 3e-6 but 2-5e-3 with only its
# first or only its second convolution converted (measured 2026-12-01; presumably a few of the 1.6M
# windows of its first pool decided differently). A gradient 10% off is 0.1. The gradients are
# judged by their worst parameter, fastconv's against torch's: a per-parameter ratio would fail by
# chance (over mobilenet_v2's 141 parameters with nonzero gradients it reached 3.3 between two
# correct float32 runs).
CHECK_FACTORS = {"infer": 2.0, "train": 4.0}
FLOOR_EPS = 8
GRADIENT_FLOOR = 2e-2
# Parameters whose float64 gradient is below this fraction of the network's largest have a zero
# gradient up to rounding (e.g. the bias of a batch norm whose shift a later batch norm removes:
# 1e-19..1e-16 of the largest in mobilenet_v2); relative to themselves, both runs are pure noise.
ZERO_GRADIENT = 1e-8


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[], torch.nn.Module]  # random weights
    # The training step's batch: 8, or less where a network's step would dominate the suite's time
    # (per image, a VGG-16 step costs 3.8x the FLOPs of a resnet50 step; issue 11's table used N=2).
    train_batch: int = 8


def _torchvision_models():
    import torchvision.models  # optional: only the models suite needs it

    return torchvision.models


def model_specs() -> Dict[str, ModelSpec]:
    tv = lambda: _torchvision_models()  # noqa: E731  (imported when a network is built)
    specs = [
        ModelSpec("resnet18", lambda: tv().resnet18(weights=None)),
        ModelSpec("resnet50", lambda: tv().resnet50(weights=None)),
        ModelSpec("vgg16", lambda: tv().vgg16(weights=None), train_batch=2),
        ModelSpec("mobilenet_v2", lambda: tv().mobilenet_v2(weights=None)),
        ModelSpec(
            "googlenet", lambda: tv().googlenet(weights=None, aux_logits=False, init_weights=True)
        ),
        ModelSpec("densenet121", lambda: tv().densenet121(weights=None)),
        ModelSpec("resnext50_32x4d", lambda: tv().resnext50_32x4d(weights=None)),
    ]
    return {spec.name: spec for spec in specs}


MODELS = model_specs()
# The case the default and --quick runs time (the whole suite is --suite models or --full); the
# training step's when only that pass is chosen.
REPRESENTATIVE = ("resnet18", "infer", 1)
REPRESENTATIVE_TRAINING = ("resnet18", "train", MODELS["resnet18"].train_batch)


def torchvision_available() -> bool:
    try:
        _torchvision_models()
        return True
    except ImportError:
        return False


@dataclass(frozen=True)
class ModelCase:
    model: str
    pass_name: str
    batch: int
    suite: str = SUITE_NAME

    @property
    def label(self) -> str:
        return f"{self.model} {self.pass_name} N={self.batch}"


def model_cases(passes=MODEL_PASSES, whole: bool = True) -> List[ModelCase]:
    """Every network's cases (inference at each batch, then its training step), or only the
    representative one; restricted to the passes given."""
    if not whole:
        chosen = [case for case in (REPRESENTATIVE, REPRESENTATIVE_TRAINING) if case[1] in passes]
        return [ModelCase(*chosen[0])] if chosen else []
    cases = []
    for spec in MODELS.values():
        if "infer" in passes:
            cases += [ModelCase(spec.name, "infer", n) for n in INFERENCE_BATCHES]
        if "train" in passes:
            cases.append(ModelCase(spec.name, "train", spec.train_batch))
    return cases


def calibrate_batchnorm(model: torch.nn.Module, x: torch.Tensor) -> None:
    """Running statistics = the statistics of x, as in tests/test_torchvision_models.py. With the
    initial ones (mean 0, var 1) activations shrink layer after layer in eval mode: outputs
    would barely depend on the input (nothing to check) and could reach subnormal floats (slow)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one batch, that batch's statistics
    model.train()
    with torch.no_grad():
        model(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


class ModelWorkload:
    """One network, one pass, one batch: the original and its converted copy, the same input (and
    targets), their timeable calls and the check."""

    def __init__(
        self,
        case: ModelCase,
        device: torch.device,
        dtype: torch.dtype,
        image_size: int = IMAGE_SIZE,
        compiled: bool = False,
    ):
        self.case, self.device, self.dtype, self.compiled = case, device, dtype, compiled
        torch.manual_seed(0)  # the same weights and input in every run
        original = MODELS[case.model].build()
        self.x = torch.randn(case.batch, 3, image_size, image_size)
        self.target = torch.randint(0, CLASSES, (case.batch,))
        calibrate_batchnorm(
            original, self.x if case.batch > 1 else torch.randn(2, 3, image_size, image_size)
        )
        self.x, self.target = self.x.to(device, dtype), self.target.to(device)
        self.float64_model = original  # float32 copies are made from it, then it becomes float64
        # Each network in both layouts: torch's best eager layout is channels_last for some
        # networks, NCHW for others, and a user would pick it (as fastconv's).
        self.models = {
            "fastconv": fastconv.convert(original, fold_batchnorm=True).to(device, dtype),
            "torch": copy.deepcopy(original).to(device, dtype),
        }
        for impl in IMPLS[:2]:
            self.models[f"{impl}{CHANNELS_LAST}"] = copy.deepcopy(self.models[impl]).to(
                memory_format=torch.channels_last
            )
        self.inputs = {
            impl: self.x.contiguous(memory_format=torch.channels_last)
            if impl.endswith(CHANNELS_LAST)
            else self.x
            for impl in self.models
        }
        report = fastconv.conversion_report(self.models["fastconv"])
        self.converted, self.folded = len(report.converted), len(report.folded)
        for model in self.models.values():
            model.train(case.pass_name == "train")
        if (
            compiled
        ):  # both sides, each layout: torch.compile's defaults (Inductor), as a user would
            self.models = {impl: torch.compile(model) for impl, model in self.models.items()}

    def candidate(self, impl: str) -> Candidate:
        model, x = self.models[impl], self.inputs[impl]
        if self.case.pass_name == "infer":
            return Candidate(lambda: model(x), torch.no_grad)
        return Candidate(lambda: self._train_step(model, x, self.target))

    @staticmethod
    def _train_step(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        output = model(x)
        F.cross_entropy(output.float(), target).backward()
        return output

    def _results(self, model: torch.nn.Module, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The eval output (infer), or the train-mode output and every parameter's gradient (train;
        dropout off, so that all three runs compute the same function: a float64 run need not draw
        the masks a float32 run does, and fastconv does not touch dropout)."""
        if self.case.pass_name == "infer":
            with torch.no_grad():
                return {"output": model(x)}
        dropouts = [
            m for m in model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)
        ]
        for m in dropouts:
            m.eval()
        try:
            output = self._train_step(model, x, self.target)
        finally:
            for m in dropouts:
                m.train()
        return {
            "output": output.detach(),
            **{f"grad {n}": p.grad for n, p in model.named_parameters()},
        }

    def check(self) -> Dict[str, dict]:
        """fastconv's results against the network in float64 must be within CHECK_FACTORS times
        torch's own float32 error in the same layout (see CHECK_FACTORS), in both layouts: the
        output's largest deviation relative to its largest value; the gradients' by their worst
        parameter, the norm of its deviation relative to its norm, fastconv's worst against
        torch's (those with a zero gradient, ZERO_GRADIENT, left out)."""
        reference_model = self.float64_model.to(self.device, torch.float64)
        reference_model.train(self.case.pass_name == "train")
        reference = self._results(reference_model, self.x.double())
        fast_layouts = {
            impl: self._results(self.models[impl], self.inputs[impl])
            for impl in ("fastconv", f"fastconv{CHANNELS_LAST}")
        }
        # Each layout against torch's own error in that layout (torch's channels_last network,
        # its batch norm included, rounds differently from its NCHW one).
        torch_layouts = {
            impl: self._results(self.models[impl.replace("fastconv", "torch")], self.inputs[impl])
            for impl in fast_layouts
        }
        self.float64_model = None  # frees it before timing
        grads = [k for k in reference if k != "output" and reference[k] is not None]
        largest = max((reference[k].abs().max().item() for k in grads), default=0.0)
        groups = {
            "output": ["output"],
            "grads": [
                k for k in grads if reference[k].abs().max().item() > ZERO_GRADIENT * largest
            ],
        }
        factor, floor = CHECK_FACTORS[self.case.pass_name], FLOOR_EPS * torch.finfo(self.dtype).eps
        report = {}
        for group, names in groups.items():
            if not names:
                continue
            error = _norm_error if group == "grads" else _error
            # Each layout's worst tensor and tolerance; the report keeps the worse layout's.
            worst_errors = []
            for impl, fast in fast_layouts.items():
                ours = torch_layouts[impl]
                torch_error = max(error(ours[name], reference[name]) for name in names)
                tolerance = factor * torch_error + floor
                if group == "grads":
                    tolerance = max(tolerance, GRADIENT_FLOOR)
                errors = {name: error(fast[name], reference[name]) for name in names}
                worst = max(errors, key=lambda name: errors[name])
                worst_errors.append((errors[worst], worst, impl, torch_error, tolerance))
            fast_error, worst, impl, torch_error, tolerance = next(
                (e for e in worst_errors if not e[0] <= e[4]),
                max(worst_errors, key=lambda e: e[0] / e[4] if e[4] > 0 else e[0]),
            )
            report[group] = {
                "fastconv": fast_error,
                "torch": torch_error,
                "tolerance": tolerance,
                "worst": worst if impl == "fastconv" else f"{worst} (channels_last)",
                "tensors": len(names),
            }
            if not fast_error <= tolerance:  # also catches NaN
                relative_to, at_least = (
                    ("its norm", f", at least {GRADIENT_FLOOR:g}")
                    if group == "grads"
                    else ("its largest value", "")
                )
                raise CorrectnessError(
                    f"{SUITE_NAME}/{self.case.label}: the converted network's "
                    f"{report[group]['worst']} disagrees "
                    f"with the original's: error {fast_error:.3g} (relative to "
                    f"{relative_to}, against a float64 run) exceeds the tolerance {tolerance:.3g} "
                    f"({factor:g}x torch's own error {torch_error:.3g} + {FLOOR_EPS} eps{at_least})"
                )
        return report

    def backend(self, impl: str) -> str:
        layout = ", channels_last" if impl.endswith(CHANNELS_LAST) else ""
        layout += ", torch.compile" if self.compiled else ""
        if impl.startswith("fastconv"):
            folded = f", {self.folded} BatchNorms folded" if self.case.pass_name == "infer" else ""
            return f"fastconv ({self.converted} layers converted{folded}{layout})"
        return f"torch{layout}"


def _error(value: Optional[torch.Tensor], reference: Optional[torch.Tensor]) -> float:
    if value is None or reference is None:  # a parameter without gradient in one run only
        return 0.0 if value is None and reference is None else math.inf
    return normalized_error(value, reference)


def _norm_error(value: Optional[torch.Tensor], reference: Optional[torch.Tensor]) -> float:
    if value is None or reference is None:
        return _error(value, reference)
    reference_norm = reference.norm().clamp_min(torch.finfo(torch.float64).tiny)
    return ((value.double() - reference).norm() / reference_norm).item()
