"""Hostile calls of conv1d, conv_transpose1d and conv_transpose2d: cases of the hostile-argument
table (hostile_cases.py runs them; hostile_table.py holds the registry and the inputs). Each case
is a function of the namespace `f` of torch's or fastconv's ops; fastconv must raise what torch
raises (type and message) or return what torch returns, unless the case documents otherwise."""

import torch

from helpers import strided
from hostile_harness import raises_not_implemented, raises_runtime_error
from hostile_table import BIG, CASES, case, document, forms, grads, ints, meta, x

NO_INTEGER_CONV = "fastconv has no integer convolution kernels (README); torch has slow ones"

# Each op's plain call: (input, weight, its keyword arguments); `make(op, **shape)` for others.
# conv1d: weight (out, in / groups, k); the transposed ones: weight (in, out / groups, k...).
SHAPES = {
    "conv1d": ((1, 2, 7), (3, 2, 3)),
    "conv_transpose1d": ((1, 2, 5), (2, 3, 3)),
    "conv_transpose2d": ((1, 2, 5, 5), (2, 3, 3, 3)),
}
TRANSPOSED = ("conv_transpose1d", "conv_transpose2d")


def call(op, inp=None, weight=None, bias=None, **kwargs):
    """fn(f): f.<op>(input, weight, bias, **kwargs), the tensors made inside the call (a function of
    no arguments each, or None for the op's plain one)."""
    shape_in, shape_w = SHAPES[op]

    def fn(f):
        a = inp() if inp is not None else x(*shape_in)
        w = weight() if weight is not None else x(*shape_w)
        b = bias() if bias is not None else None
        return getattr(f, op)(a, w, b, **kwargs)

    return fn


def backward(op, inp=None, weight=None, bias=True, **kwargs):
    """fn(f): the gradients of the input, weight and bias of f.<op>(...).sum()."""
    shape_in, shape_w = SHAPES[op]

    def fn(f):
        a = (inp() if inp is not None else x(*shape_in)).detach().requires_grad_()
        w = (weight() if weight is not None else x(*shape_w)).detach().requires_grad_()
        channels = w.shape[1] if op in TRANSPOSED else w.shape[0]
        b = (
            x(channels * (kwargs.get("groups", 1) if op in TRANSPOSED else 1), grad=True)
            if bias
            else None
        )
        out = getattr(f, op)(a, w, b, **kwargs)
        return (out,) + grads(out, *[t for t in (a, w, b) if t is not None])

    return fn


def _values(op, kind):
    """The op's plain input with NaN or inf in it."""

    def make():
        t = x(*SHAPES[op][0])
        t.view(-1)[1] = float("nan") if kind == "nan" else float("inf")
        t.view(-1)[-2] = -float("inf")
        return t

    return make


# The table: one case a line, as written (the formatter would spread most rows over several lines).
# fmt: off

