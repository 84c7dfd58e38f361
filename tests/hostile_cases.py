"""Hostile calls of fastconv's ops (issue 13), each compared with what torch does for the same call.

Each case is a function of a namespace `f` holding every op of fastconv.functional (and the 2-d
ops underneath): called once with torch's and once with fastconv's. This file holds the cases of
conv2d, max_pool2d and max_unpool2d; hostile_cases_conv.py and hostile_cases_pool.py those of the
other ops, in the same registry (hostile_table.py). fastconv must raise what torch
raises (exception type and message) or return what torch returns. Where torch's own behaviour is a
bug, the case carries `expect`, a documented check of fastconv's answer in place of torch's.

The cases run in worker processes (hostile_harness.py), so that a crash or a hang fails its case
and not the test run: `python hostile_cases.py` is a worker, reading case names on stdin and
answering one JSON line per case; `python hostile_cases.py NAME...` runs those cases and prints
their verdicts. Inputs are drawn from a generator reseeded before every call, so both libraries
see the same values.
"""

import os
import sys
from types import SimpleNamespace

import torch
import torch.nn.functional as F

import hostile_cases_conv  # noqa: F401  the table of conv1d and the transposed convolutions
import hostile_cases_pool  # noqa: F401  the table of the average, power-average and 1-d poolings
import hostile_harness
import hostile_table
from helpers import strided
from hostile_harness import (
    describe_mismatch,
    no_crash,
    raises_not_implemented,
    raises_runtime_error,
    torch_or_exact_output_size,
)
from hostile_table import BIG, CASES, case, forms, grads, ints, meta, pooled, x

# The table: one case a line, as written (the formatter would spread most rows over several lines).
# fmt: off


# ---------------------------------------------------------------- the reproducers of issue 13


WRAPS = "torch's dilation * (kernel - 1) wraps around int64 and it answers from the wrapped value"


# Out-of-bounds read (garbage values and indices), segfault, hangs.
case("pool dilation 2**62+1 reads out of bounds",
     lambda f: f.max_pool2d(x(1, 1, 5, 8), (5, 1), stride=1, dilation=(2**62 + 1, 1), return_indices=True))
case("pool channels_last kernel 2**32 padding 2**31 segfaults",
     lambda f: f.max_pool2d(x(1, 8, 3, 3, cl=True), 2**32, stride=1, padding=2**31, return_indices=True))
case("pool kernel 2**62 padding 2**61 hangs", lambda f: f.max_pool2d(x(1, 2, 5, 5), 2**62, padding=2**61))
case("pool kernel 2**63-1 padding 2**62 hangs", lambda f: f.max_pool2d(x(1, 2, 5, 5), 2**63 - 1, padding=2**62))
case("pool NCHW kernel 2**32 padding 2**31 hangs",
     lambda f: f.max_pool2d(x(1, 8, 3, 3), 2**32, stride=1, padding=2**31, return_indices=True))
case("pool channels_last kernel 2**62 padding 2**61",
     lambda f: f.max_pool2d(x(1, 8, 3, 3, cl=True), 2**62, stride=1, padding=2**61))
case("pool kernel 2**62 padding 2**61 backward",
     lambda f: grads(f.max_pool2d(xx := x(1, 2, 5, 5, grad=True), 2**62, padding=2**61), xx))
# Memory blow-up: the depthwise conv sized its padded plane by the padding (13.4 GiB).
case("depthwise stride 30000 padding 30000 (13.4 GiB)",
     lambda f: f.conv2d(x(1, 2, 3, 3), x(2, 1, 3, 3), stride=30000, padding=30000, groups=2))
case("depthwise stride 30000 padding 30000 backward",
     lambda f: grads(f.conv2d(a := x(1, 2, 3, 3, grad=True), w := x(2, 1, 3, 3, grad=True),
                              stride=30000, padding=30000, groups=2), a, w))
case("dense stride 30000 padding 30000",
     lambda f: f.conv2d(x(1, 2, 3, 3), x(3, 2, 3, 3), stride=30000, padding=30000))
case("pointwise stride 2**40 padding 2**40",
     lambda f: f.conv2d(x(1, 2, 3, 3), x(3, 2, 1, 1), stride=2**40, padding=2**40))
case("depthwise padding 2**20 stride 2**21",
     lambda f: f.conv2d(x(1, 2, 3, 3), x(2, 1, 3, 3), stride=2**21, padding=2**20, groups=2))
case("pool stride 2**40 padding 1", lambda f: f.max_pool2d(x(1, 2, 5, 5), 3, stride=2**40, padding=1))
# Uninitialised memory returned: indices on another device.
case("unpool meta indices", lambda f: f.max_unpool2d((p := pooled())[0], p[1].to("meta"), 2))
case("unpool meta input", lambda f: f.max_unpool2d((p := pooled())[0].to("meta"), p[1], 2))
case("unpool meta input and indices",
     lambda f: f.max_unpool2d((p := pooled())[0].to("meta"), p[1].to("meta"), 2))
case("unpool meta indices output_size", lambda f: f.max_unpool2d((p := pooled())[0], p[1].to("meta"), 2, output_size=(5, 5)))
MIXED_META = ("torch's CPU conv2d accepts a meta weight or bias with a CPU input and returns a CPU "
              "tensor of uninitialised memory; fastconv must raise (device agreement, issue 13)")
case("conv meta weight", lambda f: f.conv2d(x(1, 2, 5, 5), meta(3, 2, 3, 3)),
     expect=raises_runtime_error, why=MIXED_META)
