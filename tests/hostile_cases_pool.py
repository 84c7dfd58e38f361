"""Hostile calls of avg_pool2d, avg_pool1d, lp_pool2d, lp_pool1d, max_pool1d and max_unpool1d:
cases of the hostile-argument table (hostile_cases.py runs them; hostile_table.py holds the
registry and the inputs). Each case is a function of the namespace `f` of torch's or fastconv's
ops; fastconv must raise what torch raises (type and message) or return what torch returns."""

import torch
import torch.nn.functional as F

from helpers import strided
from hostile_harness import raises_runtime_error
from hostile_table import BIG, case, defect, document, forms, grads, ints, meta, x

# Each op's plain input and kernel.
SHAPES = {
    "avg_pool2d": (1, 3, 6, 6),
    "avg_pool1d": (1, 3, 8),
    "lp_pool2d": (1, 3, 6, 6),
    "lp_pool1d": (1, 3, 8),
    "max_pool1d": (1, 3, 8),
}
TWO_D = ("avg_pool2d", "lp_pool2d")


def call(op, inp=None, *args, grad=False, **kwargs):
    """fn(f): f.<op>(input, *args, **kwargs) (lp pools: norm type 2 unless args give one), with its
    input's gradient where `grad`. inp: a function of no arguments making the input, None for the
    op's plain one."""

    def fn(f):
        a = inp() if inp is not None else x(*SHAPES[op])
        if grad:
            a = a.detach().requires_grad_()
        call_args = args or ((2, 2) if op.startswith("lp_") else (2,))
        out = getattr(f, op)(a, *call_args, **kwargs)
        return (out,) + grads(out, a) if grad else out

    return fn


def pooled1d(shape=(2, 3, 8), kernel=2, **kwargs):
    """(values, indices) of torch's max_pool1d: the unpooling inputs, the same for both libraries."""
    return F.max_pool1d(x(*shape), kernel, return_indices=True, **kwargs)


def unpool(*args, shape=(2, 3, 8), kernel=2, pool=None, index=None, grad=False, **kwargs):
    """fn(f): f.max_unpool1d of max_pool1d's (values, indices) on `shape` (pool: its keyword
    arguments), one index set to `index` where given."""

    def fn(f):
        values, indices = pooled1d(shape, kernel, **(pool or {}))
        if index is not None:
            indices[1, 2, 1] = index
        if grad:
            values.requires_grad_()
        out = f.max_unpool1d(values, indices, *(args or (kernel,)), **kwargs)
        return (out,) + grads(out, values) if grad else out

    return fn


def _special(op, kind):
    def make():
        t = x(*SHAPES[op])
        t.view(-1)[1] = float("nan") if kind == "nan" else float("inf")
        t.view(-1)[-3] = -float("inf")
        return t

    return make


# torch's max_pool1d without indices (its own 1-d kernel) hangs on a kernel of 2**32 or more taps (its
# loops over the taps), and crashes on 2**63 - 1: torch is asked the same question with the smallest
# kernel that has the same answer (a kernel longer than the 8-long input: no output; a padded one
# covering it: one window), fastconv the huge one.
def _max_pool1d_twin(f, kw):
    kernel, padding = kw.get("kernel_size", 3), kw.get("padding", 0)
    kernel = kernel[0] if isinstance(kernel, tuple) else kernel
    padding = padding[0] if isinstance(padding, tuple) else padding
    if not f.is_torch or not 2**31 <= kernel < 2**63:
        return kw
    if padding == 0:
        return {"kernel_size": 9} if kernel >= 2**32 else kw
    return {"kernel_size": 17, "padding": 8} if padding <= kernel // 2 else kw


# The table: one case a line, as written (the formatter would spread most rows over several lines).
# fmt: off