for _op in SHAPES:
    _in, _w = SHAPES[_op]
    _dims = len(_in) - 2
    _args = ("stride", "padding", "dilation") + (("output_padding",) if _op in TRANSPOSED else ())
    # Huge, negative and zero values of every argument, alone and as one of a pair (1-d: a 1-tuple).
    for _arg in _args:
        for _label, _v in {**BIG, "0": 0}.items():
            _forms = forms(_v) if _dims == 2 else {"": _v, "(v,)": (_v,)}
            for _form, _value in _forms.items():
                case(f"{_op} {_arg}={_form or _label}{' v=' + _label if _form else ''}",
                     call(_op, **{_arg: _value}))
    for _label, _v in {**BIG, "0": 0, "3": 3}.items():
        case(f"{_op} groups={_label}", call(_op, groups=_v))
    # Huge values together: output sizes past int64 ((L - 1) * stride + dilation * (k - 1) + ...).
    for _label, _v in (("2**62", 2**62), ("2**63-1", 2**63 - 1), ("2**31", 2**31)):
        case(f"{_op} stride {_label} dilation {_label}", call(_op, stride=_v, dilation=_v))
        case(f"{_op} padding={_label} stride={_label}", call(_op, stride=_v, padding=_v))
        case(f"{_op} stride {_label} backward", backward(_op, stride=_v))
        if _op in TRANSPOSED:
            case(f"{_op} stride {_label} output_padding {_label}-1", call(_op, stride=_v, output_padding=_v - 1))
            case(f"{_op} dilation {_label} output_padding {_label}-1", call(_op, dilation=_v, output_padding=_v - 1))
    # Ranks of the input and of the weight.
    for _rank in (1, 2, 3, 4, 5):
        if _rank != len(_in):
            case(f"{_op} {_rank}-D input", call(_op, inp=lambda r=_rank, s=_in: x(*([3] * r)) if r < len(s) else x(*s, *([1] * (r - len(s))))))
            case(f"{_op} {_rank}-D weight", call(_op, weight=lambda r=_rank, s=_w: x(*s[:r]) if r < len(s) else x(*s, *([1] * (r - len(s))))))
    case(f"{_op} 0-D input", call(_op, inp=lambda: x()))
    case(f"{_op} unbatched", call(_op, inp=lambda s=_in: x(*s[1:])))
    case(f"{_op} unbatched backward", backward(_op, inp=lambda s=_in: x(*s[1:])))
    # Channels and groups that do not match.
    case(f"{_op} input channels mismatch", call(_op, inp=lambda s=_in: x(s[0], 3, *s[2:])))
    case(f"{_op} weight channels mismatch", call(_op, weight=lambda s=_w: x(s[0] + (1 if _op in TRANSPOSED else 0), s[1] + 1, *s[2:])))
    case(f"{_op} groups 2 of 3 channels", call(_op, inp=lambda s=_in: x(s[0], 3, *s[2:]), weight=lambda s=_w: x(3, 3, *s[2:]), groups=2))
    case(f"{_op} groups 2", call(_op, inp=lambda s=_in: x(s[0], 4, *s[2:]), weight=lambda s=_w: x(4, 2, *s[2:]), groups=2))
    case(f"{_op} groups 2 backward", backward(_op, inp=lambda s=_in: x(s[0], 4, *s[2:]), weight=lambda s=_w: x(4, 2, *s[2:]), groups=2))
    case(f"{_op} depthwise", call(_op, inp=lambda s=_in: x(s[0], 4, *s[2:]), weight=lambda s=_w: x(4, 1, *s[2:]), groups=4))
    case(f"{_op} groups larger than the weight", call(_op, inp=lambda s=_in: x(s[0], 4, *s[2:]), weight=lambda s=_w: x(2, 2, *s[2:]), groups=4))
    # Bias: of the wrong size, rank or dtype.
    _out = _w[1] if _op in TRANSPOSED else _w[0]
    case(f"{_op} bias short", call(_op, bias=lambda o=_out: x(o - 1)))
    case(f"{_op} bias 2-D", call(_op, bias=lambda o=_out: x(o, 1)))
    case(f"{_op} bias 0-D", call(_op, bias=lambda: x()))
    case(f"{_op} bias float64", call(_op, bias=lambda o=_out: x(o, dtype=torch.float64)))
    case(f"{_op} bias meta", call(_op, bias=lambda o=_out: meta(o)))
    case(f"{_op} bias strided", call(_op, bias=lambda o=_out: strided(x(o))))
    case(f"{_op} bias empty batch", call(_op, inp=lambda s=_in: x(0, *s[1:]), bias=lambda o=_out: x(o)))
    # dtypes.
    case(f"{_op} weight float64", call(_op, weight=lambda s=_w: x(*s, dtype=torch.float64)))
    case(f"{_op} input float64", call(_op, inp=lambda s=_in: x(*s, dtype=torch.float64)))
    case(f"{_op} float64", call(_op, inp=lambda s=_in: x(*s, dtype=torch.float64), weight=lambda s=_w: x(*s, dtype=torch.float64)))
    for _dtype in (torch.float16, torch.bfloat16):
        case(f"{_op} {_dtype}", call(_op, inp=lambda s=_in, d=_dtype: x(*s, dtype=d), weight=lambda s=_w, d=_dtype: x(*s, dtype=d)))
    for _dtype in (torch.int64, torch.int32, torch.int8):
        case(f"{_op} {_dtype}", call(_op, inp=lambda s=_in, d=_dtype: ints(*s, dtype=d, high=5), weight=lambda s=_w, d=_dtype: ints(*s, dtype=d, high=5)),
             expect=raises_not_implemented, why=NO_INTEGER_CONV)
    case(f"{_op} complex64", call(_op, inp=lambda s=_in: x(*s).to(torch.complex64), weight=lambda s=_w: x(*s).to(torch.complex64)))
    case(f"{_op} bool", call(_op, inp=lambda s=_in: torch.ones(s, dtype=torch.bool), weight=lambda s=_w: torch.ones(s, dtype=torch.bool)))
    case(f"{_op} int input float weight", call(_op, inp=lambda s=_in: ints(*s, dtype=torch.int64)))
    # Layouts: strided, expanded (zero strides), transposed views, channels_last.
    case(f"{_op} strided input", call(_op, inp=lambda s=_in: strided(x(*s))))
    case(f"{_op} strided weight", call(_op, weight=lambda s=_w: strided(x(*s))))
    case(f"{_op} expanded input", call(_op, inp=lambda s=_in: x(1, *s[1:]).expand(3, *s[1:])))
    case(f"{_op} zero-stride input", call(_op, inp=lambda s=_in: x(1).expand(*s)))
    case(f"{_op} zero-stride weight", call(_op, weight=lambda s=_w: x(1).expand(*s)))
    case(f"{_op} expanded input backward", backward(_op, inp=lambda s=_in: x(1, *s[1:]).expand(3, *s[1:])))
    case(f"{_op} transposed-view input", call(_op, inp=lambda s=_in: x(s[1], s[0], *s[2:]).transpose(0, 1)))
    case(f"{_op} flipped input", call(_op, inp=lambda s=_in: x(*s).flip(-1)))
    if _dims == 2:
        case(f"{_op} channels_last input", call(_op, inp=lambda s=_in: x(*s, cl=True)))
        case(f"{_op} channels_last weight", call(_op, weight=lambda s=_w: x(*s, cl=True)))
        case(f"{_op} channels_last backward", backward(_op, inp=lambda s=_in: x(*s, cl=True), weight=lambda s=_w: x(*s, cl=True)))
    # Empty tensors.
    case(f"{_op} empty batch", call(_op, inp=lambda s=_in: x(0, *s[1:])))
    case(f"{_op} empty batch backward", backward(_op, inp=lambda s=_in: x(0, *s[1:])))
    case(f"{_op} empty batch groups mismatch", call(_op, inp=lambda s=_in: x(0, 3, *s[2:])))
    case(f"{_op} empty batch stride 0", call(_op, inp=lambda s=_in: x(0, *s[1:]), stride=0))
    case(f"{_op} empty batch dilation 0", call(_op, inp=lambda s=_in: x(0, *s[1:]), dilation=0))
    case(f"{_op} zero input channels", call(_op, inp=lambda s=_in: x(s[0], 0, *s[2:]), weight=lambda s=_w: x(0, 3, *s[2:]) if _op in TRANSPOSED else x(3, 0, *s[2:])))
    case(f"{_op} zero output channels", call(_op, weight=lambda s=_w: x(s[0], 0, *s[2:]) if _op in TRANSPOSED else x(0, *s[1:])))
    case(f"{_op} zero output channels backward", backward(_op, bias=False, weight=lambda s=_w: x(s[0], 0, *s[2:]) if _op in TRANSPOSED else x(0, *s[1:])))
    case(f"{_op} zero length", call(_op, inp=lambda s=_in: x(*s[:-1], 0)))
    case(f"{_op} zero length padding 1", call(_op, inp=lambda s=_in: x(*s[:-1], 0), padding=1))
    case(f"{_op} zero kernel", call(_op, weight=lambda s=_w: x(*s[:-1], 0)))
    case(f"{_op} zero kernel empty batch", call(_op, inp=lambda s=_in: x(0, *s[1:]), weight=lambda s=_w: x(*s[:-1], 0)))
    case(f"{_op} kernel longer than the input", call(_op, weight=lambda s=_w: x(*s[:-1], 9)))
    case(f"{_op} dilated kernel longer than the input", call(_op, dilation=4))
    # Padding: over half the kernel, and past the output of a transposed convolution.
    case(f"{_op} padding 2", call(_op, padding=2))
    case(f"{_op} padding 3", call(_op, padding=3))
    case(f"{_op} padding 3 backward", backward(_op, padding=3))
    case(f"{_op} padding past the output", call(_op, padding=6))
    case(f"{_op} padding -1", call(_op, padding=-1))
    # Devices.
    case(f"{_op} meta input", call(_op, inp=lambda s=_in: meta(*s)))
    case(f"{_op} meta weight", call(_op, weight=lambda s=_w: meta(*s)))
    case(f"{_op} meta input and weight", call(_op, inp=lambda s=_in: meta(*s), weight=lambda s=_w: meta(*s)))
    case(f"{_op} meta input weight and bias", call(_op, inp=lambda s=_in: meta(*s), weight=lambda s=_w: meta(*s), bias=lambda o=_out: meta(o)))
    # Values.
    for _kind in ("nan", "inf"):
        case(f"{_op} {_kind} input", call(_op, inp=_values(_op, _kind)))
        case(f"{_op} {_kind} input backward", backward(_op, inp=_values(_op, _kind)))
    # Arguments of the wrong type or length.
    case(f"{_op} stride 1.5", call(_op, stride=1.5))
    case(f"{_op} stride None", call(_op, stride=None))
    case(f"{_op} stride empty", call(_op, stride=()))
    case(f"{_op} stride three values", call(_op, stride=(1, 1, 1)))
    case(f"{_op} stride tensor", call(_op, stride=torch.tensor(2)))
    case(f"{_op} groups 1.0", call(_op, groups=1.0))
    case(f"{_op} padding same", call(_op, padding="same"))
    case(f"{_op} padding valid", call(_op, padding="valid"))
    case(f"{_op} input not a tensor", lambda f, op=_op: getattr(f, op)([[1.0]], x(*SHAPES[op][1])))
    case(f"{_op} weight None", lambda f, op=_op: getattr(f, op)(x(*SHAPES[op][0]), None))