case("conv meta input", lambda f: f.conv2d(meta(1, 2, 5, 5), x(3, 2, 3, 3)))
case("conv meta bias", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), meta(3)),
     expect=raises_runtime_error, why=MIXED_META)
case("unpool backward meta indices",
     lambda f: grads(f.max_unpool2d(v := (p := pooled())[0].requires_grad_(), p[1].to("meta"), 2), v))

# Answers where torch raises.
case("conv zero kernel height", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 0, 3)))
case("conv zero kernel width", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 0)))
case("conv zero kernel both", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 0, 0), padding=1))
case("conv zero kernel depthwise", lambda f: f.conv2d(x(1, 2, 5, 5), x(2, 1, 0, 3), groups=2))
case("conv zero kernel meta", lambda f: f.conv2d(meta(1, 2, 5, 5), meta(3, 2, 0, 3)))
case("conv zero kernel empty batch", lambda f: f.conv2d(x(0, 2, 5, 5), x(3, 2, 0, 3)))
case("conv padding of an empty image", lambda f: f.conv2d(x(1, 2, 0, 5), x(3, 2, 1, 1), padding=1))
case("conv padding of an empty image width", lambda f: f.conv2d(x(1, 2, 5, 0), x(3, 2, 1, 1), padding=(0, 1)))
case("conv padding of an empty image 3x3", lambda f: f.conv2d(x(2, 2, 0, 0), x(3, 2, 3, 3), padding=2))
case("conv padding of an empty image depthwise",
     lambda f: f.conv2d(x(1, 2, 0, 5), x(2, 1, 1, 1), padding=1, groups=2))
case("conv padding of an empty image meta", lambda f: f.conv2d(meta(1, 2, 0, 5), meta(3, 2, 1, 1), padding=1))
case("conv empty image no padding", lambda f: f.conv2d(x(1, 2, 0, 5), x(3, 2, 1, 1)))
case("conv padding of an empty batch", lambda f: f.conv2d(x(0, 2, 3, 3), x(3, 2, 3, 3), padding=1))
case("conv padding 2**63-1", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), padding=2**63 - 1))
case("conv padding 2**62", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), padding=2**62))
case("conv padding 2**62-1", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), padding=2**62 - 1))
case("conv padding 2**62 depthwise", lambda f: f.conv2d(x(1, 2, 5, 5), x(2, 1, 3, 3), padding=2**62, groups=2))
case("conv padding 2**63-1 width only", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), padding=(0, 2**63 - 1)))
case("conv padding same dilation 2**62",
     lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), padding="same", dilation=2**62),
     expect=raises_runtime_error, why=WRAPS)
case("conv padding same dilation 2**61",
     lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), padding="same", dilation=2**61))
case("conv padding same dilation 2**31",
     lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), padding="same", dilation=2**31))
case("conv padding same dilation 2**63-1",
     lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), padding="same", dilation=2**63 - 1),
     expect=raises_runtime_error, why=WRAPS)
case("conv padding same dilation 2**62 even kernel",
     lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 2, 2), padding="same", dilation=2**62))
case("conv padding same dilation (1, 2**62)",
     lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), padding="same", dilation=(1, 2**62)),
     expect=raises_runtime_error, why=WRAPS)
case("conv padding same even kernel dilation 3",
     lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 2, 4), padding="same", dilation=3))
case("conv padding same kernel larger than input",
     lambda f: f.conv2d(x(1, 2, 2, 2), x(3, 2, 5, 4), padding="same"))
case("pool dilated padding over half the kernel",
     lambda f: f.max_pool2d(x(1, 1, 8, 8), 2, padding=2, dilation=3))
case("pool dilated padding over half the kernel width",
     lambda f: f.max_pool2d(x(1, 1, 8, 8), (3, 2), padding=(1, 2), dilation=(1, 3), return_indices=True))
case("pool dilated padding over half the kernel channels_last",
     lambda f: f.max_pool2d(x(1, 3, 8, 8, cl=True), 2, padding=2, dilation=4))
case("pool dilated padding over half the kernel ceil",
     lambda f: f.max_pool2d(x(1, 1, 9, 9), 3, stride=2, padding=2, dilation=2, ceil_mode=True))
for _arg in ("kernel_size", "stride", "padding", "dilation"):
    for _v in (2**31 - 1, 2**31, 2**32 + 1):
        case(f"pool {_arg}={_v}", lambda f, a=_arg, v=_v: f.max_pool2d(
            x(1, 2, 5, 5), **{"kernel_size": 2, a: v} if a != "padding" else {"kernel_size": 2 * v + 1, "padding": v}))
for _dtype in (torch.int8, torch.uint8):
    for _hw in ((11, 11), (12, 12), (8, 16), (64, 64)):
        case(f"pool {_dtype} channels_last {_hw}",
             lambda f, d=_dtype, hw=_hw: f.max_pool2d(ints(2, 4, *hw, dtype=d, cl=True), 2, return_indices=True))
case("pool int16 channels_last 182x181",
     lambda f: f.max_pool2d(ints(1, 2, 182, 181, dtype=torch.int16, cl=True), 3, return_indices=True))
case("pool int16 channels_last 181x181",
     lambda f: f.max_pool2d(ints(1, 2, 181, 181, dtype=torch.int16, cl=True), 3, return_indices=True))
case("pool int8 channels_last 12x12 without indices",
     lambda f: f.max_pool2d(ints(1, 4, 12, 12, dtype=torch.int8, cl=True), 2))
case("pool int8 NCHW 12x12", lambda f: f.max_pool2d(ints(1, 4, 12, 12, dtype=torch.int8), 2, return_indices=True))
case("pool int8 channels_last empty batch 12x12",
     lambda f: f.max_pool2d(ints(0, 4, 12, 12, dtype=torch.int8, cl=True), 2))