for _op, _shape in SHAPES.items():
    _two = _op in TWO_D or len(_shape) == 4
    _lp = (2,) if _op.startswith("lp_") else ()
    _args = ("kernel_size", "stride") + (("padding",) if not _op.startswith("lp_") else ()) + (("dilation",) if _op == "max_pool1d" else ())
    # Huge, negative and zero values of every argument, alone and as one of a pair (1-d: a 1-tuple).
    for _arg in _args:
        for _label, _v in {**BIG, "0": 0}.items():
            _forms = forms(_v) if _two else {"": _v, "(v,)": (_v,)}
            for _form, _value in _forms.items():
                _kw = {"kernel_size": 3, _arg: _value}
                if _arg == "padding" and isinstance(_v, int) and _v > 0:  # the largest kernel that allows it
                    _kw["kernel_size"] = 2 * _v + 1 if _v < 2**62 else 2**63 - 1
                if _op == "max_pool1d" and _arg in ("kernel_size", "padding"):
                    case(f"{_op} {_arg}={_form or _label}{' v=' + _label if _form else ''}",
                         lambda f, kw=_kw: f.max_pool1d(x(1, 3, 8), **_max_pool1d_twin(f, kw)))
                    continue
                case(f"{_op} {_arg}={_form or _label}{' v=' + _label if _form else ''}",
                     lambda f, op=_op, kw=_kw, lp=_lp: getattr(f, op)(x(*SHAPES[op]), *lp, **kw))
    # Ranks.
    for _rank in (1, 2, 3, 4, 5):
        if _rank != len(_shape):
            case(f"{_op} {_rank}-D input", call(_op, lambda r=_rank: x(*([4] * r))))
    case(f"{_op} 0-D input", call(_op, lambda: x()))
    case(f"{_op} unbatched", call(_op, lambda s=_shape: x(*s[1:])))
    case(f"{_op} unbatched backward", call(_op, lambda s=_shape: x(*s[1:]), grad=True))
    # dtypes.
    for _dtype in (torch.float64, torch.float16, torch.bfloat16):
        case(f"{_op} {_dtype}", call(_op, lambda s=_shape, d=_dtype: x(*s, dtype=d)))
    for _dtype in (torch.int64, torch.int32, torch.int8, torch.uint8):
        case(f"{_op} {_dtype}", call(_op, lambda s=_shape, d=_dtype: ints(*s, dtype=d)))
    case(f"{_op} bool", call(_op, lambda s=_shape: torch.ones(s, dtype=torch.bool)))
    case(f"{_op} complex64", call(_op, lambda s=_shape: x(*s).to(torch.complex64)))
    case(f"{_op} float16 backward", call(_op, lambda s=_shape: x(*s, dtype=torch.float16), grad=True))
    # Layouts.
    case(f"{_op} strided", call(_op, lambda s=_shape: strided(x(*s))))
    case(f"{_op} expanded", call(_op, lambda s=_shape: x(1, *s[1:]).expand(3, *s[1:])))
    case(f"{_op} zero-stride", call(_op, lambda s=_shape: x(1).expand(*s)))
    case(f"{_op} zero-stride backward", call(_op, lambda s=_shape: x(1).expand(*s), grad=True))
    case(f"{_op} transposed view", call(_op, lambda s=_shape: x(*s).transpose(-1, -2)))
    if len(_shape) == 4:
        case(f"{_op} channels_last", call(_op, lambda s=_shape: x(*s, cl=True)))
        case(f"{_op} channels_last backward", call(_op, lambda s=_shape: x(*s, cl=True), grad=True))
        case(f"{_op} channels_last int64", call(_op, lambda s=_shape: ints(*s, dtype=torch.int64, cl=True)))
    # Empty tensors.
    case(f"{_op} empty batch", call(_op, lambda s=_shape: x(0, *s[1:])))
    case(f"{_op} empty batch backward", call(_op, lambda s=_shape: x(0, *s[1:]), grad=True))
    case(f"{_op} zero channels", call(_op, lambda s=_shape: x(s[0], 0, *s[2:])))
    case(f"{_op} zero length", call(_op, lambda s=_shape: x(*s[:-1], 0)))
    case(f"{_op} unbatched zero channels", call(_op, lambda s=_shape: x(0, *s[2:])))
    case(f"{_op} kernel longer than the input", call(_op, None, *_lp, 9))
    case(f"{_op} kernel longer than the input ceil", call(_op, None, *_lp, 9, ceil_mode=True))
    # Devices and values.
    case(f"{_op} meta", call(_op, lambda s=_shape: meta(*s)))
    case(f"{_op} meta kernel 0", call(_op, lambda s=_shape: meta(*s), *_lp, 0))
    for _kind in ("nan", "inf"):
        case(f"{_op} {_kind} values", call(_op, _special(_op, _kind)))
        case(f"{_op} {_kind} values backward", call(_op, _special(_op, _kind), grad=True))
    # ceil_mode: a last window that starts in the padding, or past the input.
    for _k, _s, _p in ((3, 2, 1), (2, 3, 1), (3, 3, 0), (4, 3, 2)):
        if not _op.startswith("lp_") or _p == 0:
            _kw = {"padding": _p} if _p else {}
            case(f"{_op} ceil kernel {_k} stride {_s} padding {_p}", call(_op, None, *_lp, _k, _s, ceil_mode=True, **_kw))
            case(f"{_op} ceil kernel {_k} stride {_s} padding {_p} backward", call(_op, None, *_lp, _k, _s, ceil_mode=True, grad=True, **_kw))
    # Arguments of the wrong type or length.
    case(f"{_op} kernel 1.5", call(_op, None, *_lp, 1.5))
    case(f"{_op} kernel None", call(_op, None, *_lp, None))
    case(f"{_op} kernel empty", call(_op, None, *_lp, ()))
    case(f"{_op} kernel three values", call(_op, None, *_lp, (2, 2, 2)))
    case(f"{_op} stride tensor", call(_op, None, *_lp, 2, torch.tensor(2)))
    case(f"{_op} ceil_mode None", call(_op, None, *_lp, 2, ceil_mode=None))
    case(f"{_op} input not a tensor", lambda f, op=_op, lp=_lp: getattr(f, op)([[[1.0]]], *lp, 1))
    if not _op.startswith("lp_"):
        case(f"{_op} padding over half the kernel", call(_op, None, 2, padding=2))
        case(f"{_op} padding -1", call(_op, None, 3, padding=-1))
        case(f"{_op} padding 1.5", call(_op, None, 3, padding=1.5))

