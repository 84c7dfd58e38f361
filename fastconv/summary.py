"""summary(): per layer the output shape, parameter count, FLOPs, activation memory and receptive
field of a network, and the memory training it takes: what a CNN designer otherwise works out by
hand.

Conventions:
- A layer is a module without submodules, or any Conv2d, Linear, MaxPool2d or AvgPool2d. A layer
  called several times (a shared ReLU) gets a row per call.
- FLOPs are the forward pass's, a multiply-add counting 2. Conv2d: 2 * N * K * (C / groups) * R * S
  * H' * W', plus N * K * H' * W' bias additions; Linear: 2 * rows * in * out, plus rows * out
  bias additions. Other layers (pooling, normalisation, activations) count 0.
- A layer's activation memory is the bytes of its output tensor(s).
- Receptive field, per spatial axis, of the layer's first output element: its size in input pixels,
  the jump (input pixels between adjacent outputs, the product of the strides), and the input
  coordinate of its centre (pixel centres at 0, 1, ...; negative where it reaches into padding).
  Fields follow the tensors: Conv2d, MaxPool2d and AvgPool2d grow their input's; any other
  operation passes on the field of its input of the same spatial size, the largest such where
  several merge (a residual addition, a concatenation). Resampling (interpolation, adaptive
  pooling to another size, flattening) ends the tracking: no field is shown after it.
- Training memory: parameters and buffers, a gradient per trainable parameter, the optimizer's
  state (sgd: none, sgd_momentum: one copy of the trainable parameters, adam/adamw: two) and the
  activations kept for the backward pass, estimated as the input plus every layer's output,
  counting tensors that share memory (in-place layers, views) once. Results of operations outside
  layers (functional calls), temporary gradients and allocator overhead are not included.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch.nn.modules.utils import _pair
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

__all__ = ["summary", "ModelSummary", "LayerSummary", "ReceptiveField"]

OPTIMIZER_STATE_COPIES = {"sgd": 0, "sgd_momentum": 1, "adam": 2, "adamw": 2}
WINDOW_LAYERS = (torch.nn.Conv2d, torch.nn.MaxPool2d, torch.nn.AvgPool2d)


@dataclass(frozen=True)
class ReceptiveField:
    """Per spatial axis (height, width): size and jump in input pixels, start the centre of the
    first output element's field in input coordinates."""

    size: Tuple[int, int]
    jump: Tuple[int, int]
    start: Tuple[float, float]

    def through_window(self, kernel, stride, padding, dilation) -> "ReceptiveField":
        """The field after a sliding window (convolution or pooling) over a tensor with this one."""
        size, jump, start = [], [], []
        for d in range(2):
            span = dilation[d] * (kernel[d] - 1)  # the window's extent minus one
            size.append(self.size[d] + span * self.jump[d])
            jump.append(self.jump[d] * stride[d])
            start.append(self.start[d] + (span / 2 - padding[d]) * self.jump[d])
        return ReceptiveField(tuple(size), tuple(jump), tuple(start))


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
        return self.parameter_bytes + self.buffer_bytes + self.gradient_bytes + self.optimizer_bytes + self.activation_bytes

    def layer(self, name: str) -> LayerSummary:
        """The row of the layer with this qualified name (its first call)."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def __str__(self) -> str:
        header = ("layer", "type", "output", "params", "FLOPs", "activations", "RF", "jump", "start")
        table = [header] + [
            (
                row.name,
                row.type,
                ", ".join("x".join(map(str, shape)) for shape in row.output_shape),
                f"{row.parameters:,}",
                f"{row.flops:,}",
                _bytes(row.output_bytes),
                *(_per_axis(getattr(row.receptive_field, f)) if row.receptive_field else "-" for f in ("size", "jump", "start")),
            )
            for row in self.rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(len(header))]
        right = {3, 4, 5, 6, 7, 8}  # numeric columns
        lines = [
            "  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths))).rstrip()
            for line in table
        ]
        lines.insert(1, "-" * len(lines[0]))
        lines += [
            "",
            f"input {'x'.join(map(str, self.input_size))}: {self.parameters:,} parameters "
            f"({self.trainable_parameters:,} trainable), {self.flops:,} FLOPs forward",
            f"training memory with {self.optimizer}: {_bytes(self.training_bytes)} = "
            f"parameters {_bytes(self.parameter_bytes)} + buffers {_bytes(self.buffer_bytes)} + "
            f"gradients {_bytes(self.gradient_bytes)} + optimizer state {_bytes(self.optimizer_bytes)} + "
            f"activations {_bytes(self.activation_bytes)}",
        ]
        return "\n".join(lines)


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _per_axis(pair) -> str:
    return f"{pair[0]:g}" if pair[0] == pair[1] else f"{pair[0]:g}x{pair[1]:g}"


def _tensors(value) -> List[torch.Tensor]:
    return [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]


def _nbytes(tensors: Sequence[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _window(module: torch.nn.Module):
    """(kernel, stride, padding, dilation) of a Conv2d, MaxPool2d or AvgPool2d, as pairs."""
    kernel = _pair(module.kernel_size)
    stride = _pair(module.stride if module.stride is not None else kernel)
    dilation = _pair(getattr(module, "dilation", 1))
    padding = module.padding
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":  # torch puts the odd pixel at the end: the start uses the smaller half
        padding = tuple(dilation[d] * (kernel[d] - 1) // 2 for d in range(2))
    return kernel, stride, _pair(padding), dilation


def _flops(module: torch.nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, torch.nn.Conv2d):
        macs_per_output = (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
        return output.numel() * (2 * macs_per_output + (module.bias is not None))
    if isinstance(module, torch.nn.Linear):
        return output.numel() * (2 * module.in_features + (module.bias is not None))
    return 0


class _FieldTracker(TorchFunctionMode):
    """Passes receptive fields from the inputs of every torch operation to its outputs (see the
    module docstring), keeping the tensors alive so that their ids stay unique."""

    def __init__(self):
        super().__init__()
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
        for out in _tensors(output):
            candidates = [
                field for t, field in inputs
                if field is not None and out.dim() >= 2 and t.dim() >= 2 and t.shape[-2:] == out.shape[-2:]
            ]
            self.set(out, max(candidates, key=lambda f: f.size[0] * f.size[1], default=None))
        return output


def summary(model: torch.nn.Module, input_size: Sequence[int], optimizer: str = "sgd") -> ModelSummary:
    """Runs `model` once on zeros of shape input_size (N, C, H, W), in eval mode under no_grad,
    with the dtype and device of its parameters (a model on the meta device allocates nothing),
    and returns its ModelSummary: per layer the output shape, parameters, FLOPs, output bytes and
    receptive field, and the totals, with the training memory for `optimizer` ('sgd',
    'sgd_momentum', 'adam' or 'adamw'). The model's training mode is restored afterwards."""
    if optimizer not in OPTIMIZER_STATE_COPIES:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZER_STATE_COPIES)}, got {optimizer!r}")
    tensors = list(model.parameters()) + list(model.buffers())
    floating = [t for t in tensors if t.is_floating_point()]
    dtype = floating[0].dtype if floating else torch.get_default_dtype()
    device = tensors[0].device if tensors else torch.device("cpu")
    input = torch.zeros(tuple(input_size), dtype=dtype, device=device)

    tracker = _FieldTracker()
    rows: List[LayerSummary] = []
    outputs: List[torch.Tensor] = [input]  # kept alive so that shared storages are recognised

    def record(name: str):
        def hook(module, args, output):
            out = _tensors(output)
            outputs.extend(out)
            field = None
            if isinstance(module, WINDOW_LAYERS) and args and isinstance(args[0], torch.Tensor):
                field = tracker.get(args[0])
                if field is not None:
                    field = field.through_window(*_window(module))
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
                    flops=_flops(module, out[0]) if out else 0,
                    output_bytes=_nbytes(out),
                    receptive_field=field if out and out[0].dim() == input.dim() else None,
                )
            )

        return hook

    counted = (torch.nn.Linear,) + WINDOW_LAYERS
    handles = [
        module.register_forward_hook(record(name))
        for name, module in model.named_modules()
        if not any(True for _ in module.children()) or isinstance(module, counted)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), tracker:
            tracker.set(input, ReceptiveField((1, 1), (1, 1), (0.0, 0.0)))
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