case("pool bool empty batch", lambda f: f.max_pool2d(torch.zeros(0, 2, 4, 4, dtype=torch.bool), 2))
case("pool bool empty batch indices",
     lambda f: f.max_pool2d(torch.zeros(0, 2, 4, 4, dtype=torch.bool), 2, return_indices=True))
case("pool bool channels_last", lambda f: f.max_pool2d(torch.zeros(2, 2, 4, 4, dtype=torch.bool).contiguous(
    memory_format=torch.channels_last), 2))
case("pool complex", lambda f: f.max_pool2d(x(1, 2, 4, 4).to(torch.complex64), 2))
case("pool complex channels_last", lambda f: f.max_pool2d(x(1, 2, 4, 4).to(torch.complex64).contiguous(
    memory_format=torch.channels_last), 2))
case("pool bool empty batch meta", lambda f: f.max_pool2d(meta(0, 2, 4, 4, dtype=torch.bool), 2))
case("conv meta kernel larger than input", lambda f: f.conv2d(meta(1, 2, 2, 2), meta(3, 2, 3, 3)))
case("conv meta dilated kernel larger than input", lambda f: f.conv2d(meta(1, 2, 5, 5), meta(3, 2, 3, 3), dilation=3))
case("conv meta negative padding", lambda f: f.conv2d(meta(1, 2, 5, 5), meta(3, 2, 3, 3), padding=-1))
case("conv meta zero stride", lambda f: f.conv2d(meta(1, 2, 5, 5), meta(3, 2, 3, 3), stride=0))
case("conv meta channel mismatch", lambda f: f.conv2d(meta(1, 3, 5, 5), meta(3, 2, 3, 3)))
case("conv meta groups", lambda f: f.conv2d(meta(1, 4, 5, 5), meta(3, 2, 3, 3), groups=2))
case("conv meta stride 2**63-1", lambda f: f.conv2d(meta(1, 2, 5, 5), meta(3, 2, 3, 3), stride=2**63 - 1))
case("pool meta zero kernel", lambda f: f.max_pool2d(meta(1, 2, 5, 5), 0))
case("pool meta output too small", lambda f: f.max_pool2d(meta(1, 2, 2, 2), 3))
case("pool meta padding over half", lambda f: f.max_pool2d(meta(1, 2, 8, 8), 2, padding=2))
case("pool meta kernel 2**62 padding 2**61", lambda f: f.max_pool2d(meta(1, 2, 5, 5), 2**62, padding=2**61))
case("unpool meta zero channels", lambda f: f.max_unpool2d(meta(1, 0, 2, 2), meta(1, 0, 2, 2, dtype=torch.long), 2))
case("unpool meta int32 indices", lambda f: f.max_unpool2d(meta(1, 2, 2, 2), meta(1, 2, 2, 2, dtype=torch.int32), 2))
case("unpool output_size floats", lambda f: f.max_unpool2d(*pooled(), 2, output_size=(4.0, 4.0)))
case("unpool output_size floats with batch", lambda f: f.max_unpool2d(*pooled(), 2, output_size=(1, 2, 4.0, 4.0)))
case("unpool output_size float 4.5", lambda f: f.max_unpool2d(*pooled(), 2, output_size=(4.5, 4)))
case("unpool output_size tensor", lambda f: f.max_unpool2d(*pooled(), 2, output_size=torch.tensor([4, 4])))
case("unpool output_size tensor 4", lambda f: f.max_unpool2d(*pooled(), 2, output_size=torch.tensor([1, 2, 4, 4])))
case("unpool output_size torch.Size", lambda f: f.max_unpool2d(*pooled(), 2, output_size=torch.Size([5, 5])))
case("unpool output_size 0", lambda f: f.max_unpool2d(*pooled((1, 1, 1, 1), 1), 1, stride=2, output_size=(0, 0)))
case("unpool output_size 0 height",
     lambda f: f.max_unpool2d(*pooled((1, 1, 1, 1), 1), 1, stride=2, output_size=(0, 1)))
case("unpool output_size negative",
     lambda f: f.max_unpool2d(*pooled((1, 1, 1, 1), 1), 1, stride=3, output_size=(-1, -1)))
case("unpool output_size negative width",
     lambda f: f.max_unpool2d(*pooled((1, 1, 1, 1), 1), 1, stride=3, output_size=(1, -1)))
case("unpool output_size string", lambda f: f.max_unpool2d(*pooled(), 2, output_size="44"))
case("unpool output_size None elements", lambda f: f.max_unpool2d(*pooled(), 2, output_size=(None, 4)))
case("unpool output_size int", lambda f: f.max_unpool2d(*pooled(), 2, output_size=4))

# Found by the fuzz: the checks torch skips or keeps for an empty batch.
case("conv empty batch weight dtype", lambda f: f.conv2d(x(0, 2, 5, 5), x(3, 2, 3, 3, dtype=torch.float64)))
case("conv empty batch dilation 0", lambda f: f.conv2d(x(0, 2, 5, 5), x(3, 2, 3, 3), dilation=0))
case("conv empty batch channels_last padding 2**31",
     lambda f: f.conv2d(x(0, 9, 1, 2, cl=True), x(9, 3, 4, 1), stride=(2, 3), padding=2**31, groups=3))