# Average pooling: count_include_pad and divisor_override.
for _op in ("avg_pool2d", "avg_pool1d"):
    case(f"{_op} count_include_pad False padding 1", call(_op, None, 3, 2, 1, count_include_pad=False))
    case(f"{_op} count_include_pad False ceil", call(_op, None, 3, 2, 1, ceil_mode=True, count_include_pad=False))
    case(f"{_op} count_include_pad False backward", call(_op, None, 3, 2, 1, ceil_mode=True, count_include_pad=False, grad=True))
    case(f"{_op} count_include_pad None", call(_op, None, 3, count_include_pad=None))
    case(f"{_op} count_include_pad 2", call(_op, None, 3, count_include_pad=2))
for _label, _v in {**BIG, "0": 0, "3": 3}.items():
    case(f"avg_pool2d divisor_override={_label}", call("avg_pool2d", None, 3, divisor_override=_v))
case("avg_pool2d divisor_override 1.5", call("avg_pool2d", None, 3, divisor_override=1.5))
case("avg_pool2d divisor_override int64", call("avg_pool2d", lambda: ints(1, 3, 6, 6, dtype=torch.int64), 3, divisor_override=2))
case("avg_pool2d divisor_override backward", call("avg_pool2d", None, 3, 1, 1, divisor_override=5, grad=True))
case("avg_pool2d int64 large values", call("avg_pool2d", lambda: torch.full((1, 1, 4, 4), 2**61, dtype=torch.int64), 2))
case("avg_pool2d meta divisor_override 0", call("avg_pool2d", lambda: meta(1, 3, 6, 6), 3, divisor_override=0))

# Power-average pooling: the norm type.
for _op in ("lp_pool2d", "lp_pool1d"):
    for _label, _p in {"0": 0, "0.0": 0.0, "-1": -1, "1": 1, "3.5": 3.5, "inf": float("inf"), "-inf": -float("inf"),
                       "nan": float("nan"), "2**62": 2**62, "-0.5": -0.5}.items():
        case(f"{_op} norm_type={_label}", call(_op, None, _p, 2))
        case(f"{_op} norm_type={_label} backward", call(_op, None, _p, 2, grad=True))
    case(f"{_op} norm_type string", call(_op, None, "2", 2))
    case(f"{_op} norm_type None", call(_op, None, None, 2))
    case(f"{_op} norm_type tensor", call(_op, None, torch.tensor(2.0), 2))
    case(f"{_op} norm_type inf int64", call(_op, lambda op=_op: ints(*SHAPES[op], dtype=torch.int64), float("inf"), 2))
    case(f"{_op} norm_type 2 int64", call(_op, lambda op=_op: ints(*SHAPES[op], dtype=torch.int64), 2, 2))
    case(f"{_op} norm_type inf bool", call(_op, lambda op=_op: torch.ones(SHAPES[op], dtype=torch.bool), float("inf"), 2))
    case(f"{_op} zeros backward", call(_op, lambda op=_op: torch.zeros(SHAPES[op]), 2, 2, grad=True))
    case(f"{_op} norm_type inf stride 0", call(_op, None, float("inf"), 2, 0))
    case(f"{_op} norm_type inf empty batch", call(_op, lambda op=_op: x(0, *SHAPES[op][1:]), float("inf"), 2))