# conv1d's padding strings.
case("conv1d padding same stride 2", call("conv1d", padding="same", stride=2))
case("conv1d padding same even kernel", call("conv1d", weight=lambda: x(3, 2, 4), padding="same"))
case("conv1d padding same even kernel dilation 3", call("conv1d", weight=lambda: x(3, 2, 2), padding="same", dilation=3))
case("conv1d padding same dilation 2**62", call("conv1d", padding="same", dilation=2**62))
case("conv1d padding same dilation 2**61", call("conv1d", padding="same", dilation=2**61))
case("conv1d padding same kernel longer than the input", call("conv1d", weight=lambda: x(3, 2, 9), padding="same"))
case("conv1d padding same backward", backward("conv1d", weight=lambda: x(3, 2, 4), padding="same"))
case("conv1d padding SAME", call("conv1d", padding="SAME"))
case("conv1d padding same bias float64", call("conv1d", padding="same", bias=lambda: x(3, dtype=torch.float64)))
case("conv1d padding same 2-D weight", call("conv1d", weight=lambda: x(3, 2), padding="same"))
case("conv1d padding same groups 0", call("conv1d", padding="same", groups=0))
case("conv1d padding valid stride 0", call("conv1d", padding="valid", stride=0))
case("conv1d padding same empty batch", call("conv1d", inp=lambda: x(0, 2, 7), padding="same"))
case("conv1d padding same unbatched", call("conv1d", inp=lambda: x(2, 7), padding="same"))
# output_padding at and past the stride and the dilation (it must stay below one of them).
for _op in TRANSPOSED:
    for _s, _d, _op_pad in ((2, 1, 1), (2, 1, 2), (1, 2, 1), (1, 2, 2), (2, 3, 2), (3, 2, 3), (1, 1, 1), (2, 2, -1)):
        case(f"{_op} stride {_s} dilation {_d} output_padding {_op_pad}", call(_op, stride=_s, dilation=_d, output_padding=_op_pad))
    case(f"{_op} output_padding at the stride backward", backward(_op, stride=1, dilation=2, output_padding=1))
    case(f"{_op} output_padding with padding past the output", call(_op, stride=2, padding=5, output_padding=1))
    case(f"{_op} empty output plane backward", backward(_op, inp=lambda op=_op: x(*SHAPES[op][0][:-1], 1), weight=lambda op=_op: x(*SHAPES[op][1][:-1], 1), padding=1))
