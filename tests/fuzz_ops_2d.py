"""The fuzz's configurations and calls of conv2d, max_pool2d and max_unpool2d (test_fuzz.py runs
them; the other ops' are in fuzz_ops.py). Each configuration is drawn from its random.Random alone;
each call is fn(lib) with lib.<op> torch's or fastconv's, its tensors drawn from a generator seeded
by the configuration's seed, so that both libraries see the same values."""

import torch
import torch.nn.functional as F

import fuzz_ops
from helpers import strided

# ------------------------------------------------------------------------------ configurations


def _rare(rng, p=0.06):
    return rng.random() < p


def _layout(rng):
    return rng.choice(["contiguous", "contiguous", "channels_last", "strided"])


def conv2d_config(rng):
    groups = rng.choice([1, 1, 1, 2, 3, "depthwise"])
    per_group = rng.randint(1, 3)
    channels = per_group * (groups if groups != "depthwise" else rng.randint(1, 4))
    if groups == "depthwise":
        groups = channels
        per_group = 1
    out_channels = groups * rng.randint(1, 3)
    kernel = [rng.randint(1, 4), rng.randint(1, 4)]
    cfg = {
        "batch": rng.choice([0, 1, 1, 2, 3]) if not _rare(rng, 0.1) else 0,
        "unbatched": _rare(rng, 0.08),
        "channels": channels,
        "size": [rng.randint(1, 11), rng.randint(1, 11)],
        "out_channels": out_channels,
        "weight_channels": per_group,
        "kernel": kernel,
        "bias": rng.random() < 0.6,
        "stride": [rng.randint(1, 3), rng.randint(1, 3)],
        "padding": [rng.randint(0, 3), rng.randint(0, 3)],
        "dilation": [rng.randint(1, 3), rng.randint(1, 3)],
        "groups": groups,
        "dtype": rng.choice(["float32", "float32", "float64"]),
        "input_layout": _layout(rng),
        "weight_layout": _layout(rng),
        "grad": rng.random() < 0.2,
        "values": rng.choice(["randn"] * 8 + ["nan", "inf"]),
    }
    if rng.random() < 0.2:  # many channels: the Winograd, deep packed and deep im2col paths
        channels, out_channels, kernel = fuzz_ops._wide(rng, 2)
        cfg.update(channels=channels, weight_channels=channels, out_channels=out_channels)
        cfg.update(groups=1, kernel=kernel, size=[rng.randint(3, 8), rng.randint(3, 8)])
        cfg.update(dilation=[1, 1], padding=[rng.randint(0, 1), rng.randint(0, 1)])
        if rng.random() < 0.7:
            cfg["stride"] = [1, 1]
        cfg.update(grad=rng.random() < 0.5, dtype="float32", batch=rng.randint(1, 2))
    if rng.random() < 0.3:  # an int stride, padding or dilation, or a padding string
        arg = rng.choice(["stride", "padding", "dilation"])
        cfg[arg] = cfg[arg][0]
    if rng.random() < 0.12:
        cfg["padding"] = rng.choice(["same", "valid", "same"])
        if cfg["padding"] == "same" and rng.random() < 0.8:
            cfg["stride"] = 1
    # Invalid parameters, one at a time (torch reports the first check that fails).
    if _rare(rng, 0.25):
        which = rng.choice(
            [
                "size",
                "kernel",
                "stride",
                "padding",
                "dilation",
                "groups",
                "channels",
                "out_channels",
                "bias",
                "dtype",
                "big",
                "rank",
            ]
        )
        if which == "size":
            cfg["size"][rng.randint(0, 1)] = rng.choice([0, 1])
        elif which == "kernel":
            cfg["kernel"][rng.randint(0, 1)] = rng.choice([0, 12, 20])
        elif which in ("stride", "padding", "dilation"):
            cfg[which] = [rng.choice([0, -1, -3]), 1] if rng.random() < 0.5 else rng.choice([0, -1])
        elif which == "groups":
            cfg["groups"] = rng.choice([0, -1, 4, 5])
        elif which == "channels":
            cfg["channels"] += rng.choice([-1, 1])
        elif which == "out_channels":
            cfg["out_channels"] += 1
        elif which == "bias":
            cfg["bias"] = rng.choice(["short", "float64", "2-D"])
        elif which == "dtype":
            cfg["weight_dtype"] = "float64" if cfg["dtype"] == "float32" else "float32"
        elif which == "big":
            cfg[rng.choice(["stride", "padding", "dilation"])] = rng.choice(
                [2**31, 2**40, 2**62, 2**63 - 1]
            )
        elif which == "rank":
            cfg["weight_rank"] = rng.choice([3, 5])
    return cfg


POOL_DTYPES = (
    ["float32"] * 6 + ["float64"] * 3 + ["float16", "bfloat16", "int32", "int64", "int8", "uint8"]
)