case("lp_pool2d kernel (2**31, 2**31) window product", call("lp_pool2d", None, 2, (2**31, 2**31)))
case("lp_pool1d kernel 2**62", call("lp_pool1d", None, 2, 2**62))

# max_pool1d: with and without indices (torch runs different kernels for the two).
for _label, _v in BIG.items():
    case(f"max_pool1d indices kernel {_label}", call("max_pool1d", None, _v, return_indices=True))
    case(f"max_pool1d indices stride {_label}", call("max_pool1d", None, 2, _v, return_indices=True))
    case(f"max_pool1d indices dilation {_label}", call("max_pool1d", None, 2, dilation=_v, return_indices=True))
    case(f"max_pool1d indices stride {_label} backward", call("max_pool1d", None, 2, _v, return_indices=True, grad=True))
    case(f"max_pool1d stride {_label} backward", call("max_pool1d", None, 2, _v, grad=True))
case("max_pool1d indices int8", call("max_pool1d", lambda: ints(1, 3, 8, dtype=torch.int8), 2, return_indices=True))
case("max_pool1d indices bool", call("max_pool1d", lambda: torch.ones(1, 3, 8, dtype=torch.bool), 2, return_indices=True))
case("max_pool1d indices zero channels", call("max_pool1d", lambda: x(1, 0, 8), 2, return_indices=True))
case("max_pool1d indices zero length", call("max_pool1d", lambda: x(1, 3, 0), 2, return_indices=True))
case("max_pool1d indices 4-D", call("max_pool1d", lambda: x(1, 3, 8, 8), 2, return_indices=True))
case("max_pool1d indices all-padding window", call("max_pool1d", lambda: x(2, 1, 2), 2, 1, 1, 3, return_indices=True))
case("max_pool1d indices nan backward", call("max_pool1d", _special("max_pool1d", "nan"), 3, 1, 1, return_indices=True, grad=True))
case("max_pool1d indices dilation 3 ceil", call("max_pool1d", None, 3, 2, 1, 3, ceil_mode=True, return_indices=True))
case("max_pool1d return_indices None", call("max_pool1d", None, 2, return_indices=None))

# max_unpool1d.
for _label, _v in {**BIG, "0": 0}.items():
    for _arg in ("kernel_size", "stride", "padding"):
        case(f"max_unpool1d {_arg}={_label}", unpool(**{"kernel_size": 2, _arg: _v}))
    case(f"max_unpool1d output_size=({_label},)", unpool(output_size=(_v,)))
    if -(2**63) <= _v < 2**63:
        case(f"max_unpool1d index {_label}", unpool(index=_v))