case("conv_transpose2d output_padding (0, 2) stride (1, 3)", call("conv_transpose2d", stride=(1, 3), output_padding=(0, 2)))
case("conv_transpose2d output_padding (2, 0) stride (1, 3)", call("conv_transpose2d", stride=(1, 3), output_padding=(2, 0)))
case("conv_transpose2d output_padding (1, 1) dilation (2, 1) stride (1, 2)", call("conv_transpose2d", stride=(1, 2), dilation=(2, 1), output_padding=(1, 1)))
case("conv_transpose2d empty output height", call("conv_transpose2d", inp=lambda: x(1, 2, 1, 5), weight=lambda: x(2, 3, 1, 3), padding=(1, 0)))


# ------------------------------------------------------------------ documented differences

WRAPS = "torch's dilation * (kernel - 1) wraps around int64 and it answers from the wrapped value"
document([f"conv1d dilation={form}" for form in ("2**62", "(v,) v=2**62", "2**63-1", "(v,) v=2**63-1")]
         + ["conv1d stride 2**62 dilation 2**62", "conv1d stride 2**63-1 dilation 2**63-1"],
         raises_runtime_error, WRAPS)
document([f"{op} {name}" for op in SHAPES for name in ("meta weight", "bias meta")],
         raises_runtime_error, "torch's CPU convolution accepts a meta weight or bias with a CPU input and returns a "
         "CPU tensor of uninitialised memory; fastconv must raise (device agreement, issue 13)")