case("conv dilation 0 groups 3", lambda f: f.conv2d(x(1, 6, 5, 7), x(6, 2, 2, 1), dilation=0, groups=3))
case("conv dilation -1", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 1, 1), dilation=-1))
case("conv zero kernel groups 12", lambda f: f.conv2d(x(1, 12, 8, 6), x(36, 1, 1, 0), groups=12))
case("conv padding same weight dtype",
     lambda f: f.conv2d(x(1, 1, 5, 1), x(3, 1, 2, 2, dtype=torch.float64), padding="same", dilation=(1, 3)))
case("conv strided input weight dtype",
     lambda f: f.conv2d(strided(x(1, 2, 10, 2)), x(2, 2, 3, 1, dtype=torch.float64), stride=(2, 1), padding=(2, 1)))
case("conv channels_last bias dtype",
     lambda f: f.conv2d(x(1, 2, 5, 5, cl=True), x(3, 2, 3, 3), x(3, dtype=torch.float64)))
case("unpool empty output width", lambda f: f.max_unpool2d(*pooled((1, 4, 5, 2), (4, 2), stride=(2, 3), padding=(2, 1)),
                                                          (4, 2), stride=(2, 3), padding=(2, 1)))
case("unpool empty output width requires grad", lambda f: f.max_unpool2d(
    (p := pooled((1, 4, 5, 2), (4, 2), stride=(2, 3), padding=(2, 1)))[0].requires_grad_(), p[1],
    (4, 2), stride=(2, 3), padding=(2, 1)))
case("unpool int64 empty output", lambda f: f.max_unpool2d(
    (p := pooled((2, 3, 1, 12), (1, 4), stride=(3, 4), padding=(0, 1)))[0].long(), p[1], (1, 4), stride=(3, 4),
    padding=(0, 1), output_size=(0, 9)))

# Different exception types or messages.
case("conv stride 1.5", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), stride=1.5))
case("conv padding 1.5", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), padding=1.5))
case("conv dilation (1, 2.0)", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), dilation=(1, 2.0)))
case("conv groups 1.0", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), groups=1.0))
case("conv groups True", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), groups=True))
case("conv groups None", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), groups=None))
case("conv groups tensor", lambda f: f.conv2d(x(1, 2, 5, 5), x(2, 1, 3, 3), groups=torch.tensor(2)))
case("conv stride None", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), stride=None))
case("conv stride string", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), stride="2"))
case("conv stride tensor", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), stride=torch.tensor(2)))
case("conv stride tensor pair", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), stride=torch.tensor([2, 1])))
case("conv stride float tensor", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), stride=torch.tensor(2.0)))
case("conv padding tensor", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), padding=torch.tensor(1)))
case("conv dilation tensor", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), dilation=torch.tensor(2)))
case("conv stride empty", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), stride=()))
case("conv padding empty", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), padding=[]))
case("conv padding SAME", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), padding="SAME"))
case("conv input not a tensor", lambda f: f.conv2d([[1.0]], x(3, 2, 3, 3)))
case("conv weight None", lambda f: f.conv2d(x(1, 2, 5, 5), None))
case("conv bias not a tensor", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), [0.0, 0.0, 0.0]))
case("pool kernel 1.5", lambda f: f.max_pool2d(x(1, 2, 5, 5), 1.5))
case("pool stride 1.5", lambda f: f.max_pool2d(x(1, 2, 5, 5), 2, stride=1.5))
case("pool padding 0.0", lambda f: f.max_pool2d(x(1, 2, 5, 5), 2, padding=0.0))
case("pool dilation (1, 1.0)", lambda f: f.max_pool2d(x(1, 2, 5, 5), 2, dilation=(1, 1.0)))
case("pool kernel tensor", lambda f: f.max_pool2d(x(1, 2, 5, 5), torch.tensor(2)))
case("pool stride tensor", lambda f: f.max_pool2d(x(1, 2, 5, 5), 2, stride=torch.tensor(2)))
case("pool stride tensor pair", lambda f: f.max_pool2d(x(1, 2, 5, 5), 2, stride=torch.tensor([2, 1])))
case("pool padding tensor", lambda f: f.max_pool2d(x(1, 2, 5, 5), 3, padding=torch.tensor(1)))
case("pool kernel None", lambda f: f.max_pool2d(x(1, 2, 5, 5), None))
case("pool kernel empty", lambda f: f.max_pool2d(x(1, 2, 5, 5), ()))
case("pool stride empty", lambda f: f.max_pool2d(x(1, 2, 5, 5), 2, stride=[]))
case("pool ceil_mode None", lambda f: f.max_pool2d(x(1, 2, 5, 5), 2, ceil_mode=None))
case("pool ceil_mode 2", lambda f: f.max_pool2d(x(1, 2, 5, 5), 2, ceil_mode=2))
case("pool input not a tensor", lambda f: f.max_pool2d([[[1.0]]], 1))
case("unpool kernel 1.5", lambda f: f.max_unpool2d(*pooled(), 1.5))
case("unpool stride 1.5", lambda f: f.max_unpool2d(*pooled(), 2, stride=1.5))
case("unpool stride tensor", lambda f: f.max_unpool2d(*pooled(), 2, stride=torch.tensor(2)))
case("unpool kernel tensor", lambda f: f.max_unpool2d(*pooled(), torch.tensor(2)))
case("unpool padding tensor", lambda f: f.max_unpool2d(*pooled(), 2, padding=torch.tensor(0)))
case("unpool kernel three values", lambda f: f.max_unpool2d(*pooled(), (2, 2, 2)))
case("unpool stride one value", lambda f: f.max_unpool2d(*pooled(), 2, stride=(2,)))
case("unpool indices not a tensor", lambda f: f.max_unpool2d(pooled()[0], [[0]], 2))
case("conv 3-D weight, 4-D input, padding same (OpInfo sample)",
     lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3), padding="same"))