case("max_unpool1d index just past the length", unpool(index=8))
case("max_unpool1d index past output_size", unpool(index=9, output_size=(9,)))
case("max_unpool1d index within output_size", unpool(index=8, output_size=(9,)))
case("max_unpool1d index past the length backward", unpool(index=8, grad=True))
case("max_unpool1d output_size 9", unpool(output_size=(9,)))
case("max_unpool1d output_size 10", unpool(output_size=(10,)))
case("max_unpool1d output_size 7", unpool(output_size=(7,)))
case("max_unpool1d output_size with batch and channels", unpool(output_size=(2, 3, 9)))
case("max_unpool1d output_size of two", unpool(output_size=(8, 1)))
case("max_unpool1d output_size of four", unpool(output_size=(1, 2, 3, 8)))
case("max_unpool1d output_size int", unpool(output_size=8))
case("max_unpool1d output_size float", unpool(output_size=(8.0,)))
case("max_unpool1d output_size tensor", unpool(output_size=torch.tensor([8])))
case("max_unpool1d output_size backward", unpool(output_size=(9,), grad=True))
case("max_unpool1d stride 3", unpool(stride=3))
case("max_unpool1d stride 1", unpool(stride=1))
case("max_unpool1d padding 1", unpool(padding=1, pool={"padding": 1}))
case("max_unpool1d padding over the output", unpool(padding=5))
case("max_unpool1d kernel 3 stride 2", unpool(3, 2, kernel=3, pool={"stride": 2}))
case("max_unpool1d int32 indices", lambda f: f.max_unpool1d((p := pooled1d())[0], p[1].int(), 2))
case("max_unpool1d float indices", lambda f: f.max_unpool1d((p := pooled1d())[0], p[1].float(), 2))
case("max_unpool1d indices shorter", lambda f: f.max_unpool1d((p := pooled1d())[0], p[1][..., :-1], 2))
case("max_unpool1d indices of another batch", lambda f: f.max_unpool1d((p := pooled1d())[0], p[1][:1], 2))
case("max_unpool1d meta indices", lambda f: f.max_unpool1d((p := pooled1d())[0], p[1].to("meta"), 2))
case("max_unpool1d meta input", lambda f: f.max_unpool1d((p := pooled1d())[0].to("meta"), p[1], 2))
case("max_unpool1d meta both", lambda f: f.max_unpool1d((p := pooled1d())[0].to("meta"), p[1].to("meta"), 2))
case("max_unpool1d unbatched", unpool(shape=(3, 8)))
case("max_unpool1d unbatched backward", unpool(shape=(3, 8), grad=True))
case("max_unpool1d 4-D", lambda f: f.max_unpool1d(x(1, 2, 3, 4), torch.zeros(1, 2, 3, 4, dtype=torch.long), 2))
case("max_unpool1d 1-D", lambda f: f.max_unpool1d(x(4), torch.zeros(4, dtype=torch.long), 2))
case("max_unpool1d empty batch", unpool(shape=(0, 3, 8)))
case("max_unpool1d zero channels", unpool(shape=(2, 0, 8)))
case("max_unpool1d int64 values", lambda f: f.max_unpool1d((p := pooled1d())[0].long(), p[1], 2))
case("max_unpool1d bool values", lambda f: f.max_unpool1d((p := pooled1d())[0] > 0, p[1], 2))
case("max_unpool1d float16 values", lambda f: f.max_unpool1d((p := pooled1d())[0].half(), p[1], 2))
case("max_unpool1d strided", lambda f: f.max_unpool1d(*[strided(t) for t in pooled1d()], 2))
case("max_unpool1d expanded", lambda f: f.max_unpool1d(*[t[:1].expand(2, 3, 4) for t in pooled1d()], 2))
case("max_unpool1d zero-stride indices", lambda f: f.max_unpool1d(pooled1d()[0], torch.zeros(1, dtype=torch.long).expand(2, 3, 4), 2))
case("max_unpool1d duplicate indices", lambda f: f.max_unpool1d(pooled1d()[0], torch.ones(2, 3, 4, dtype=torch.long), 2))
case("max_unpool1d nan values", lambda f: f.max_unpool1d((p := pooled1d())[0] / 0, p[1], 2))
case("max_unpool1d kernel 1.5", unpool(1.5))
case("max_unpool1d kernel two values", unpool((2, 2)))
case("max_unpool1d indices not a tensor", lambda f: f.max_unpool1d(pooled1d()[0], [[0]], 2))


# ------------------------------------------------------------------ documented differences

document([f"max_pool1d dilation={form}" for form in ("2**62", "(v,) v=2**62", "2**63-1", "(v,) v=2**63-1")],
         raises_runtime_error, "torch's max_pool1d computes the effective kernel (kernel - 1) * dilation + 1 in int64, "
         "which wraps, and names the padding for it; fastconv reports the true output size")

# --------------------------------------------------------------------------- known defects

defect([f"max_pool1d padding={form}" for label in ("2**31-1", "2**31", "2**32") for form in (label, "(v,) v=" + label)],
       "max_pool1d without indices runs the 2-d op, whose int32 kernel refuses a kernel of 2**31 or more taps "
       "('value cannot be converted to type int without overflow') where torch's 1-d kernel answers (one window "
       "over the whole padded input here)")

# fmt: on