document(["conv1d padding same bias float64"], raises_runtime_error,
         "a bias of another dtype with padding='same': torch's slow path casts it (its oneDNN path refuses); "
         "fastconv always gives the convolution's bias dtype error (README)")
# torch's slow_conv_transpose2d checks stride, dilation and output_padding as int32 (2**31 reads as
# -2**31, 2**32 as 0) and computes the output size in int32 (a padding of 2**31 - 1 leaves it
# positive, and the int64 allocation then fails on the true, negative size): its messages name the
# wrapped values. fastconv checks the true ones: the output size's overflow, the allocation of a
# true size past the worker's memory, or torch's own message for the true values.
INT32 = ("torch's slow_conv_transpose2d checks stride, dilation and output_padding, and computes the output size, "
         "in int32: its message names wrapped values; fastconv raises a RuntimeError on the true ones")
for _op in TRANSPOSED:
    _names = [n for n in CASES if n.startswith(_op + " ")]
    for _arg, _labels in (("stride", ("2**31", "2**32", "2**62", "2**63-1")), ("dilation", ("2**31", "2**32", "2**62", "2**63-1")),
                          ("padding", ("2**31-1", "2**31", "2**32")), ("output_padding", ("2**31", "2**32", "2**62", "2**63-1"))):
        for _label in _labels:
            document([n for n in _names if n.startswith(f"{_op} {_arg}=") and (n.endswith(f"={_label}") or n.endswith(f" v={_label}"))],
                     raises_runtime_error, INT32)
    for _label in ("2**31", "2**62", "2**63-1"):
        document([f"{_op} stride {_label} dilation {_label}", f"{_op} padding={_label} stride={_label}", f"{_op} stride {_label} backward",
                  f"{_op} stride {_label} output_padding {_label}-1", f"{_op} dilation {_label} output_padding {_label}-1"],
                 raises_runtime_error, INT32)

# fmt: on
