"""fastconv's benchmark: its conv2d and max_pool2d against PyTorch's own backends on the layers of
classic networks, after checking that their results agree.

    python bench/run.py                               # every CPU suite (about 10 min on 2 cores)
    python bench/run.py --device cpu --quick --out DIR  # a one-minute subset (CI's smoke step)
    python bench/run.py --device cuda --suite resnet50,maxpool --pass fwd

Exits non-zero when fastconv disagrees with torch on any case (or fails to run one).
"""

import argparse
import os
import sys
import textwrap
import time
from pathlib import Path
from typing import List, Optional

if __package__ in (None, ""):  # run as a script: make `bench` importable as a package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench import report  # noqa: E402
from bench.machine import machine_info, measure_peaks  # noqa: E402
from bench.suites import SUITES, Case, select  # noqa: E402
from bench.timing import Timer, interleaved  # noqa: E402
from bench.workloads import (  # noqa: E402
    FASTCONV_IMPLS, PASSES, REFERENCE_DESCRIPTIONS, REFERENCES, CorrectnessError, counterpart, make_workload,
)

try:
    from tqdm import tqdm
except ImportError:  # optional: a plain line per case instead of a progress bar
    tqdm = None

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}
# Per device: rounds per case, warm-up calls, and the shortest sample (tiny layers get several
# calls per sample so that the clock's resolution and Python's overhead stay small).
DEFAULTS = {"cpu": dict(repeats=5, warmup=1, min_sample_s=0.02),
            "cuda": dict(repeats=20, warmup=3, min_sample_s=0.005)}
QUICK_REPEATS = 3


def all_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def suites_help() -> str:
    lines = ["suites (distinct layers; training batch on cpu / cuda; what --quick keeps at batch 1):"]
    for suite in SUITES.values():
        batches = f"N={suite.train_batch['cpu']}/{suite.train_batch['cuda']}"
        lines.append(f"  {suite.name:<16} {suite.op:<10} {suite.distinct_layers:>2} layers, {batches:<9} "
                     f"{suite.source}; quick: {', '.join(suite.quick)}")
    return "\n".join(lines)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    default_run = (
        "The default run (no arguments) is the whole CPU benchmark: every suite below, each distinct "
        "layer at batch 1 (inference) and at the suite's training batch, forward, backward and both, "
        "5 interleaved rounds per case; the sizes are chosen so that it takes about 10 minutes on the "
        "2 cores of the build machine (up to twice that while other jobs share them). Each case is "
        "first checked against torch (values within rounding, identical pooling switches) and only "
        "then timed against torch's default backend (oneDNN on CPU, cuDNN with benchmark mode on "
        "CUDA) and torch's own im2col path (oneDNN and NNPACK / cuDNN off); pooling on NCHW and on "
        "channels_last input, each against torch's max_pool2d on the same input, and as a fraction of "
        "a large copy's bandwidth measured in the same run."
    )
    outputs = (
        "Outputs in --out: results.csv (one row per case, pass and implementation), results.json (the "
        "rows with the machine, peaks, checks and summary), summary.md (the summary tables), "
        "SUITE_speedup.png and SUITE_peak.png. Optional packages: rich (tables), tqdm (progress bar), "
        "matplotlib (plots)."
    )
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + "\n\n" + textwrap.fill(default_run, 100),
        epilog=suites_help() + "\n\n" + textwrap.fill(outputs, 100),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32")
    parser.add_argument("--suite", type=lambda s: [n for n in s.split(",") if n], default=None,
                        metavar="NAME[,NAME]", help="suites to run (default: all)")
    parser.add_argument("--op", choices=list(REFERENCES), default=None, help="only the suites of this op")
    parser.add_argument("--threads", type=int, default=all_cores(),
                        help="torch.set_num_threads (default: all cores, here %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a few layers per suite at batch 1, {QUICK_REPEATS} rounds: about a minute "
                        "on 2 CPU cores")
    parser.add_argument("--pass", dest="passes", type=lambda s: [p for p in s.split(",") if p],
                        default=list(PASSES), metavar="fwd,bwd,fwdbwd", help="passes to time (default: all)")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"interleaved rounds per case (default: {DEFAULTS['cpu']['repeats']} on cpu, "
                        f"{DEFAULTS['cuda']['repeats']} on cuda, {QUICK_REPEATS} with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up calls per implementation "
                        f"(default: {DEFAULTS['cpu']['warmup']} on cpu, {DEFAULTS['cuda']['warmup']} on cuda)")
    parser.add_argument("--out", type=Path, default=Path("bench_out"), help="output folder (default: bench_out/)")
    args = parser.parse_args(argv)
    unknown = [p for p in args.passes if p not in PASSES]
    if unknown:
        parser.error(f"unknown pass(es) {unknown}; choose from {list(PASSES)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available to torch")
    try:
        args.suites = select(args.suite, args.op)
    except ValueError as error:
        parser.error(str(error))
    defaults = DEFAULTS[args.device]
    args.repeats = args.repeats or (QUICK_REPEATS if args.quick else defaults["repeats"])
    args.warmup = defaults["warmup"] if args.warmup is None else args.warmup
    args.min_sample_s = defaults["min_sample_s"]
    return args