case("conv 3-D weight, 4-D input, padding valid", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3), padding="valid"))
case("conv 3-D weight, 4-D input", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3)))
case("conv 3-D weight, 3-D input, padding same", lambda f: f.conv2d(x(2, 5, 5), x(3, 2, 3), padding="same"))
case("conv 5-D weight, 4-D input, padding same", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3, 3), padding="same"))
case("conv 5-D weight, 5-D input", lambda f: f.conv2d(x(1, 2, 5, 5, 5), x(3, 2, 3, 3, 3)))
case("conv 5-D weight, 5-D input, stride pair", lambda f: f.conv2d(x(1, 2, 5, 5, 5), x(3, 2, 3, 3, 3), stride=(1, 1)))
case("conv 3-D weight, 4-D input, stride triple", lambda f: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3), stride=(1, 1, 1)))
case("conv 1-D weight", lambda f: f.conv2d(x(1, 2, 5, 5), x(3)))
case("conv 0-D weight", lambda f: f.conv2d(x(1, 2, 5, 5), x()))
NO_INTEGER_CONV = "fastconv has no integer convolution kernels (README); torch has slow ones"
case("conv long channels_last",
     lambda f: f.conv2d(ints(1, 2, 5, 5, dtype=torch.long, cl=True), ints(3, 2, 3, 3, dtype=torch.long, cl=True)),
     expect=raises_not_implemented, why=NO_INTEGER_CONV)
case("conv int channels_last",
     lambda f: f.conv2d(ints(1, 2, 5, 5, dtype=torch.int32, cl=True), ints(3, 2, 3, 3, dtype=torch.int32)),
     expect=raises_not_implemented, why=NO_INTEGER_CONV)
case("conv bool", lambda f: f.conv2d(torch.ones(1, 2, 5, 5, dtype=torch.bool), torch.ones(3, 2, 3, 3, dtype=torch.bool)))
case("conv complex channels_last",
     lambda f: f.conv2d(x(1, 2, 5, 5).to(torch.complex64).contiguous(memory_format=torch.channels_last),
                        x(3, 2, 3, 3).to(torch.complex64)))
case("pool long channels_last", lambda f: f.max_pool2d(ints(1, 2, 5, 5, dtype=torch.long, cl=True), 2, return_indices=True))
case("pool half channels_last", lambda f: f.max_pool2d(x(1, 2, 5, 5, dtype=torch.float16, cl=True), 2, return_indices=True))
case("unpool long channels_last", lambda f: f.max_unpool2d(
    (p := pooled((1, 2, 4, 4)))[0].long().contiguous(memory_format=torch.channels_last), p[1], 2))
case("unpool bool", lambda f: f.max_unpool2d((p := pooled())[0] > 0, p[1], 2))
case("unpool backward strided indices",
     lambda f: grads(f.max_unpool2d(v := (p := pooled((2, 3, 6, 6)))[0].requires_grad_(), strided(p[1]), 2), v))
case("unpool backward channels_last indices",
     lambda f: grads(f.max_unpool2d(v := (p := pooled((2, 3, 6, 6)))[0].requires_grad_(),
                                    p[1].contiguous(memory_format=torch.channels_last), 2), v))
case("unpool strided indices", lambda f: f.max_unpool2d((p := pooled((2, 3, 6, 6)))[0], strided(p[1]), 2))
case("unpool backward output_size", lambda f: grads(
    f.max_unpool2d(v := (p := pooled((2, 3, 7, 7)))[0].requires_grad_(), p[1], 2, output_size=(7, 7)), v))


# Unpool: invalid indices, deterministically named (one invalid index, as torch reports whichever its
# threads see last when there are several).
def _bad_indices(value, shape=(2, 3, 4, 4), position=(1, 2, 1, 0)):
    values, indices = pooled(shape)
    indices[position] = value
    return values, indices


for _label, _v in BIG.items():
    if -(2**63) <= _v < 2**63:
        case(f"unpool index {_label}", lambda f, v=_v: f.max_unpool2d(*_bad_indices(v), 2))
case("unpool index just past the plane", lambda f: f.max_unpool2d(*_bad_indices(16), 2))
case("unpool index past output_size", lambda f: f.max_unpool2d(*_bad_indices(20), 2, output_size=(5, 5)))
case("unpool index channels_last past the plane", lambda f: f.max_unpool2d(
    *[t.contiguous(memory_format=torch.channels_last) for t in _bad_indices(16)], 2))
case("unpool backward index past the plane", lambda f: grads(
    f.max_unpool2d(v := (p := _bad_indices(16))[0].requires_grad_(), p[1], 2), v))
case("unpool output_size huge", lambda f: f.max_unpool2d(*pooled((1, 1, 2, 2)), 2, stride=2**40, output_size=(2**40 + 2, 2)))
case("unpool output_size 2**31", lambda f: f.max_unpool2d(*pooled((1, 1, 2, 2)), 2, stride=2**31, output_size=(2**31, 1)))


# torch's CPU max-pool with every tap of a window in the padding (kernel 2, padding 1, dilation 3 on
# a 2-wide plane: taps at -1 and 2) answers -inf with an index outside the plane (6 in a 2x2
# plane), and its backward then adds the gradient outside the plane: into the next plane's
# position 2, or past the buffer for the last plane. fastconv must answer the forward as torch does
# (values and the same indices) but its backward must drop that gradient: an index outside the
# plane selects no input, so the true gradient of such a window is zero.
def _all_padding_window_grad(f):
    inp = x(2, 1, 2, 2, grad=True)
    out, idx = f.max_pool2d(inp, 2, stride=1, padding=1, dilation=3, return_indices=True)
    if f.max_pool2d is F.max_pool2d:  # torch's backward corrupts the heap here: not run
        return out.detach(), idx, None
    (g,) = torch.autograd.grad(out.sum(), inp)
    return out.detach(), idx, g


