"""Side-by-side GPU timing: fastconv vs cuDNN (benchmark mode) vs PyTorch's own im2col path
(cuDNN disabled) on ResNet-18 layers, forward and forward+backward, and max-pool with indices.

    python bench/cuda_resnet18_layers.py [--dtypes float32,float16] [--reps 25]

CUDA events around each call, warm-up first, variants interleaved call by call, medians.
TF32 is off for all (cuDNN would use it for fp32 by default on Ampere and later).
"""
import argparse
import statistics

import torch
import torch.nn.functional as F

import fastconv

torch.backends.cudnn.benchmark = True
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False

N = 32
CONV_LAYERS = [  # name, input (C, H, W), out channels, kernel, stride, padding
    ("64x56x56 3x3 s1 ->64", (64, 56, 56), 64, 3, 1, 1),
    ("128x28x28 3x3 s1 ->128", (128, 28, 28), 128, 3, 1, 1),
    ("256x14x14 3x3 s1 ->256", (256, 14, 14), 256, 3, 1, 1),
    ("512x7x7 3x3 s1 ->512", (512, 7, 7), 512, 3, 1, 1),
    ("64x56x56 3x3 s2 ->128", (64, 56, 56), 128, 3, 2, 1),
    ("64x56x56 1x1 s2 ->128 (proj)", (64, 56, 56), 128, 1, 2, 0),
]


def timed(variants, reps, warmup=3):
    """variants: name -> (setup, fn). Returns name -> median ms."""
    for _ in range(warmup):
        for setup, fn in variants.values():
            setup()
            fn()
    torch.cuda.synchronize()
    events = {name: [] for name in variants}
    for _ in range(reps):
        for name, (setup, fn) in variants.items():
            setup()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            events[name].append((start, end))
    torch.cuda.synchronize()
    return {name: statistics.median(s.elapsed_time(e) for s, e in pairs) for name, pairs in events.items()}


def conv_variants(x, w, stride, padding, backward):
    gy = None

    def run(conv, **flags):
        def fn():
            nonlocal gy
            with torch.backends.cudnn.flags(**flags):
                y = conv(x, w, None, stride, padding)
                if backward:
                    if gy is None:
                        gy = torch.randn_like(y)
                    torch.autograd.backward(y, gy)
        return fn

    def clear():
        x.grad = None
        w.grad = None

    return {
        "fastconv": (clear, run(fastconv.conv2d, enabled=True)),
        "cudnn": (clear, run(F.conv2d, enabled=True, benchmark=True, allow_tf32=False)),
        "torch-im2col": (clear, run(F.conv2d, enabled=False)),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtypes", default="float32,float16")
    parser.add_argument("--reps", type=int, default=25)
    args = parser.parse_args()
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, N={N}, reps={args.reps}")
    header = f"{'layer':32} {'dtype':8} {'pass':8} {'fastconv':>9} {'cudnn':>9} {'im2col':>9} {'fc/cudnn':>9} {'fc/im2col':>9}"
    print(header)
    print("-" * len(header))
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        for name, (c, h, w_), k, ks, stride, padding in CONV_LAYERS:
            x = torch.randn(N, c, h, w_, device="cuda", dtype=dtype, requires_grad=True)
            w = (torch.randn(k, c, ks, ks, device="cuda", dtype=dtype) / (c * ks * ks) ** 0.5).requires_grad_()
            for backward in (False, True):
                t = timed(conv_variants(x, w, stride, padding, backward), args.reps)
                print(f"{name:32} {dtype_name:8} {'fwd+bwd' if backward else 'fwd':8} "
                      f"{t['fastconv']:9.3f} {t['cudnn']:9.3f} {t['torch-im2col']:9.3f} "
                      f"{t['fastconv'] / t['cudnn']:9.2f} {t['fastconv'] / t['torch-im2col']:9.2f}")
        for layout in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(N, 64, 112, 112, device="cuda", dtype=dtype).contiguous(memory_format=layout)
            x.requires_grad_()
            for backward in (False, True):
                def pool(fn):
                    def run():
                        y, _ = fn(x, 3, 2, 1, return_indices=True)
                        if backward:
                            y.backward(torch.ones_like(y))
                    return run
                clear = lambda: setattr(x, "grad", None)  # noqa: E731
                t = timed({"fastconv": (clear, pool(fastconv.max_pool2d)), "torch": (clear, pool(F.max_pool2d))}, args.reps)
                label = "maxpool 3x3/2 p1 64x112x112" + (" CL" if layout == torch.channels_last else "")
                print(f"{label:32} {dtype_name:8} {'fwd+bwd' if backward else 'fwd':8} "
                      f"{t['fastconv']:9.3f} {'-':>9} {t['torch']:9.3f} {'-':>9} {t['fastconv'] / t['torch']:9.2f}"
                      "   (im2col column = torch's native max-pool)")


if __name__ == "__main__":
    main()
