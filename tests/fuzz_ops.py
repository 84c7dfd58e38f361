"""The fuzz's configurations and calls of conv1d, conv_transpose2d, conv_transpose1d, avg_pool2d,
avg_pool1d, lp_pool2d, lp_pool1d, max_pool1d and max_unpool1d (test_fuzz.py runs them; conv2d,
max_pool2d and max_unpool2d are there). Each configuration is drawn from its random.Random alone;
each call is fn(lib) with lib.<op> torch's or fastconv's, its tensors drawn from a generator seeded
by the configuration's seed, so that both libraries see the same values."""

import torch
import torch.nn.functional as F

from helpers import strided


def _rare(rng, p=0.06):
    return rng.random() < p


def _layout(rng):
    return rng.choice(["contiguous", "contiguous", "channels_last", "strided"])


def arrange(t, layout):
    if layout == "channels_last" and t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "strided" and t.dim() > 0:
        return strided(t)
    return t.contiguous()


def values(g, shape, dtype, kind="randn"):
    """Random values of `shape`: normal, small integers with ties ('ties', and integer dtypes), or
    normal with NaN or infinities among them ('nan', 'inf')."""
    if kind == "ties" or not dtype.is_floating_point:
        high = 4 if kind == "ties" else 100
        low = 0 if dtype == torch.uint8 else -high
        return torch.randint(low, high, shape, generator=g).to(dtype)
    t = torch.randn(shape, generator=g, dtype=torch.float64)
    if kind in ("nan", "inf") and t.numel():
        mask = torch.rand(shape, generator=g) < 0.15
        t[mask] = float("nan") if kind == "nan" else float("-inf")
        if kind == "inf":
            t[torch.rand(shape, generator=g) < 0.05] = float("inf")
    return t.to(dtype)


# ------------------------------------------------------------------------------ convolutions


def _conv_invalid(rng, cfg, dims):
    """One invalid parameter at a time (torch reports the first check that fails)."""
    which = rng.choice(
        ["size", "kernel", "stride", "padding", "dilation", "groups", "channels", "bias", "dtype"]
        + ["big", "rank", "output_padding"]
    )
    if which == "size":
        cfg["size"][rng.randrange(dims)] = rng.choice([0, 1])
    elif which == "kernel":
        cfg["kernel"][rng.randrange(dims)] = rng.choice([0, 12, 20])
    elif which in ("stride", "padding", "dilation"):
        cfg[which] = [rng.choice([0, -1, -3])] + [1] * (dims - 1)
    elif which == "groups":
        cfg["groups"] = rng.choice([0, -1, 4, 5])
    elif which == "channels":
        cfg["channels"] += rng.choice([-1, 1])
    elif which == "bias":
        cfg["bias"] = rng.choice(["short", "float64", "2-D"])
    elif which == "dtype":
        cfg["weight_dtype"] = "float64" if cfg["dtype"] == "float32" else "float32"
    elif which == "big":
        cfg[rng.choice(["stride", "padding", "dilation"])] = [rng.choice([2**31, 2**40])] * dims
    elif which == "rank":
        cfg["weight_rank"] = rng.choice([dims + 1, dims + 3])
    elif which == "output_padding" and "output_padding" in cfg:
        stride, dilation = (
            v if isinstance(v, list) else [v] * dims for v in (cfg["stride"], cfg["dilation"])
        )
        cfg["output_padding"] = [max(s, d) for s, d in zip(stride, dilation)]


def _wide(rng, dims):
    """Channel counts and kernels that reach the CPU conv2d paths of many channels: Winograd
    (3x3, stride 1, 48 or more channels on both sides), the packed GEMM past the direct kernel's
    1,152 weight columns, and im2col + BLAS past 2,048 of them with few output pixels."""
    kind = rng.choice(["winograd", "winograd", "deep", "deeper"] if dims == 2 else ["deep"])
    if kind == "winograd":
        return rng.randint(48, 64), rng.randint(48, 64), [3, 3]
    if kind == "deep":
        return rng.randint(130, 160), rng.randint(2, 8), [3] * dims if dims == 2 else [9]
    return rng.randint(230, 240), rng.randint(2, 4), [3, 3] if dims == 2 else [9]