def _expect_zero_grad(fast, fast_error, ref, ref_error):
    if fast_error is not None:
        return f"fastconv raised {fast_error!r}"
    mismatch = describe_mismatch(fast[:2], ref[:2])
    if mismatch:
        return "forward: " + mismatch
    if not torch.equal(fast[2], torch.zeros_like(fast[2])):
        return f"gradient of an all-padding window should be zero, got {fast[2].tolist()}"
    return None


case("pool all-padding window forward",
     lambda f: f.max_pool2d(x(2, 1, 2, 2), 2, stride=1, padding=1, dilation=3, return_indices=True))
case("pool all-padding window backward", _all_padding_window_grad, expect=_expect_zero_grad,
     why="torch's CPU max_pool2d backward adds the gradient of an all-padding window outside "
         "the plane (into the next plane); fastconv's is zero")
case("unpool the indices of an all-padding window", lambda f: f.max_unpool2d(
    *F.max_pool2d(x(2, 1, 2, 2), 2, stride=1, padding=1, dilation=3, return_indices=True), 2, stride=1))


# ------------------------------------------------------- the ops underneath, called directly
# f.conv2d_op, f.pool_op, f.pool_backward_op, f.unpool_op: torch.ops.fastconv's ops, or aten's
# with the same schema. fastconv's backward ops without an aten counterpart must raise a
# RuntimeError or return a tensor of the size asked for, and never crash (torch is not called).

case("op conv2d stride 2**63-1", lambda f: f.conv2d_op(x(1, 2, 5, 5), x(3, 2, 3, 3), None, [2**63 - 1, 1], [0, 0], [1, 1], 1))
case("op conv2d padding 2**62", lambda f: f.conv2d_op(x(1, 2, 5, 5), x(3, 2, 3, 3), None, [1, 1], [2**62, 0], [1, 1], 1))
case("op conv2d padding 2**31 depthwise",
     lambda f: f.conv2d_op(x(1, 2, 5, 5), x(2, 1, 3, 3), None, [2**31, 1], [2**31, 0], [1, 1], 2))
case("op conv2d dilation 2**40", lambda f: f.conv2d_op(x(1, 2, 5, 5), x(3, 2, 3, 3), None, [1, 1], [0, 0], [2**40, 1], 1))
case("op conv2d groups 2**62", lambda f: f.conv2d_op(x(1, 2, 5, 5), x(3, 2, 3, 3), None, [1, 1], [0, 0], [1, 1], 2**62))
case("op conv2d groups -1", lambda f: f.conv2d_op(x(1, 2, 5, 5), x(3, 2, 3, 3), None, [1, 1], [0, 0], [1, 1], -1))
case("op conv2d zero kernel", lambda f: f.conv2d_op(x(1, 2, 5, 5), x(3, 2, 0, 3), None, [1, 1], [0, 0], [1, 1], 1))
case("op pool kernel 2**62 padding 2**61",
     lambda f: f.pool_op(x(1, 2, 5, 5), [2**62, 1], [1, 1], [2**61, 0], [1, 1], False))
case("op pool dilation 2**62+1", lambda f: f.pool_op(x(1, 1, 5, 8), [5, 1], [1, 1], [0, 0], [2**62 + 1, 1], False))
case("op pool channels_last kernel 2**32 padding 2**31",
     lambda f: f.pool_op(x(1, 8, 3, 3, cl=True), [2**32, 2**32], [1, 1], [2**31, 2**31], [1, 1], False))
case("op pool stride -1", lambda f: f.pool_op(x(1, 2, 5, 5), [2, 2], [-1, 1], [0, 0], [1, 1], True))


def _pool_backward(f, grad_shape=None, indices=None, kernel=(2, 2), stride=(2, 2), padding=(0, 0),
                   dilation=(1, 1), cl=False):
    inp = x(1, 2, 6, 6, cl=cl)
    out, idx = F.max_pool2d(inp, 2, return_indices=True)
    grad = x(*(grad_shape or out.shape))
    return f.pool_backward_op(grad, inp, list(kernel), list(stride), list(padding), list(dilation), False,
                              idx if indices is None else indices(idx))


case("op pool backward grad_output of the wrong size", lambda f: _pool_backward(f, grad_shape=(1, 2, 3, 4)))
case("op pool backward indices of the wrong size", lambda f: _pool_backward(f, indices=lambda i: i[..., :2]))
case("op pool backward int32 indices", lambda f: _pool_backward(f, indices=lambda i: i.int()))
case("op pool backward kernel 2**62", lambda f: _pool_backward(f, kernel=(2**62, 2)))
case("op pool backward padding 2**31", lambda f: _pool_backward(f, kernel=(2**32, 2), padding=(2**31, 0)))
case("op pool backward geometry of another pooling", lambda f: _pool_backward(f, kernel=(3, 3), stride=(3, 3)))
case("op unpool output_size 2**31", lambda f: f.unpool_op(*pooled(), [2**31, 2**31]))
case("op unpool output_size 2**62", lambda f: f.unpool_op(*pooled(), [2**62, 4]))
case("op unpool output_size -1", lambda f: f.unpool_op(*pooled(), [-1, 4]))
case("op unpool output_size 0", lambda f: f.unpool_op(*pooled(), [0, 0]))
case("op unpool output_size 0 empty batch", lambda f: f.unpool_op(*pooled((0, 2, 4, 4)), [0, 0]))
case("op unpool indices 2**40", lambda f: f.unpool_op(*_bad_indices(2**40), [4, 4]))


