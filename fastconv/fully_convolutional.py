"""fully_convolutional(): a classifier whose dense head reads a flattened feature map, rewritten
so that the head is convolutions: the network then slides over an image larger than the one it
was built for and returns a map of class scores, one per window, in one pass.

The model's forward is traced with torch.fx and run once at `input_size` to learn every tensor's
shape (torch.fx.passes.shape_prop). Then, in a copy of the model:
- a Linear fed by a flattened C x H x W map becomes a Conv2d with an H x W kernel, its weight the
  Linear's reshaped to (out, C, H, W) (flattening orders features as (C, H, W));
- a Linear fed by such a converted layer becomes a 1x1 Conv2d;
- the flatten (torch.flatten, .flatten, .view, .reshape, nn.Flatten) is dropped, and so is any
  adaptive pooling, which must be an identity at input_size (torchvision's AdaptiveAvgPool2d((7, 7))
  on a 7x7 map): on a larger image it would squeeze the map back to its fixed size.
Only elementwise operations (ReLU, Dropout, Tanh, ...) may stand between a flatten and its Linear
or between two Linears; anything else is refused with a ValueError naming the layer, as is any
other Linear, adaptive pooling that changes its input's size, or a model torch.fx cannot trace.
"""

import copy
import operator
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from . import nn as fastconv_nn

__all__ = ["fully_convolutional"]

# Operations that act on each element alone: a map of features goes through them as a vector does.
ELEMENTWISE_MODULES = (
    nn.Identity,
    nn.Dropout,
    nn.AlphaDropout,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.Softsign,
    nn.Tanhshrink,
)
ELEMENTWISE_FUNCTIONS = {
    torch.relu,
    torch.relu_,
    torch.tanh,
    torch.sigmoid,
    torch.dropout,
    F.relu,
    F.relu6,
    F.leaky_relu,
    F.elu,
    F.selu,
    F.celu,
    F.gelu,
    F.silu,
    F.mish,
    F.hardswish,
    F.hardsigmoid,
    F.hardtanh,
    F.softplus,
    F.tanh,
    F.sigmoid,
    F.dropout,
    F.alpha_dropout,
}
ELEMENTWISE_METHODS = {
    "relu",
    "relu_",
    "tanh",
    "tanh_",
    "sigmoid",
    "sigmoid_",
    "contiguous",
    "clone",
}
# with a Python number as the other operand
SCALAR_OPERATORS = {
    operator.add,
    operator.sub,
    operator.mul,
    operator.truediv,
    torch.add,
    torch.mul,
}

FLATTEN_FUNCTIONS = {torch.flatten, torch.reshape}
FLATTEN_METHODS = {"flatten", "view", "reshape"}