def conv_config(rng, dims, transposed):
    """conv1d (dims 1), conv_transpose2d / conv_transpose1d (transposed)."""
    groups = rng.choice([1, 1, 1, 2, 3, "depthwise"])
    per_group = rng.randint(1, 3)
    channels = per_group * (groups if groups != "depthwise" else rng.randint(1, 4))
    if groups == "depthwise":
        groups, per_group = channels, 1
    out_per_group = rng.randint(1, 3)
    kernel = [rng.randint(1, 4) for _ in range(dims)]
    size = [rng.randint(1, 9 if dims == 2 else 16) for _ in range(dims)]
    if rng.random() < 0.2:  # many channels
        channels, out_per_group, kernel = _wide(rng, dims)
        groups, per_group = 1, channels
        size = [rng.randint(3, 8) for _ in range(dims)]
    cfg = {
        "batch": rng.choice([0, 1, 1, 2, 3]) if not _rare(rng, 0.1) else 0,
        "unbatched": _rare(rng, 0.08),
        "channels": channels,
        "size": size,
        "out_per_group": out_per_group,
        "per_group": per_group,
        "kernel": kernel,
        "bias": rng.random() < 0.6,
        "stride": [rng.randint(1, 3) for _ in range(dims)],
        "padding": [rng.randint(0, 3) for _ in range(dims)],
        "dilation": [rng.randint(1, 3) for _ in range(dims)],
        "groups": groups,
        "dtype": rng.choice(["float32", "float32", "float32", "float64"]),
        "values": rng.choice(["randn"] * 8 + ["nan", "inf"]),
        "input_layout": _layout(rng),
        "weight_layout": _layout(rng),
        "grad": rng.random() < 0.25,
    }
    if channels > 40:  # the paths of many channels: stride 1 and no dilation reach most of them
        cfg["stride"] = [1] * dims if rng.random() < 0.7 else cfg["stride"]
        cfg["dilation"] = [1] * dims
        cfg["padding"] = [rng.randint(0, 1) for _ in range(dims)]
        cfg.update(grad=rng.random() < 0.5, dtype="float32", batch=rng.randint(1, 2))
    if transposed:
        cfg["output_padding"] = [
            rng.randint(0, max(s, d) - 1) for s, d in zip(cfg["stride"], cfg["dilation"])
        ]
    elif rng.random() < 0.1:
        cfg["padding"] = rng.choice(["same", "valid"])
        if cfg["padding"] == "same" and rng.random() < 0.8:
            cfg["stride"] = [1] * dims
    if rng.random() < 0.3:  # an int argument
        arg = rng.choice(["stride", "padding", "dilation"])
        if isinstance(cfg[arg], list):
            cfg[arg] = cfg[arg][0]
    if _rare(rng, 0.2):
        _conv_invalid(rng, cfg, dims)
    return cfg


def conv_call(op, cfg, seed):
    transposed = op.startswith("conv_transpose")

    def fn(lib):
        g = torch.Generator().manual_seed(seed)
        dtype = getattr(torch, cfg["dtype"])
        shape = [cfg["batch"], cfg["channels"], *cfg["size"]]
        inp = values(g, shape, dtype, cfg["values"])
        if cfg["unbatched"]:
            inp = inp[0] if cfg["batch"] else inp.reshape(shape[1:])
        groups = cfg["groups"] if isinstance(cfg["groups"], int) and cfg["groups"] > 0 else 1
        out_channels = cfg["out_per_group"] * groups
        if transposed:  # (in, out / groups, k...)
            wshape = [groups * cfg["per_group"], cfg["out_per_group"], *cfg["kernel"]]
            bias_channels = out_channels
        else:
            wshape = [out_channels, cfg["per_group"], *cfg["kernel"]]
            bias_channels = out_channels
        rank = cfg.get("weight_rank")
        if rank is not None:
            wshape = (wshape + [1] * rank)[:rank]
        weight = values(g, wshape, getattr(torch, cfg.get("weight_dtype", cfg["dtype"])))
        bias = None
        if cfg["bias"]:
            bshape = {"short": [bias_channels - 1], "2-D": [bias_channels, 1]}.get(
                cfg["bias"], [bias_channels]
            )
            bias = values(g, bshape, torch.float64 if cfg["bias"] == "float64" else dtype)
        inp = arrange(inp, cfg["input_layout"])
        weight = arrange(weight, cfg["weight_layout"])
        for t in (inp, weight, bias):
            if cfg["grad"] and t is not None and t.dtype.is_floating_point:
                t.requires_grad_()
        kwargs = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"])
        if transposed:
            kwargs["output_padding"] = cfg["output_padding"]
        out = getattr(lib, op)(inp, weight, bias, groups=cfg["groups"], **kwargs)
        if not cfg["grad"]:
            return out
        leaves = [t for t in (inp, weight, bias) if t is not None and t.requires_grad]
        upstream = values(g, list(out.shape), out.dtype)
        return (out, torch.autograd.grad(out, leaves, upstream, allow_unused=True))

    return fn


# ---------------------------------------------------------------------------------- pooling

POOL_DTYPES = ["float32"] * 6 + ["float64"] * 3 + ["float16", "bfloat16", "int64"]