NO_TWIN = "fastconv's backward op has no aten op of the same schema: it must raise or answer, never crash"


def _fastconv_only(fn):
    return lambda f: None if f.is_torch else fn(f)


for _label, _size in {"2**31": [1, 2, 2**31, 2**31], "-1": [1, 2, -1, 5], "2**62 batch": [2**62, 2, 5, 5],
                      "zero channels": [1, 0, 5, 5]}.items():
    case(f"op conv2d_input_backward input_size {_label}", _fastconv_only(
        lambda f, size=_size: torch.ops.fastconv.conv2d_input_backward(
            x(1, 3, 3, 3), x(3, 2, 3, 3), size, [1, 1], [0, 0], [1, 1], 1)),
        expect=no_crash(_size), why=NO_TWIN)
for _label, _size in {"2**40": [3, 2, 2**40, 3], "0": [3, 2, 0, 3], "-1": [-1, 2, 3, 3],
                      "2**62 channels": [3, 2**62, 3, 3]}.items():
    case(f"op conv2d_weight_backward weight_size {_label}", _fastconv_only(
        lambda f, size=_size: torch.ops.fastconv.conv2d_weight_backward(
            x(1, 3, 3, 3), x(1, 2, 5, 5), size, [1, 1], [0, 0], [1, 1], 1)),
        expect=no_crash(_size), why=NO_TWIN)
case("op conv2d_input_backward grad_output of the wrong size", _fastconv_only(
    lambda f: torch.ops.fastconv.conv2d_input_backward(x(1, 3, 4, 4), x(3, 2, 3, 3), [1, 2, 5, 5], [1, 1], [0, 0], [1, 1], 1)),
    expect=no_crash([1, 2, 5, 5]), why=NO_TWIN)
for _label, _v in {"2**40": 2**40, "-1": -1, "16": 16, "-2**63": -(2**63)}.items():
    case(f"op max_unpool2d_backward index {_label}", _fastconv_only(
        lambda f, v=_v: torch.ops.fastconv.max_unpool2d_backward(x(2, 3, 4, 4), _bad_indices(v)[1])),
        expect=no_crash([2, 3, 2, 2]), why=NO_TWIN)
    case(f"op pool backward index {_label}", _fastconv_only(
        lambda f, v=_v: _pool_backward(f, indices=lambda i: _set_index(i, v))),
        expect=no_crash([1, 2, 6, 6]), why="torch's CPU backward writes outside the plane for such an "
        "index (not run); fastconv's must raise or answer, never write outside")


def _set_index(indices, value):
    indices = indices.clone()
    indices[0, 1, 1, 2] = value
    return indices


# ------------------------------------------------- huge and negative values in every argument


_CONVS = {
    "dense": lambda: (x(1, 2, 5, 5), x(3, 2, 3, 3), {}),
    "depthwise": lambda: (x(1, 2, 5, 5), x(2, 1, 3, 3), {"groups": 2}),
    "pointwise": lambda: (x(1, 2, 5, 5), x(3, 2, 1, 1), {}),
}
for _kind, _make in _CONVS.items():
    for _arg in ("stride", "padding", "dilation"):
        for _label, _v in BIG.items():
            for _form, _value in forms(_v).items():
                def _conv(f, make=_make, arg=_arg, value=_value):
                    a, w, kw = make()
                    return f.conv2d(a, w, **kw, **{arg: value})
                wraps = _arg == "dilation" and _kind != "pointwise" and 2**62 <= _v < 2**63
                case(f"conv {_kind} {_arg}={_form or _label}{' v=' + _label if _form else ''}", _conv,
                     expect=raises_runtime_error if wraps else None, why=WRAPS if wraps else "")
for _label, _v in BIG.items():
    case(f"conv groups={_label}", lambda f, v=_v: f.conv2d(x(1, 2, 5, 5), x(2, 1, 3, 3), groups=v))
    case(f"conv padding={_label} stride={_label}",
         lambda f, v=_v: f.conv2d(x(1, 2, 5, 5), x(3, 2, 3, 3), padding=v, stride=v))
    case(f"conv stride={_label} backward", lambda f, v=_v: grads(
        f.conv2d(a := x(1, 2, 5, 5, grad=True), w := x(3, 2, 3, 3, grad=True), stride=v), a, w))

def _whole_plane_window(f, kernel, stride):
    """(kernel, padding) for the cases whose windows each cover a whole 3x3 plane. At kernel
    2**31-1 and stride 1 torch's channels_last kernel steps to each window's first tap one padded
    position at a time (2**30 steps per window: over 10 s for 3x3 outputs), so torch is asked the
    same question with the smallest such window, kernel 5 and padding 2 (same output size, values,
    indices and gradients); fastconv gets the huge one."""
    if f.is_torch and kernel == 2**31 - 1 and stride == 1:
        return 5, 2
    return kernel, kernel // 2


