"""summary(): per layer the output shape, parameter count, FLOPs, activation memory and receptive
field of a network, and the memory training it takes: what a CNN designer otherwise works out by
hand.

Conventions:
- A layer is a module without submodules, or any Linear or WINDOW_LAYERS module (1-D and 2-D
  convolutions, transposed convolutions, pooling and unpooling). A layer called several times (a
  shared ReLU) gets a row per call.
- FLOPs are the forward pass's, a multiply-add counting 2. Convolutions (1-D, 2-D, 3-D): 2 * N * K
  * (C / groups) * (kernel elements) * (output positions), plus a bias addition per output element;
  transposed convolutions: each input element times (K / groups) * (kernel elements) weights, 2 *
  N * C * (input positions) * (K / groups) * (kernel elements), plus the bias additions; Linear:
  2 * rows * in * out, plus rows * out bias additions. Other layers (pooling, unpooling,
  normalisation, activations) count 0.
- A layer's activation memory is the bytes of its output tensor(s).
- Receptive field, per spatial axis (one for 1-D networks, two for 2-D), of the layer's first
  output element: its size in input pixels, the jump (input pixels between adjacent outputs, the
  product of the strides), and the input coordinate of its centre (pixel centres at 0, 1, ...;
  negative where it reaches into padding). Fields follow the tensors: convolutions and pooling
  (Conv, MaxPool, AvgPool, LPPool, 1-D and 2-D) grow their input's. Transposed convolutions and
  unpooling (ConvTranspose, MaxUnpool, 1-D and 2-D) divide the jump by their stride, which is then
  the average distance between neighbouring outputs (their fields are not evenly spaced: each input
  feeds a block of outputs). Size and start are exact for the first output element everywhere,
  computed from the field of every position (ReceptiveField.bounds); unpooling counts every input
  whose window holds the position (its indices are data). Any other operation passes on the field
  of its input of the same spatial size, the largest such where several merge (a residual
  addition, a concatenation).
  Resampling (interpolation, adaptive pooling to another size, flattening) ends the tracking: no
  field is shown after it.
- Training memory: parameters and buffers, a gradient per trainable parameter, the optimizer's
  state (sgd: none, sgd_momentum: one copy of the trainable parameters, adam/adamw: two) and the
  activations kept for the backward pass, estimated as the input plus every layer's output,
  counting tensors that share memory (in-place layers, views) once. Results of operations outside
  layers (functional calls), temporary gradients and allocator overhead are not included.
"""

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn.modules.utils import _ntuple
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from ._conv_functional import _same_padding

__all__ = ["summary", "ModelSummary", "LayerSummary", "ReceptiveField"]

OPTIMIZER_STATE_COPIES = {"sgd": 0, "sgd_momentum": 1, "adam": 2, "adamw": 2}
# Layers that slide a window over 1 or 2 spatial axes: class -> axes. The transposed ones spread
# each input element over a window of outputs.
WINDOW_LAYERS = {
    nn.Conv1d: 1,
    nn.MaxPool1d: 1,
    nn.AvgPool1d: 1,
    nn.LPPool1d: 1,
    nn.Conv2d: 2,
    nn.MaxPool2d: 2,
    nn.AvgPool2d: 2,
    nn.LPPool2d: 2,
    nn.ConvTranspose1d: 1,
    nn.MaxUnpool1d: 1,
    nn.ConvTranspose2d: 2,
    nn.MaxUnpool2d: 2,
}
TRANSPOSED_LAYERS = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.MaxUnpool1d, nn.MaxUnpool2d)


# Per axis: output index -> (first, last) input pixel its value depends on, None if it depends on
# none (an output of a transposed layer that no input reaches).
Bounds = Callable[[int], Optional[Tuple[int, int]]]