def pool_config(rng, op):
    dims = 2 if op.endswith("2d") else 1
    kernel = [rng.randint(1, 4) for _ in range(dims)]
    cfg = {
        "batch": rng.choice([0, 1, 1, 2, 3]) if not _rare(rng, 0.1) else 0,
        "unbatched": _rare(rng, 0.1),
        "channels": rng.randint(1, 9),
        "size": [rng.randint(1, 12 if dims == 2 else 20) for _ in range(dims)],
        "kernel": kernel,
        "stride": None if rng.random() < 0.3 else [rng.randint(1, 4) for _ in range(dims)],
        "padding": [rng.randint(0, k // 2) for k in kernel],
        "ceil_mode": rng.random() < 0.4,
        "dtype": rng.choice(POOL_DTYPES),
        "values": rng.choice(["randn", "randn", "ties", "nan", "inf"]),
        "layout": _layout(rng),
        "grad": rng.random() < 0.25,
    }
    if op.startswith("avg_pool"):
        cfg["count_include_pad"] = rng.random() < 0.6
        if dims == 2 and rng.random() < 0.2:
            cfg["divisor_override"] = rng.randint(1, 5)
    elif op.startswith("lp_pool"):
        cfg["norm_type"] = rng.choice([1, 2, 2, 3, 1.5, float("inf")])
        cfg["padding"] = None
        cfg["dtype"] = rng.choice(["float32", "float32", "float64"])
        cfg["values"] = rng.choice(["randn", "positive", "positive", "ties"])
    elif op == "max_pool1d":
        cfg["dilation"] = [rng.randint(1, 3)]
        cfg["return_indices"] = rng.random() < 0.5
        if cfg["grad"]:  # no window all in the padding (torch's backward writes outside then)
            cfg["dilation"] = [1]
        if not cfg["return_indices"] and cfg["dtype"] in ("int64", "float16", "bfloat16"):
            cfg["dtype"] = "float32"  # torch's 1-d kernel: float32 and float64 only
    if rng.random() < 0.3:  # an int argument
        arg = rng.choice(["kernel", "stride", "padding"])
        if isinstance(cfg[arg], list):
            cfg[arg] = cfg[arg][0] if arg != "padding" else min(cfg["padding"])
    if _rare(rng, 0.2):
        which = rng.choice(["size", "channels", "kernel", "stride", "padding", "rank", "big"])
        if which == "size":
            cfg["size"][rng.randrange(dims)] = 0
        elif which == "channels":
            cfg["channels"] = 0
        elif which == "rank":
            cfg["rank"] = rng.choice([dims, dims + 3])
        elif which == "big":
            cfg[rng.choice(["kernel", "stride"])] = rng.choice([2**31 - 1, 2**31, 2**40])
        elif which == "padding" and cfg["padding"] is None:
            cfg["norm_type"] = rng.choice([0, -1])
        else:
            cfg[which] = [rng.choice([0, -1, 7, 25])] + [1] * (dims - 1)
    return cfg


def pool_call(op, cfg, seed):
    def fn(lib):
        g = torch.Generator().manual_seed(seed)
        dtype = getattr(torch, cfg["dtype"])
        shape = [cfg["batch"], cfg["channels"], *cfg["size"]]
        if cfg.get("rank") is not None:
            shape = (shape + [2] * 4)[: cfg["rank"]]
        elif cfg["unbatched"]:
            shape = shape[1:]
        kind = cfg["values"]
        inp = values(g, shape, dtype, "randn" if kind == "positive" else kind)
        if kind == "positive":
            inp = inp.abs()
        inp = arrange(inp, cfg["layout"])
        grad = cfg["grad"] and dtype.is_floating_point
        if grad:
            inp.requires_grad_()
        f = getattr(lib, op)
        kernel, stride, padding = cfg["kernel"], cfg["stride"], cfg["padding"]
        if op.startswith("avg_pool"):
            extra = (
                {"divisor_override": cfg["divisor_override"]} if "divisor_override" in cfg else {}
            )
            out = f(
                inp, kernel, stride, padding, cfg["ceil_mode"], cfg["count_include_pad"], **extra
            )
        elif op.startswith("lp_pool"):
            kernel = kernel[0] if op == "lp_pool1d" and isinstance(kernel, list) else kernel
            out = f(inp, cfg["norm_type"], kernel, stride, cfg["ceil_mode"])
        else:  # max_pool1d
            out = f(inp, kernel, stride, padding, cfg["dilation"], cfg["ceil_mode"],
                    return_indices=cfg["return_indices"])  # fmt: skip
        if not grad:
            return out
        values_out = out[0] if isinstance(out, tuple) else out
        upstream = values(g, list(values_out.shape), values_out.dtype)
        return (out,) + torch.autograd.grad(values_out, inp, upstream)

    return fn


def max_unpool1d_config(rng):
    kernel = rng.randint(1, 4)
    stride = rng.randint(1, kernel if rng.random() < 0.85 else 4)
    cfg = {
        "batch": rng.choice([0, 1, 1, 2, 3]),
        "unbatched": _rare(rng, 0.1),
        "channels": rng.randint(1, 6),
        "size": rng.randint(kernel, 20),
        "kernel": kernel,
        "stride": stride,
        "padding": rng.randint(0, kernel // 2),
        "dtype": rng.choice(["float32", "float32", "float64", "float16", "int64"]),
        "input_layout": rng.choice(["contiguous", "contiguous", "strided"]),
        "indices_layout": rng.choice(["contiguous", "contiguous", "strided"]),
        "output_size": None,
        "grad": rng.random() < 0.25,
    }
    if rng.random() < 0.3:
        cfg["output_size"] = rng.randint(-1, 1)
        cfg["output_size_form"] = rng.choice(["1", "3"])
    if _rare(rng, 0.25):
        which = rng.choice(["index", "index", "output_size", "int32", "shape"])
        if which == "index":
            cfg["bad_index"] = rng.choice([-1, "plane", 2**31, -(2**63)])
        elif which == "output_size":
            cfg["output_size"], cfg["output_size_form"] = rng.choice([-3, 3, 9]), "1"
        else:
            cfg["invalid"] = which
    return cfg


def max_unpool1d_call(cfg, seed):
    def fn(lib):
        g = torch.Generator().manual_seed(seed)
        shape = [cfg["batch"], cfg["channels"], cfg["size"]]
        if cfg["unbatched"]:
            shape = shape[1:]
        kind = "ties" if cfg["dtype"] == "int64" else "randn"
        source = values(g, shape, torch.float64, kind)
        k, s, p = cfg["kernel"], cfg["stride"], cfg["padding"]
        vals, indices = F.max_pool1d(source, k, s, p, return_indices=True)
        vals = vals.to(getattr(torch, cfg["dtype"]))
        if cfg.get("invalid") == "int32":
            indices = indices.int()
        elif cfg.get("invalid") == "shape":
            indices = indices[..., :-1]
        length = (vals.shape[-1] - 1) * s + k - 2 * p
        bad = cfg.get("bad_index")
        if bad is not None and indices.numel():
            position = torch.randint(0, indices.numel(), (1,), generator=g).item()
            indices.view(-1)[position] = length if bad == "plane" else bad
        vals = arrange(vals, cfg["input_layout"])
        indices = arrange(indices, cfg["indices_layout"])
        output_size = None
        if cfg["output_size"] is not None:
            output_size = [length + cfg["output_size"]]
            if cfg["output_size_form"] == "3":
                output_size = list(vals.shape[:-1]) + output_size
        grad = cfg["grad"] and vals.dtype.is_floating_point
        if grad:
            vals.requires_grad_()
        out = lib.max_unpool1d(vals, indices, k, s, p, output_size)
        if not grad:
            return out
        upstream = values(g, list(out.shape), out.dtype)
        return (out,) + torch.autograd.grad(out, vals, upstream)

    return fn


CONFIGS = {
    "conv1d": lambda rng: conv_config(rng, 1, False),
    "conv_transpose2d": lambda rng: conv_config(rng, 2, True),
    "conv_transpose1d": lambda rng: conv_config(rng, 1, True),
    "avg_pool2d": lambda rng: pool_config(rng, "avg_pool2d"),
    "avg_pool1d": lambda rng: pool_config(rng, "avg_pool1d"),
    "lp_pool2d": lambda rng: pool_config(rng, "lp_pool2d"),
    "lp_pool1d": lambda rng: pool_config(rng, "lp_pool1d"),
    "max_pool1d": lambda rng: pool_config(rng, "max_pool1d"),
    "max_unpool1d": max_unpool1d_config,
}
CALLS = {
    "conv1d": lambda cfg, seed: conv_call("conv1d", cfg, seed),
    "conv_transpose2d": lambda cfg, seed: conv_call("conv_transpose2d", cfg, seed),
    "conv_transpose1d": lambda cfg, seed: conv_call("conv_transpose1d", cfg, seed),
    **{
        op: (lambda op: lambda cfg, seed: pool_call(op, cfg, seed))(op)
        for op in ("avg_pool2d", "avg_pool1d", "lp_pool2d", "lp_pool1d", "max_pool1d")
    },
    "max_unpool1d": max_unpool1d_call,
}