_POOL_LAYOUTS = {"nchw": False, "channels_last": True}
for _layout, _cl in _POOL_LAYOUTS.items():
    for _arg in ("kernel_size", "stride", "padding", "dilation"):
        for _label, _v in BIG.items():
            for _form, _value in forms(_v).items():
                def _pool(f, cl=_cl, arg=_arg, value=_value):
                    kw = {"kernel_size": 3, arg: value}
                    return f.max_pool2d(x(1, 4, 5, 5, cl=cl), return_indices=True, **kw)
                case(f"pool {_layout} {_arg}={_form or _label}{' v=' + _label if _form else ''}", _pool)
    for _label, _v in BIG.items():
        if _v > 1:
            # The largest padding the check allows, with the same kernel: the window arithmetic
            # overflows unless it is checked.
            for _stride in (1, None):
                case(f"pool {_layout} kernel={_label} padding=kernel//2 stride={_stride}",
                     lambda f, cl=_cl, v=_v, s=_stride: f.max_pool2d(
                         x(1, 4, 3, 3, cl=cl), *_whole_plane_window(f, v, s), stride=s, return_indices=True))
            case(f"pool {_layout} kernel=(1,{_label}) padding=(0,kernel//2) dilation 2",
                 lambda f, cl=_cl, v=_v: f.max_pool2d(
                     x(1, 4, 3, 3, cl=cl), (1, v), stride=1, padding=(0, v // 2), dilation=(1, 2), return_indices=True))
            case(f"pool {_layout} kernel 2 dilation=({_label},1) ceil",
                 lambda f, cl=_cl, v=_v: f.max_pool2d(x(1, 4, 3, 3, cl=cl), 2, stride=1, dilation=(v, 1), ceil_mode=True))
            exact = 3 - _v * (_v - 1) if _v < 2**32 else None  # the true output height
            case(f"pool {_layout} kernel=({_label},1) dilation=({_label},1)",
                 lambda f, cl=_cl, v=_v: f.max_pool2d(x(1, 4, 3, 3, cl=cl), (v, 1), stride=1, dilation=(v, 1)),
                 expect=torch_or_exact_output_size(exact) if _v == 2**31 - 1 else None,
                 why="torch computes the output size from int32 kernel and dilation, and names the wrapped size")
            case(f"pool {_layout} kernel={_label} padding=kernel//2 backward",
                 lambda f, cl=_cl, v=_v: grads(f.max_pool2d(xx := x(1, 4, 3, 3, cl=cl, grad=True),
                                                            *_whole_plane_window(f, v, 1), stride=1), xx))

for _arg in ("kernel_size", "stride", "padding"):
    for _label, _v in BIG.items():
        for _form, _value in forms(_v).items():
            def _unpool(f, arg=_arg, value=_value):
                kw = {"kernel_size": 2, arg: value}
                return f.max_unpool2d(*pooled((1, 2, 4, 4)), **kw)
            case(f"unpool {_arg}={_form or _label}{' v=' + _label if _form else ''}", _unpool)
for _label, _v in BIG.items():
    case(f"unpool output_size=({_label},{_label})",
         lambda f, v=_v: f.max_unpool2d(*pooled((1, 2, 4, 4)), 2, output_size=(v, v)))
    case(f"unpool output_size=(4,{_label}) stride {_label}",
         lambda f, v=_v: f.max_unpool2d(*pooled((1, 2, 4, 4)), 2, stride=(2, v), output_size=(4, v)))


# fmt: on


# ------------------------------------------------------------------------------------- running


def _call(fn, lib):
    hostile_table._generator.manual_seed(0)
    torch.manual_seed(0)
    try:
        return fn(lib), None
    except Exception as error:  # noqa: BLE001  the exception is the result under test
        return None, error


FUNCTIONS = (
    "conv2d",
    "conv1d",
    "conv_transpose2d",
    "conv_transpose1d",
    "max_pool2d",
    "max_pool1d",
    "avg_pool2d",
    "avg_pool1d",
    "lp_pool2d",
    "lp_pool1d",
)


def _functions(lib, invalid):
    """The functional ops of `lib` (fastconv or torch.nn.functional) the cases call; the unpoolings
    record the invalid indices they are given (see hostile_harness._INVALID_INDEX)."""
    functions = {name: getattr(lib, name) for name in FUNCTIONS}
    functions["max_unpool2d"] = hostile_harness.with_invalid_indices(lib.max_unpool2d, invalid)
    functions["max_unpool1d"] = hostile_harness.with_invalid_indices(
        lib.max_unpool1d, invalid, dims=1
    )
    return functions


def run_case(name):
    """None if fastconv answers case `name` as torch does (or as its `expect` says), else what
    differs."""
    import fastconv

    invalid = set()
    ops, aten = torch.ops.fastconv, torch.ops.aten
    fast_lib = SimpleNamespace(
        **_functions(fastconv, invalid),
        conv2d_op=ops.conv2d,
        pool_op=ops.max_pool2d_with_indices,
        pool_backward_op=ops.max_pool2d_with_indices_backward,
        unpool_op=ops.max_unpool2d,
        is_torch=False,
    )
    torch_lib = SimpleNamespace(
        **_functions(F, invalid),
        conv2d_op=aten.conv2d,
        pool_op=aten.max_pool2d_with_indices,
        pool_backward_op=aten.max_pool2d_with_indices_backward,
        unpool_op=aten.max_unpool2d,
        is_torch=True,
    )
    c = CASES[name]
    return hostile_harness.compare_calls(
        lambda: _call(c.fn, fast_lib), lambda: _call(c.fn, torch_lib), c.expect, invalid
    )


def run_cases(names, **limits):
    """{name: None or a failure description} for each case, run in worker processes
    (hostile_harness.run_cases; limits: startup_timeout, case_timeout)."""
    return hostile_harness.run_cases(os.path.abspath(__file__), names, **limits)


if __name__ == "__main__":
    if len(sys.argv) > 1:  # python hostile_cases.py NAME...: run and print those cases (debugging)
        for name, verdict in run_cases(sys.argv[1:]).items():
            print(f"{name}: {verdict or 'ok'}")
    else:
        hostile_harness.serve(run_case)