def max_pool2d_config(rng):
    kernel = [rng.randint(1, 4), rng.randint(1, 4)]
    dilation = [rng.randint(1, 3), rng.randint(1, 3)]
    cfg = {
        "batch": rng.choice([0, 1, 1, 2, 3]) if not _rare(rng, 0.1) else 0,
        "unbatched": _rare(rng, 0.1),
        "channels": rng.randint(1, 9),
        "size": [rng.randint(1, 12), rng.randint(1, 12)],
        "kernel": kernel,
        "stride": None if rng.random() < 0.3 else [rng.randint(1, 4), rng.randint(1, 4)],
        "padding": [rng.randint(0, kernel[0] // 2), rng.randint(0, kernel[1] // 2)],
        "dilation": dilation,
        "ceil_mode": rng.random() < 0.4,
        "dtype": rng.choice(POOL_DTYPES),
        "values": rng.choice(["randn", "randn", "ties", "nan", "inf"]),
        "layout": _layout(rng),
        "grad": rng.random() < 0.25,
    }
    if rng.random() < 0.3:
        arg = rng.choice(["kernel", "stride", "padding", "dilation"])
        if cfg[arg] is not None:
            cfg[arg] = cfg[arg][0] if arg != "padding" else min(cfg["padding"])
    if _rare(rng, 0.25):
        which = rng.choice(
            ["size", "channels", "kernel", "stride", "padding", "dilation", "big", "rank"]
        )
        if which == "size":
            cfg["size"][rng.randint(0, 1)] = 0
        elif which == "channels":
            cfg["channels"] = 0
        elif which == "rank":
            cfg["rank"] = rng.choice([2, 5])
        elif which == "big":
            cfg[rng.choice(["kernel", "stride", "dilation"])] = rng.choice(
                [2**31, 2**32 + 1, 2**62]
            )
        else:
            cfg[which] = [rng.choice([0, -1, 7, 20]), 1]
    return cfg


def max_unpool2d_config(rng):
    kernel = [rng.randint(1, 4), rng.randint(1, 4)]
    # Mostly strides up to the kernel: with a larger one, the indices of the pooled plane lie
    # outside the plane unpooling rebuilds, and the call raises.
    stride = [rng.randint(1, k if rng.random() < 0.85 else 4) for k in kernel]
    padding = [rng.randint(0, kernel[0] // 2), rng.randint(0, kernel[1] // 2)]
    cfg = {
        "batch": rng.choice([0, 1, 1, 2, 3]),
        "unbatched": _rare(rng, 0.1),
        "channels": rng.randint(1, 6),
        "size": [rng.randint(kernel[0], 12), rng.randint(kernel[1], 12)],
        "kernel": kernel,
        "stride": stride,
        "padding": padding,
        "dtype": rng.choice(["float32", "float32", "float64", "float16", "int64"]),
        "input_layout": _layout(rng),
        "indices_layout": _layout(rng),
        "stride_arg": rng.choice(["same", "same", "none"]) if stride == kernel else "same",
        "output_size": None,
        "grad": rng.random() < 0.25,
    }
    if rng.random() < 0.3:  # output_size: the input size or another within a stride of it
        cfg["output_size"] = [rng.randint(-1, 1), rng.randint(-1, 1)]
        cfg["output_size_form"] = rng.choice(["2", "4"])
    if _rare(rng, 0.25):
        which = rng.choice(["index", "index", "output_size", "int32", "shape", "channels"])
        if which == "index":
            cfg["bad_index"] = rng.choice([-1, "plane", 2**31, -(2**63)])
        elif which == "output_size":
            cfg["output_size"] = [rng.choice([-3, 3, 9]), 0]
            cfg["output_size_form"] = "2"
        else:
            cfg["invalid"] = which
    return cfg


# ------------------------------------------------------------------------------------ tensors


def _dtype(name):
    return getattr(torch, name)


def _arrange(t, layout):
    if layout == "channels_last" and t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        return strided(t)
    return t.contiguous()


def _values(g, shape, dtype, kind="randn"):
    if kind == "ties" or not (dtype.is_floating_point):
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


def conv2d_call(cfg, seed):
    """fn(lib) -> the call's result (and gradients where cfg asks)."""

    def fn(lib):
        g = torch.Generator().manual_seed(seed)
        dtype = _dtype(cfg["dtype"])
        shape = [cfg["batch"], cfg["channels"], *cfg["size"]]
        inp = _values(g, shape, dtype, cfg.get("values", "randn"))
        if cfg["unbatched"]:
            inp = inp[0] if cfg["batch"] else inp.reshape(shape[1:])  # an unbatched (C, H, W)
        wshape = [cfg["out_channels"], cfg["weight_channels"], *cfg["kernel"]]
        if cfg.get("weight_rank") == 3:
            wshape = wshape[:3]
        elif cfg.get("weight_rank") == 5:
            wshape = wshape + [1]
        weight = _values(g, wshape, _dtype(cfg.get("weight_dtype", cfg["dtype"])))
        bias = None
        if cfg["bias"]:
            bshape = {"short": [cfg["out_channels"] - 1], "2-D": [cfg["out_channels"], 1]}.get(
                cfg["bias"], [cfg["out_channels"]]
            )
            bias = _values(g, bshape, torch.float64 if cfg["bias"] == "float64" else dtype)
        inp = _arrange(inp, cfg["input_layout"])
        weight = _arrange(weight, cfg["weight_layout"])
        grad = cfg["grad"]
        for t in (inp, weight, bias):
            if grad and t is not None and t.dtype.is_floating_point:
                t.requires_grad_()
        out = lib.conv2d(
            inp, weight, bias, cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"]
        )
        if not grad:
            return out
        leaves = [t for t in (inp, weight, bias) if t is not None and t.requires_grad]
        upstream = _values(g, list(out.shape), out.dtype)
        return (out, torch.autograd.grad(out, leaves, upstream, allow_unused=True))

    return fn


def max_pool2d_call(cfg, seed):
    def fn(lib):
        g = torch.Generator().manual_seed(seed)
        dtype = _dtype(cfg["dtype"])
        shape = [cfg["batch"], cfg["channels"], *cfg["size"]]
        if cfg.get("rank") == 2:
            shape = cfg["size"]
        elif cfg.get("rank") == 5:
            shape = [1] + shape
        elif cfg["unbatched"]:
            shape = shape[1:]
        inp = _arrange(_values(g, shape, dtype, cfg["values"]), cfg["layout"])
        grad = cfg["grad"] and dtype.is_floating_point
        if grad:
            inp.requires_grad_()
        out = lib.max_pool2d(
            inp,
            cfg["kernel"],
            cfg["stride"],
            cfg["padding"],
            cfg["dilation"],
            cfg["ceil_mode"],
            return_indices=True,
        )
        if not grad:
            return out
        upstream = _values(g, list(out[0].shape), out[0].dtype)
        plane = inp.shape[-2] * inp.shape[-1]
        if lib.max_pool2d is F.max_pool2d and ((out[1] < 0) | (out[1] >= plane)).any():
            # A window with every tap in the padding: torch names an index outside the plane and
            # its backward adds the gradient there, corrupting the heap. The reference gradient
            # is the true one instead: such a window selects no input.
            return out + (_scatter_gradient(inp, out[1], upstream),)
        return out + torch.autograd.grad(out[0], inp, upstream)

    return fn


def _scatter_gradient(inp, indices, upstream):
    """max_pool2d's gradient: each upstream value added at its index in its plane; indices outside
    the plane select nothing."""
    plane = inp.shape[-2] * inp.shape[-1]
    flat_indices = indices.reshape(-1, indices.shape[-2] * indices.shape[-1])
    flat_upstream = upstream.reshape(flat_indices.shape).to(torch.float64)
    valid = (flat_indices >= 0) & (flat_indices < plane)
    grad = torch.zeros(flat_indices.shape[0], plane + 1, dtype=torch.float64)
    grad.scatter_add_(1, torch.where(valid, flat_indices, plane), flat_upstream)
    return grad[:, :plane].reshape(inp.shape).to(inp.dtype)


def _pooled_for_unpool(cfg, g):
    shape = [cfg["batch"], cfg["channels"], *cfg["size"]]
    if cfg["unbatched"]:
        shape = shape[1:]
    source = _values(g, shape, torch.float64, "ties" if cfg["dtype"] == "int64" else "randn")
    return F.max_pool2d(source, cfg["kernel"], cfg["stride"], cfg["padding"], return_indices=True)


def max_unpool2d_call(cfg, seed):
    def fn(lib):
        g = torch.Generator().manual_seed(seed)
        values, indices = _pooled_for_unpool(cfg, g)
        values = values.to(_dtype(cfg["dtype"]))
        invalid = cfg.get("invalid")
        if invalid == "int32":
            indices = indices.int()
        elif invalid == "shape":
            indices = indices[..., :-1] if indices.shape[-1] > 1 else indices[..., :0, :]
        elif invalid == "channels":
            values, indices = values[..., :0, :, :], indices[..., :0, :, :]
        bad = cfg.get("bad_index")
        if bad is not None and indices.numel():
            plane = [
                (s - 1) * st + k - 2 * p
                for s, st, k, p in zip(
                    values.shape[-2:], cfg["stride"], cfg["kernel"], cfg["padding"]
                )
            ]
            position = torch.randint(0, indices.numel(), (1,), generator=g).item()
            indices.view(-1)[position] = plane[0] * plane[1] if bad == "plane" else bad
        values = _arrange(values, cfg["input_layout"])
        indices = _arrange(indices, cfg["indices_layout"])
        output_size = cfg["output_size"]
        if output_size is not None:
            default = [
                (s - 1) * st + k - 2 * p
                for s, st, k, p in zip(
                    values.shape[-2:], cfg["stride"], cfg["kernel"], cfg["padding"]
                )
            ]
            output_size = [d + o for d, o in zip(default, output_size)]
            if cfg["output_size_form"] == "4":
                output_size = list(values.shape[:-2]) + output_size
        grad = cfg["grad"] and values.dtype.is_floating_point
        if grad:
            values.requires_grad_()
        stride = None if cfg["stride_arg"] == "none" else cfg["stride"]
        out = lib.max_unpool2d(values, indices, cfg["kernel"], stride, cfg["padding"], output_size)
        if not grad:
            return out
        upstream = _values(g, list(out.shape), out.dtype)
        return (out,) + torch.autograd.grad(out, values, upstream)

    return fn