def configure_torch(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
        # Compare like with like: fastconv computes float32 in float32, so cuDNN and cuBLAS must
        # not round to TF32.
        if hasattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision"):
            torch.backends.cudnn.conv.fp32_precision = "ieee"
            torch.backends.cuda.matmul.fp32_precision = "ieee"
        else:
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False


def measure_case(case: Case, args: argparse.Namespace, timer: Timer) -> List[dict]:
    """Checks one case, then times every implementation on every pass: one row per (pass, impl)."""
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    workload = make_workload(case, device, dtype)
    checks = workload.check()  # raises CorrectnessError before anything is timed
    op = case.layer.op
    layer_fields = {k: v for k, v in vars(case.layer).items() if k != "name"}
    footprint = workload.footprint_bytes()
    rows = []
    for pass_name in args.passes:
        candidates = {name: impl.candidate(pass_name) for name, impl in workload.impls.items()}
        timings = interleaved(candidates, timer, args.repeats, args.warmup, args.min_sample_s)
        del candidates  # frees the graphs kept for the backward pass
        work = workload.work(pass_name)
        for name, timing in timings.items():
            # A reference's speedup: its time over that of the fastconv implementation that takes
            # the same input (fastconv_cl for torch_cl).
            fast_time = None if name in FASTCONV_IMPLS[op] else timings[counterpart(op, name)].median
            rate = work / timing.median / 1e9
            rows.append({
                "suite": case.suite, "op": op, "layer": case.layer.name, "shape": case.layer.describe(),
                "count": case.count, "batch": case.batch, **layer_fields,
                "dtype": args.dtype, "device": args.device, "threads": torch.get_num_threads(),
                "pass": pass_name, "impl": name, "backend": workload.backend(name),
                "median_s": timing.median, "min_s": timing.min, "samples_s": timing.samples, "iters": timing.iters,
                "repeats": len(timing.samples),
                "work": work, "work_unit": "FLOP" if op == "conv2d" else "byte",
                "rate": rate, "rate_unit": report.rate_unit(op), "fraction_of_peak": None,  # set once peaks are known
                "fastconv_speedup": None if fast_time is None else timing.median / fast_time,
                "footprint_bytes": footprint,
                "fits_in_cache": None if not args.cache_bytes else footprint <= args.cache_bytes,
                "workspace_bytes": workload.workspace_bytes(name) if pass_name == "fwd" else None,
                "check": checks if name == "fastconv" and pass_name == args.passes[0] else None,
            })
    return rows


def progress(cases: List[Case], suite: str):
    if tqdm is not None and sys.stderr.isatty():
        return tqdm(cases, desc=suite, unit="case", leave=False, dynamic_ncols=True)
    return _plain_progress(cases, suite)


def _plain_progress(cases: List[Case], suite: str):
    for i, case in enumerate(cases, start=1):
        print(f"{time.strftime('%H:%M:%S')} [{suite} {i}/{len(cases)}] {case.label}", flush=True)
        yield case


def say(message: str) -> None:
    (tqdm.write if tqdm is not None and sys.stderr.isatty() else print)(message)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    configure_torch(args)
    started = time.perf_counter()
    device = torch.device(args.device)
    timer = Timer(device)
    machine = machine_info(device)
    args.cache_bytes = machine.get("last_level_cache_bytes")
    peak_samples = []

    def remeasure_peaks() -> dict:
        peak_samples.append(measure_peaks(device, DTYPES[args.dtype], timer, repeats=3))
        return best_peaks(peak_samples)

    peaks = remeasure_peaks()
    hardware = machine.get("gpu_name") or machine["cpu_model"]
    context = f"{args.device}: {hardware}, {torch.get_num_threads()} threads, {args.dtype}, {machine['date'][:10]}"
    print(f"fastconv benchmark on {context}; peaks: {peaks['gemm_size']}^3 GEMM {peaks['gemm_gflops']:.3g} "
          f"GFLOP/s, copy {peaks['copy_gbs']:.3g} GB/s")
    load = machine["load_average_at_start"]
    if load and load[0] > 0.5 and args.device == "cpu":
        print(f"note: load average {load[0]:.1f} before starting: other work is running on this machine; "
              "timings will be noisy (ratios measured side by side suffer least)")

    args.out.mkdir(parents=True, exist_ok=True)
    rows, failures, plots = [], [], []
    for index, suite in enumerate(args.suites):
        if index > 0:
            peaks = remeasure_peaks()
        suite_rows = []
        for case in progress(suite.cases(args.device, args.quick), suite.name):
            try:
                suite_rows += measure_case(case, args, timer)
            except CorrectnessError as error:
                failures.append({"suite": suite.name, "case": case.label, "kind": "mismatch", "message": str(error)})
                say(f"CORRECTNESS FAILURE: {error}")
            except (RuntimeError, NotImplementedError) as error:  # e.g. no kernel for this device
                message = f"{suite.name}/{case.label}: {type(error).__name__}: {error}"
                failures.append({"suite": suite.name, "case": case.label, "kind": "error", "message": message})
                say(f"ERROR in {message.splitlines()[0]}")
        if suite_rows:
            report.set_fractions_of_peak(suite_rows, peaks)
            report.suite_table(suite.name, suite.op, suite_rows, peaks, context).print()
        rows += suite_rows

    peaks = remeasure_peaks()
    report.set_fractions_of_peak(rows, peaks)  # against the best peak seen in the whole run
    for suite in args.suites:
        suite_rows = [r for r in rows if r["suite"] == suite.name]
        if suite_rows:
            plots += report.plot_suite(suite.name, suite.op, suite_rows, context, args.out)
    summary = report.summarize(rows)
    tables = report.summary_tables(summary, context)
    beyond_cache = report.beyond_cache_table(rows, context, args.cache_bytes)
    if beyond_cache is not None:
        tables.append(beyond_cache)
    for table in tables:
        table.print()
    elapsed = time.perf_counter() - started
    write_outputs(args, rows, summary, tables, failures, machine, peaks, context, elapsed)
    print(f"\n{len(rows)} results in {elapsed:.0f} s; wrote {args.out}/results.csv, results.json, summary.md"
          + (f" and {len(plots)} plots" if plots else " (no plots)"))
    if failures:
        print(f"{len(failures)} case(s) FAILED:", *(f"  {f['message']}" for f in failures),
              sep="\n", file=sys.stderr)
        return 1
    if not rows:
        print("nothing was measured (no suite selected?)", file=sys.stderr)
        return 2
    return 0


def best_peaks(samples: List[dict]) -> dict:
    """The machine's peaks are the best rates seen in this run: it is shared, and a measurement
    taken while other work runs understates what it can do."""
    return {**samples[-1], "gemm_gflops": max(s["gemm_gflops"] for s in samples),
            "copy_gbs": max(s["copy_gbs"] for s in samples), "samples": list(samples)}


def write_outputs(args, rows, summary, tables, failures, machine, peaks, context, elapsed) -> None:
    in_json_only = ("check", "samples_s")
    report.write_csv([{k: v for k, v in row.items() if k not in in_json_only} for row in rows],
                     args.out / "results.csv")
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "suites"}
    config["suites"] = [suite.name for suite in args.suites]
    report.write_json({
        "machine": {**machine, "threads": torch.get_num_threads(),
                    "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "config": config, "peaks": peaks,
        "references": {f"{op}/{ref}": text for (op, ref), text in REFERENCE_DESCRIPTIONS.items()},
        "elapsed_s": elapsed, "failures": failures, "summary": summary, "results": rows,
    }, args.out / "results.json")
    header = (f"fastconv benchmark, {context}. Machine: {machine['cpu_model']} ({machine['cpu_count']} cores, "
              f"{machine['cpu_capability']})" + (f", {machine['gpu_name']}" if "gpu_name" in machine else "")
              + f"; torch {machine['torch_version']}, fastconv {machine['fastconv_version']}"
              + (f" @ {machine['git_commit']}" if machine["git_commit"] else "")
              + f". Peaks (best seen in the run): {peaks['gemm_size']}^3 GEMM {peaks['gemm_gflops']:.3g} GFLOP/s, "
              f"copy {peaks['copy_gbs']:.3g} GB/s. Command: `python bench/run.py {' '.join(sys.argv[1:])}`"
              + f" ({elapsed / 60:.1f} min).")
    report.write_markdown(tables, header, args.out / "summary.md")


if __name__ == "__main__":
    sys.exit(main())