@dataclass(frozen=True)
class ReceptiveField:
    """Per spatial axis ((length,) or (height, width)): size and jump in input pixels, start the
    centre of the first output element's field in input coordinates. `bounds` gives the field of
    every output element (see Bounds)."""

    size: Tuple[int, ...]
    jump: Tuple[float, ...]
    start: Tuple[float, ...]
    bounds: Tuple[Bounds, ...] = dataclasses.field(default=(), compare=False, repr=False)

    @staticmethod
    def of_input(axes: int) -> "ReceptiveField":
        return ReceptiveField._first_of((_pixel,) * axes, (1,) * axes)

    @staticmethod
    def _first_of(bounds: Sequence[Bounds], jump: Sequence[float]) -> Optional["ReceptiveField"]:
        first = [b(0) for b in bounds]
        if None in first:
            return None
        return ReceptiveField(
            tuple(hi - lo + 1 for lo, hi in first),
            tuple(jump),
            tuple((lo + hi) / 2 for lo, hi in first),
            tuple(bounds),
        )

    def through_window(
        self, kernel, stride, padding, dilation, transposed=False
    ) -> Optional["ReceptiveField"]:
        """The field after a window layer over a tensor with this one: output o of a convolution
        or pooling reads inputs o * stride - padding + dilation * k for the taps k; input i of a
        transposed one (or unpooling, whose window holds every position its index may name)
        reaches outputs i * stride - padding + dilation * k. None if no input reaches the first
        output."""
        bounds, jump = [], []
        for d, inner in enumerate(self.bounds):
            taps = _Taps(kernel[d], stride[d], padding[d], dilation[d], transposed)
            bounds.append(_union_over(inner, taps))
            jump.append(self.jump[d] / stride[d] if transposed else self.jump[d] * stride[d])
        return ReceptiveField._first_of(bounds, jump)


def _pixel(i: int) -> Tuple[int, int]:
    return i, i