ADAPTIVE_POOL_MODULES = (
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
ADAPTIVE_POOL_FUNCTIONS = {
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
    F.adaptive_max_pool3d,
    torch.adaptive_avg_pool1d,
    torch.adaptive_max_pool1d,
}


class _Flattened(NamedTuple):
    """A (N, C*H*W) tensor made by flattening the (N, C, H, W) map `flatten`'s input."""

    flatten: torch.fx.Node
    map_shape: Tuple[int, int, int]  # (C, H, W)


class _Dense(NamedTuple):
    """The (N, features) output of a Linear that becomes a convolution (or of elementwise
    operations on it): in the new model a (N, features, H', W') map."""

    linear: torch.fx.Node


class _Plan(NamedTuple):
    convolutions: List[Tuple[torch.fx.Node, Tuple[int, int]]]  # Linear node, kernel
    dropped: List[torch.fx.Node]  # nodes replaced by their input


class _Tracer(torch.fx.Tracer):
    """fx's tracer, with fastconv's modules kept whole as torch.nn's are."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return type(module).__module__.startswith("fastconv.") or super().is_leaf_module(
            module, qualified_name
        )


def _refuse(message: str):
    raise ValueError(f"fastconv.fully_convolutional: {message}")


def _shape(node) -> Optional[Tuple[int, ...]]:
    meta = node.meta.get("tensor_meta") if isinstance(node, torch.fx.Node) else None
    return (
        tuple(meta.shape) if isinstance(meta, torch.fx.passes.shape_prop.TensorMetadata) else None
    )


def _shape_text(shape) -> str:
    return "x".join(map(str, shape)) if shape is not None else "a non-tensor"


def _module(gm: torch.fx.GraphModule, node: torch.fx.Node) -> Optional[nn.Module]:
    return gm.get_submodule(node.target) if node.op == "call_module" else None


def _describe(gm: torch.fx.GraphModule, node: torch.fx.Node) -> str:
    if node.op == "call_module":
        return f"{type(_module(gm, node)).__name__} '{node.target}'"
    if node.op == "call_function":
        what = f"'{node.name}' ({getattr(node.target, '__name__', node.target)}"
    elif node.op == "call_method":
        what = f"'{node.name}' (.{node.target}()"
    else:
        return f"'{node.name}'"
    # the innermost module whose forward made the call, if not the model's own
    stack = list(node.meta.get("nn_module_stack", {}).values())
    if stack and stack[-1][0]:
        name, cls = stack[-1]
        what += f" in {getattr(cls, '__name__', cls)} '{name}'"
    return what + ")"


def _is_elementwise(gm: torch.fx.GraphModule, node: torch.fx.Node) -> bool:
    """Whether `node` acts on each element of its first argument alone (other arguments being
    numbers or flags, not tensors)."""
    if any(isinstance(a, torch.fx.Node) for a in list(node.args[1:]) + list(node.kwargs.values())):
        return False
    if node.op == "call_module":
        return type(_module(gm, node)) in ELEMENTWISE_MODULES
    if node.op == "call_function":
        return node.target in ELEMENTWISE_FUNCTIONS or (
            node.target in SCALAR_OPERATORS and len(node.args) == 2
        )
    return node.op == "call_method" and node.target in ELEMENTWISE_METHODS


def _is_flatten_like(gm: torch.fx.GraphModule, node: torch.fx.Node) -> bool:
    if node.op == "call_module":
        return type(_module(gm, node)) is nn.Flatten
    if node.op == "call_function":
        return node.target in FLATTEN_FUNCTIONS
    return node.op == "call_method" and node.target in FLATTEN_METHODS


def _is_adaptive_pool(gm: torch.fx.GraphModule, node: torch.fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(_module(gm, node), ADAPTIVE_POOL_MODULES)
    return node.op == "call_function" and node.target in ADAPTIVE_POOL_FUNCTIONS


def _plan(gm: torch.fx.GraphModule) -> _Plan:
    """Which Linear nodes become convolutions and which nodes are dropped; refuses what cannot be
    converted. Each node is looked at once, in execution order, knowing its inputs' roles."""
    roles: Dict[torch.fx.Node, Union[_Flattened, _Dense]] = {}
    plan = _Plan([], [])
    linear_calls: Dict[str, int] = {}

    def origin(role) -> str:
        return (
            f"the flatten {_describe(gm, role.flatten)}"
            if isinstance(role, _Flattened)
            else f"the {_describe(gm, role.linear)}"
        )

    for node in gm.graph.nodes:
        inputs = node.all_input_nodes
        marked = [n for n in inputs if n in roles]
        first = node.args[0] if node.args else None
        module = _module(gm, node)

        if node.op == "output":
            for n in marked:
                if isinstance(roles[n], _Flattened):
                    _refuse(f"{origin(roles[n])} reaches the model's output without a Linear")
        elif isinstance(module, nn.Linear):
            if type(module) is not nn.Linear:
                _refuse(
                    f"{_describe(gm, node)} is a subclass of torch.nn.Linear (its forward may "
                    "differ)"
                )
            linear_calls[node.target] = linear_calls.get(node.target, 0) + 1
            if linear_calls[node.target] > 1:
                _refuse(f"{_describe(gm, node)} is called more than once")
            role = roles.get(first)
            if isinstance(role, _Flattened):
                plan.convolutions.append((node, role.map_shape[1:]))
            elif isinstance(role, _Dense):
                plan.convolutions.append((node, (1, 1)))
            else:
                source = "the model's input" if first.op == "placeholder" else f"'{first.name}'"
                _refuse(
                    f"{_describe(gm, node)} is fed by {source} ({_shape_text(_shape(first))} at "
                    "input_size), not by a flattened C x H x W map or a converted Linear"
                )
            roles[node] = _Dense(node)
        elif node.op == "call_function" and node.target is F.linear:
            _refuse(f"{_describe(gm, node)}: only torch.nn.Linear modules are converted")
        elif _is_adaptive_pool(gm, node):
            if _shape(node) is None or _shape(node) != _shape(first) or marked:
                _refuse(
                    f"the adaptive pooling {_describe(gm, node)} maps {_shape_text(_shape(first))} "
                    f"to {_shape_text(_shape(node))} at input_size: only an identity can be "
                    "dropped (on a larger image it would pool the whole map to a fixed size)"
                )
            plan.dropped.append(node)
        elif marked:
            if _is_flatten_like(gm, node) and _shape(node) == _shape(first):
                plan.dropped.append(node)  # a flatten that changes nothing here, on a dense output
                roles[node] = roles[first]
            elif _is_elementwise(gm, node) and marked == [first]:
                roles[node] = roles[first]
            else:
                _refuse(
                    f"{_describe(gm, node)} takes the output of {origin(roles[marked[0]])}: only "
                    "elementwise operations (ReLU, Dropout, ...) may stand between a flatten and "
                    "its Linear, or between two Linears"
                )
        elif _is_flatten_like(gm, node):
            shape, map_shape = _shape(node), _shape(first)
            if (
                map_shape is not None
                and len(map_shape) == 4
                and shape == (map_shape[0], map_shape[1] * map_shape[2] * map_shape[3])
            ):
                roles[node] = _Flattened(node, map_shape[1:])
                plan.dropped.append(node)
    return plan


def _convolution_of(
    linear: nn.Linear, in_channels: int, kernel: Tuple[int, int]
) -> fastconv_nn.Conv2d:
    """A fastconv Conv2d computing `linear` over a (C, kh, kw) window: its weight a reshaped view
    of the Linear's, its bias the Linear's own Parameter."""
    conv = fastconv_nn.Conv2d(
        in_channels, linear.out_features, kernel, bias=linear.bias is not None, device="meta"
    )
    weight = linear.weight
    conv.weight = nn.Parameter(
        weight.detach().view(conv.weight.shape), requires_grad=weight.requires_grad
    )
    conv.bias = linear.bias
    conv.train(linear.training)
    return conv


def _propagate_shapes(gm: torch.fx.GraphModule, input_size: Tuple[int, ...]):
    """Runs gm on zeros of input_size in eval mode (batch norm statistics stay as they are),
    under no_grad, recording every node's output shape; restores each module's mode."""
    tensors = list(gm.parameters()) + list(gm.buffers())
    floating = [t for t in tensors if t.is_floating_point()]
    dtype = floating[0].dtype if floating else torch.get_default_dtype()
    device = tensors[0].device if tensors else torch.device("cpu")
    modes = [(module, module.training) for module in gm.modules()]
    try:
        gm.eval()
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(input_size, dtype=dtype, device=device))
    except Exception as error:
        _refuse(
            f"running the model on zeros of input_size {input_size} failed: "
            f"{type(error).__name__}: {error}"
        )
    finally:
        for module, training in modes:
            module.training = training