@dataclass(frozen=True)
class _Taps:
    """The inputs a window layer combines into output o, along one axis."""

    kernel: int
    stride: int
    padding: int
    dilation: int
    transposed: bool

    def __call__(self, o: int) -> List[int]:
        if not self.transposed:
            return [o * self.stride - self.padding + self.dilation * k for k in range(self.kernel)]
        reaching = [o + self.padding - self.dilation * k for k in range(self.kernel)]
        return [r // self.stride for r in reaching if r % self.stride == 0]


def _union_over(inner: Bounds, taps: _Taps) -> Bounds:
    """Bounds of a layer's outputs: the union of the fields of the inputs each one combines.
    Cached: a window's neighbours share inputs, so each layer is evaluated once per position."""

    @functools.cache
    def bounds(o: int) -> Optional[Tuple[int, int]]:
        fields = [b for b in map(inner, taps(o)) if b is not None]
        if not fields:
            return None
        return min(lo for lo, _ in fields), max(hi for _, hi in fields)

    return bounds


@dataclass(frozen=True)
class LayerSummary:
    name: str
    type: str
    output_shape: Tuple[Tuple[int, ...], ...]  # one shape per output tensor
    parameters: int
    flops: int
    output_bytes: int
    receptive_field: Optional[ReceptiveField]


@dataclass(frozen=True)
class ModelSummary:
    """The rows, one per layer call in execution order, and the totals. str() gives a table."""

    input_size: Tuple[int, ...]
    optimizer: str
    rows: List[LayerSummary]
    parameters: int
    trainable_parameters: int
    flops: int
    parameter_bytes: int
    buffer_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    activation_bytes: int

    @property
    def training_bytes(self) -> int:
        return (
            self.parameter_bytes
            + self.buffer_bytes
            + self.gradient_bytes
            + self.optimizer_bytes
            + self.activation_bytes
        )

    def layer(self, name: str) -> LayerSummary:
        """The row of the layer with this qualified name (its first call)."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def __str__(self) -> str:
        header = (
            "layer",
            "type",
            "output",
            "params",
            "FLOPs",
            "activations",
            "RF",
            "jump",
            "start",
        )
        table = [header] + [
            (
                row.name,
                row.type,
                ", ".join("x".join(map(str, shape)) for shape in row.output_shape),
                f"{row.parameters:,}",
                f"{row.flops:,}",
                _bytes(row.output_bytes),
                *(
                    _per_axis(getattr(row.receptive_field, f)) if row.receptive_field else "-"
                    for f in ("size", "jump", "start")
                ),
            )
            for row in self.rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(len(header))]
        right = {3, 4, 5, 6, 7, 8}  # numeric columns
        lines = [
            "  ".join(
                cell.rjust(w) if i in right else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(line, widths))
            ).rstrip()
            for line in table
        ]
        lines.insert(1, "-" * len(lines[0]))
        lines += [
            "",
            f"input {'x'.join(map(str, self.input_size))}: {self.parameters:,} parameters "
            f"({self.trainable_parameters:,} trainable), {self.flops:,} FLOPs forward",
            f"training memory with {self.optimizer}: {_bytes(self.training_bytes)} = parameters "
            f"{_bytes(self.parameter_bytes)} + buffers {_bytes(self.buffer_bytes)} + gradients "
            f"{_bytes(self.gradient_bytes)} + optimizer state {_bytes(self.optimizer_bytes)} + "
            f"activations {_bytes(self.activation_bytes)}",
        ]
        return "\n".join(lines)


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _per_axis(values) -> str:
    return f"{values[0]:g}" if len(set(values)) == 1 else "x".join(f"{v:g}" for v in values)


def _tensors(value) -> List[torch.Tensor]:
    return [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]


def _nbytes(tensors: Sequence[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _window(module: torch.nn.Module, axes: int):
    """(kernel, stride, padding, dilation) of a window layer (WINDOW_LAYERS), a tuple of `axes`
    each. Unset strides are the kernel's; layers without padding or dilation have 0 and 1."""
    as_tuple = _ntuple(axes)
    kernel = as_tuple(module.kernel_size)
    stride = as_tuple(module.stride if module.stride not in (None, (), []) else kernel)
    dilation = as_tuple(getattr(module, "dilation", 1))
    padding = getattr(module, "padding", 0)
    if padding == "valid":
        padding = 0
    elif padding == "same":  # the start's padding (torch puts an odd one more at the end)
        padding = tuple(_same_padding(dilation[d], kernel[d])[0] for d in range(axes))
    return kernel, stride, as_tuple(padding), dilation


def _flops(module: torch.nn.Module, input: Optional[torch.Tensor], output: torch.Tensor) -> int:
    bias = getattr(module, "bias", None) is not None
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel_elements = 1
        for k in module.kernel_size:
            kernel_elements *= k
        if module.transposed:  # every input element is multiplied by (K / groups) * kernel weights
            weights_per_input = module.out_channels // module.groups * kernel_elements
            return (
                2 * input.numel() * weights_per_input if input is not None else 0
            ) + bias * output.numel()
        macs_per_output = module.in_channels // module.groups * kernel_elements
        return output.numel() * (2 * macs_per_output + bias)
    if isinstance(module, torch.nn.Linear):
        return output.numel() * (2 * module.in_features + bias)
    return 0


class _FieldTracker(TorchFunctionMode):
    """Passes receptive fields from the inputs of every torch operation to its outputs (see the
    module docstring), keeping the tensors alive so that their ids stay unique."""

    def __init__(self, spatial_axes: int):
        super().__init__()
        self.spatial_axes = spatial_axes
        self.fields: Dict[int, Tuple[torch.Tensor, ReceptiveField]] = {}

    def get(self, tensor: torch.Tensor) -> Optional[ReceptiveField]:
        entry = self.fields.get(id(tensor))
        return entry[1] if entry is not None and entry[0] is tensor else None

    def set(self, tensor: torch.Tensor, field: Optional[ReceptiveField]):
        if field is None:
            self.fields.pop(id(tensor), None)
        else:
            self.fields[id(tensor)] = (tensor, field)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))
        inputs = [(t, self.get(t)) for t in _tensors((args, kwargs))]
        axes = self.spatial_axes
        for out in _tensors(output):
            candidates = [
                field
                for t, field in inputs
                if field is not None
                and out.dim() > axes
                and t.dim() > axes
                and t.shape[-axes:] == out.shape[-axes:]
            ]
            self.set(out, max(candidates, key=lambda f: math.prod(f.size), default=None))
        return output


def summary(
    model: torch.nn.Module, input_size: Sequence[int], optimizer: str = "sgd"
) -> ModelSummary:
    """Runs `model` once on zeros of shape input_size (N, C, H, W), in eval mode under no_grad,
    with the dtype and device of its parameters (a model on the meta device allocates nothing),
    and returns its ModelSummary: per layer the output shape, parameters, FLOPs, output bytes and
    receptive field, and the totals, with the training memory for `optimizer` ('sgd',
    'sgd_momentum', 'adam' or 'adamw'). The model's training mode is restored afterwards."""
    if optimizer not in OPTIMIZER_STATE_COPIES:
        raise ValueError(
            f"optimizer must be one of {sorted(OPTIMIZER_STATE_COPIES)}, got {optimizer!r}"
        )
    tensors = list(model.parameters()) + list(model.buffers())
    floating = [t for t in tensors if t.is_floating_point()]
    dtype = floating[0].dtype if floating else torch.get_default_dtype()
    device = tensors[0].device if tensors else torch.device("cpu")
    input = torch.zeros(tuple(input_size), dtype=dtype, device=device)

    spatial_axes = input.dim() - 2  # fields are tracked for 1-D and 2-D (and 3-D) inputs
    tracker = _FieldTracker(spatial_axes)
    rows: List[LayerSummary] = []
    outputs: List[torch.Tensor] = [input]  # kept alive so that shared storages are recognised

    def record(name: str):
        def hook(module, args, output):
            out = _tensors(output)
            outputs.extend(out)
            field = None
            layer_input = args[0] if args and isinstance(args[0], torch.Tensor) else None
            axes = next((n for cls, n in WINDOW_LAYERS.items() if isinstance(module, cls)), None)
            if axes is not None and layer_input is not None:
                field = tracker.get(layer_input)
                if field is not None and len(field.size) != axes:
                    field = None  # a 1-D layer in a 2-D network, or the other way round
                elif field is not None:
                    field = field.through_window(
                        *_window(module, axes), isinstance(module, TRANSPOSED_LAYERS)
                    )
                for t in out:
                    tracker.set(t, field)
            elif out:
                field = tracker.get(out[0])
            rows.append(
                LayerSummary(
                    name=name,
                    type=type(module).__name__,
                    output_shape=tuple(tuple(t.shape) for t in out),
                    parameters=sum(p.numel() for p in module.parameters()),
                    flops=_flops(module, layer_input, out[0]) if out else 0,
                    output_bytes=_nbytes(out),
                    receptive_field=field if out and out[0].dim() == input.dim() else None,
                )
            )

        return hook

    counted = (torch.nn.Linear,) + tuple(WINDOW_LAYERS)
    handles = [
        module.register_forward_hook(record(name))
        for name, module in model.named_modules()
        if not any(True for _ in module.children()) or isinstance(module, counted)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), tracker:
            if spatial_axes > 0:
                tracker.set(input, ReceptiveField.of_input(spatial_axes))
            model(input)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()

    parameters = list(model.parameters())
    trainable = [p for p in parameters if p.requires_grad]
    storages = {}  # one entry per distinct memory block among the input and the layers' outputs
    for t in outputs:
        storage = t.untyped_storage()
        storages[storage._cdata] = storage.nbytes()
    return ModelSummary(
        input_size=tuple(input_size),
        optimizer=optimizer,
        rows=rows,
        parameters=sum(p.numel() for p in parameters),
        trainable_parameters=sum(p.numel() for p in trainable),
        flops=sum(row.flops for row in rows),
        parameter_bytes=_nbytes(parameters),
        buffer_bytes=_nbytes(list(model.buffers())),
        gradient_bytes=_nbytes(trainable),
        optimizer_bytes=OPTIMIZER_STATE_COPIES[optimizer] * _nbytes(trainable),
        activation_bytes=sum(storages.values()),
    )