def fully_convolutional(model: nn.Module, input_size: Sequence[int]) -> torch.fx.GraphModule:
    """The fully convolutional form of a classifier built for images of input_size (N, C, H, W).

    A Linear fed by a flattened C x H x W map becomes a fastconv.nn.Conv2d with an H x W kernel,
    the Linears after it 1x1 ones; the flatten, and adaptive pooling that is an identity at
    input_size, are dropped (see the module docstring). At input_size the new model returns the
    original's outputs as (N, classes, 1, 1); on a larger image a map (N, classes, H', W') whose
    every position is the head applied to one window of the feature map (for a network without
    padding, exactly the original model on the corresponding crop of the image).

    Returns a torch.fx.GraphModule; `model` is left untouched. Its parameters are copies (the
    conversion works on a deep copy of the model); each converted layer's weight is a reshaped
    view of its Linear's copied weight and its bias the copied bias. Training modes carry over;
    hooks on the converted Linears do not.

    Raises ValueError, naming the layer, for what it cannot convert: a Linear fed by anything but
    a flattened 4-D map or a converted Linear, anything but elementwise operations between a
    flatten and its Linear, adaptive pooling that is not an identity at input_size, and a model
    torch.fx cannot trace.
    """
    input_size = tuple(input_size)
    if len(input_size) != 4 or not all(isinstance(s, int) and s > 0 for s in input_size):
        _refuse(f"input_size must be 4 positive ints (N, C, H, W), got {input_size}")
    model = copy.deepcopy(model)
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as error:
        _refuse(f"torch.fx cannot trace {type(model).__name__}: {type(error).__name__}: {error}")
    gm = torch.fx.GraphModule(tracer.root, graph, f"FullyConvolutional{type(model).__name__}")
    gm.training = model.training
    placeholders = [node for node in gm.graph.nodes if node.op == "placeholder"]
    if len(placeholders) != 1:
        _refuse(
            f"{type(model).__name__}.forward takes {len(placeholders)} inputs: one image batch "
            "expected"
        )
    _propagate_shapes(gm, input_size)
    plan = _plan(gm)

    for node, kernel in plan.convolutions:
        linear = gm.get_submodule(node.target)
        in_channels = linear.in_features // (kernel[0] * kernel[1])
        parent_name, _, attribute = node.target.rpartition(".")
        setattr(
            gm.get_submodule(parent_name), attribute, _convolution_of(linear, in_channels, kernel)
        )
    # Drop the flattens and identity poolings, and then what only they used (x.size(0) for a
    # view); the rest of the graph stays as traced, even where its results go unused.
    upstream = set()  # what the dropped nodes were computed from
    for node in plan.dropped:
        pending = list(node.all_input_nodes)
        while pending:
            source = pending.pop()
            if source not in upstream:
                upstream.add(source)
                pending.extend(source.all_input_nodes)
        node.replace_all_uses_with(node.args[0])
        gm.graph.erase_node(node)
    upstream.difference_update(plan.dropped)
    gm.graph.eliminate_dead_code(is_impure_node=lambda node: node not in upstream)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm
