"""fastconv's benchmark: its conv2d and max_pool2d against PyTorch's own backends on the layers of
classic networks, and whole torchvision networks converted by fastconv.convert() against the
originals, after checking that their results agree.

    python bench/run.py                     # representative layers of every suite (~5 min, 2 cores)
    python bench/run.py --suite models      # every network: inference, a training step (2.5 min)
    python bench/run.py --full              # every distinct layer and every network
    python bench/run.py --device cpu --quick --out DIR  # a one-minute subset (CI's smoke step)
    python bench/run.py --device cuda --suite resnet50,maxpool --pass fwd
    python bench/run.py --isa avx2          # every library held to AVX2 (on an AVX-512 machine)

It benchmarks the fastconv that Python imports from outside the source folder (the installed one,
editable or not; the source folder's own only where none is installed) and says which. Exits
non-zero when fastconv disagrees with torch on any case (or fails to run one).
"""

import argparse
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import List, Optional

if __package__ in (None, ""):  # run as a script: make `bench` importable as a package
    # Appended, not prepended: the source folder holds a `fastconv` folder too, which must not
    # shadow the installed package (without a build it has no compiled extension).
    sys.path.append(str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench import report  # noqa: E402
from bench.machine import ISA_VARIABLES, PeakCandidates, machine_info, measure_peaks  # noqa: E402
from bench.models import (  # noqa: E402
    IMAGE_SIZE,
    MODEL_PASSES,
    MODELS,
    SUITE_NAME as MODELS_SUITE,
    ModelCase,
    ModelWorkload,
    model_cases,
    torchvision_available,
)
from bench.suites import SUITES, Case, select  # noqa: E402
from bench.timing import Timer, interleaved  # noqa: E402
from bench.workloads import (  # noqa: E402
    FASTCONV_IMPLS,
    PASSES,
    REFERENCE_DESCRIPTIONS,
    REFERENCES,
    CorrectnessError,
    counterpart,
    make_workload,
)

try:
    from tqdm import tqdm
except ImportError:  # optional: a plain line per case instead of a progress bar
    tqdm = None

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
# Per device: rounds per case, warm-up calls, and the shortest sample (tiny layers get several
# calls per sample so that the clock's resolution and Python's overhead stay small).
DEFAULTS = {
    "cpu": dict(repeats=5, warmup=1, min_sample_s=0.02),
    "cuda": dict(repeats=20, warmup=3, min_sample_s=0.005),
}
QUICK_REPEATS = 3
PEAK = "peak"  # the peak's candidate among a case's implementations
# What a run writes into --out, and clears from it first (SUITE_*.png for every known suite).
OUTPUT_FILES = (
    "results.csv",
    "results.json",
    "summary.md",
    *[f"{suite}_{kind}.png" for suite in SUITES for kind in ("speedup", "peak")],
    f"{MODELS_SUITE}_speedup.png",
)


def all_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def suites_help() -> str:
    lines = [
        "suites (distinct layers; training batch on cpu / cuda; the representative layers that the",
        "default run times at both batches and --quick at batch 1):",
    ]
    for suite in SUITES.values():
        batches = f"N={suite.train_batch['cpu']}/{suite.train_batch['cuda']}"
        lines.append(
            f"  {suite.name:<16} {suite.op:<10} {suite.distinct_layers:>2} layers, {batches:<9} "
            f"{suite.source}; {', '.join(suite.representative)}"
        )
    networks = ", ".join(
        f"{spec.name}" + (f" (training N={spec.train_batch})" if spec.train_batch != 8 else "")
        for spec in MODELS.values()
    )
    lines += [
        "",
        textwrap.fill(
            f"{MODELS_SUITE} (torchvision, random weights, 224x224): {networks}; each converted by "
            "fastconv.convert() against the original, each on NCHW and on channels_last input "
            "(network and input), passes infer (eval, no_grad, N=1 and N=8) "
            "and train (train mode: forward, cross-entropy, backward; N=8 unless noted). --suite "
            "models (or --full) runs every network; the default run and --quick only resnet18 "
            "infer N=1 (so does --suite models --quick; with --pass train, resnet18 train N=8). "
            "--op selects layer suites only: the models suite, which runs both ops, is then left "
            "out.",
            100,
            subsequent_indent="  ",
        ),
    ]
    return "\n".join(lines)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    default_run = (
        "The default run (no arguments) times the representative layers of every suite (listed "
        "below) at batch 1 (inference) and at the suite's training batch, forward, backward and "
        "both, 5 interleaved rounds per case: about 5 minutes on the 2 cores of the build machine, "
        "with a table after each suite. --full times every distinct layer (10-15 minutes) and "
        "every network. Each case is first checked against torch (values within rounding, "
        "identical pooling indices) and only then timed against torch's default backend (oneDNN on "
        "CPU, cuDNN with benchmark mode on CUDA) and torch's own im2col path (oneDNN and NNPACK / "
        "cuDNN off); pooling on NCHW and on channels_last input, each against torch's max_pool2d "
        "on the same input. A GEMM (convolution) or a copy (pooling) is timed in the same rounds, "
        "for the fraction of peak. It also times one whole network, resnet18 inference at batch 1, "
        "converted by fastconv.convert() against the original (--suite models: every network, "
        "inference and a training step)."
    )
    outputs = (
        "Outputs in --out, which each run clears of the files an earlier run wrote there: "
        "results.csv (one row per case, pass and implementation), results.json (the rows with the "
        "machine, peaks, checks and summary), summary.md (all tables, with every column; the whole "
        f"networks' first), SUITE_speedup.png and SUITE_peak.png, {MODELS_SUITE}_speedup.png. "
        "Optional packages: tqdm (progress bar), matplotlib (plots), torchvision (the models "
        "suite)."
    )
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + "\n\n" + textwrap.fill(default_run, 100),
        epilog=suites_help() + "\n\n" + textwrap.fill(outputs, 100),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32")
    parser.add_argument(
        "--suite",
        type=lambda s: [n for n in s.split(",") if n],
        default=None,
        metavar="NAME[,NAME]",
        help="suites to run (default: all)",
    )
    parser.add_argument(
        "--op",
        choices=list(REFERENCES),
        default=None,
        help=f"only the layer suites of this op (leaves the {MODELS_SUITE} suite out)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=all_cores(),
        help="torch.set_num_threads (default: all cores, here %(default)s)",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--quick",
        action="store_true",
        help=f"the representative layers at batch 1 only, {QUICK_REPEATS} rounds: about a "
        "minute on 2 CPU cores",
    )
    scope.add_argument(
        "--full",
        action="store_true",
        help=f"every distinct layer of every suite, and every network of the {MODELS_SUITE} suite",
    )
    parser.add_argument(
        "--pass",
        dest="passes",
        type=lambda s: [p for p in s.split(",") if p],
        default=list(PASSES + MODEL_PASSES),
        metavar="fwd,bwd,fwdbwd,infer,train",
        help="passes to time (default: all): fwd, bwd, fwdbwd for the layer suites, infer "
        f"and train for the {MODELS_SUITE} suite; a suite none of whose passes is chosen is "
        "left out",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=None,
        help=f"interleaved rounds per case (default: {DEFAULTS['cpu']['repeats']} on cpu, "
        f"{DEFAULTS['cuda']['repeats']} on cuda, {QUICK_REPEATS} with --quick)",
    )
    parser.add_argument(
        "--warmup",
        type=non_negative_int,
        default=None,
        help="warm-up calls per "
        f"implementation (default: {DEFAULTS['cpu']['warmup']} on cpu, "
        f"{DEFAULTS['cuda']['warmup']} on cuda)",
    )
    parser.add_argument(
        "--image-size",
        type=positive_int,
        default=IMAGE_SIZE,
        metavar="PIXELS",
        help=f"input height and width of the {MODELS_SUITE} suite's networks (default: "
        "%(default)s; smaller sizes are for smoke tests)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help=f"the {MODELS_SUITE} suite's networks under torch.compile (its defaults), fastconv's "
        "and torch's alike; the first call of each compiles (tens of seconds per network on 2 "
        "cores), outside the timings",
    )
    parser.add_argument(
        "--isa",
        choices=["native", *ISA_VARIABLES],
        default="native",
        help="instruction set of every library's CPU code: native (default: the best this CPU "
        "has), or avx2: the run goes on in a new process with "
        + ", ".join(f"{k}={v}" for k, v in ISA_VARIABLES["avx2"].items())
        + " (how an AVX-512 machine runs what an AVX2 one would); the header says what each "
        "library used",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench_out"), help="output folder (default: bench_out/)"
    )
    args = parser.parse_args(argv)
    unknown = [p for p in args.passes if p not in PASSES + MODEL_PASSES]
    if unknown or not args.passes:
        parser.error(f"unknown pass(es) {unknown}; choose from {list(PASSES + MODEL_PASSES)}")
    args.layer_passes = [p for p in args.passes if p in PASSES]
    args.model_passes = [p for p in args.passes if p in MODEL_PASSES]
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: exists and is not a folder")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available to torch")
    args.scope = "quick" if args.quick else "full" if args.full else "default"
    models_named = MODELS_SUITE in (args.suite or [])
    layer_names = [name for name in args.suite or [] if name != MODELS_SUITE]
    if models_named and args.op:
        parser.error(
            f"--op selects layer suites only; the {MODELS_SUITE} suite runs both ops: drop --op or "
            f"{MODELS_SUITE}"
        )
    try:
        chosen = select(layer_names, args.op) if layer_names or not models_named else []
    except ValueError as error:
        parser.error(str(error).replace("choose from [", f"choose from ['{MODELS_SUITE}', "))
    args.suites = chosen if args.layer_passes else []
    # The models suite: every network when named or with --full (--quick: its one representative
    # case), the representative case in a default or quick run of every suite.
    with_models = args.model_passes and (models_named or (not args.suite and args.op is None))
    args.models_skipped = bool(with_models) and not torchvision_available()
    if args.models_skipped:
        if models_named:
            parser.error(f"the {MODELS_SUITE} suite needs torchvision, which is not installed")
        with_models = False
    args.model_cases = (
        model_cases(args.model_passes, whole=args.full or (models_named and not args.quick))
        if with_models
        else []
    )
    if not args.suites and not args.model_cases:
        parser.error("nothing to run: no selected suite has a selected pass")
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


def measure_case(
    case: Case, args: argparse.Namespace, timer: Timer, peaks: PeakCandidates
) -> List[dict]:
    """Checks one case, then times every implementation on every pass, with the op's peak (GEMM or
    copy) in the same interleaved rounds: one row per (pass, impl)."""
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    workload = make_workload(case, device, dtype)
    checks = workload.check()  # raises CorrectnessError before anything is timed
    op = case.layer.op
    layer_fields = {k: v for k, v in vars(case.layer).items() if k != "name"}
    footprint = workload.footprint_bytes()
    peak_candidate, peak_work, _ = peaks.for_op(op)
    rows = []
    for pass_name in args.layer_passes:
        candidates = {name: impl.candidate(pass_name) for name, impl in workload.impls.items()}
        candidates[PEAK] = peak_candidate
        timings = interleaved(candidates, timer, args.repeats, args.warmup, args.min_sample_s)
        del candidates  # frees the graphs kept for the backward pass
        work = workload.work(pass_name)
        peak_rate = peak_work / timings.pop(PEAK).median / 1e9
        for name, timing in timings.items():
            # A reference's speedup: its time over that of the fastconv implementation that takes
            # the same input (fastconv_cl for torch_cl).
            fast_time = (
                None if name in FASTCONV_IMPLS[op] else timings[counterpart(op, name)].median
            )
            rate = work / timing.median / 1e9
            rows.append(
                {
                    "suite": case.suite,
                    "op": op,
                    "layer": case.layer.name,
                    "shape": case.layer.describe(),
                    "count": case.count,
                    "batch": case.batch,
                    **layer_fields,
                    "dtype": args.dtype,
                    "device": args.device,
                    "threads": torch.get_num_threads(),
                    "pass": pass_name,
                    "impl": name,
                    "backend": workload.backend(name),
                    "median_s": timing.median,
                    "min_s": timing.min,
                    "samples_s": timing.samples,
                    "iters": timing.iters,
                    "repeats": len(timing.samples),
                    "work": work,
                    "work_unit": "FLOP" if op == "conv2d" else "byte",
                    "rate": rate,
                    "rate_unit": report.rate_unit(op),
                    "peak_rate": peak_rate,
                    "fraction_of_peak": rate / peak_rate,
                    "fastconv_speedup": None if fast_time is None else timing.median / fast_time,
                    "footprint_bytes": footprint,
                    "fits_in_cache": None
                    if not args.cache_bytes
                    else footprint <= args.cache_bytes,
                    "workspace_bytes": workload.workspace_bytes(name)
                    if pass_name == "fwd"
                    else None,
                    "check": checks
                    if name == "fastconv" and pass_name == args.layer_passes[0]
                    else None,
                }
            )
    return rows


def measure_model_case(case: ModelCase, args: argparse.Namespace, timer: Timer) -> List[dict]:
    """Checks one network case, then times the converted network and the original in interleaved
    rounds: one row each."""
    workload = ModelWorkload(
        case, torch.device(args.device), DTYPES[args.dtype], args.image_size, args.compile
    )
    checks = workload.check()  # raises CorrectnessError before anything is timed
    candidates = {impl: workload.candidate(impl) for impl in workload.models}
    timings = interleaved(candidates, timer, args.repeats, args.warmup, args.min_sample_s)

    def fastconv_speedup(impl: str) -> Optional[float]:
        """An original's time over the converted network's in the same layout (>1: fastconv
        faster); on the NCHW original's row also `best`: torch's faster layout against
        fastconv's."""
        if impl.startswith("fastconv"):
            return None
        return timings[impl].median / timings[impl.replace("torch", "fastconv")].median

    def best(prefix: str) -> float:
        return min(t.median for impl, t in timings.items() if impl.startswith(prefix))

    rows = []
    for impl, timing in timings.items():
        rows.append(
            {
                "suite": case.suite,
                "op": "model",
                "model": case.model,
                "shape": f"3x{args.image_size}x{args.image_size}",
                "batch": case.batch,
                "dtype": args.dtype,
                "device": args.device,
                "threads": torch.get_num_threads(),
                "pass": case.pass_name,
                "impl": impl,
                "backend": workload.backend(impl),
                "median_s": timing.median,
                "min_s": timing.min,
                "samples_s": timing.samples,
                "iters": timing.iters,
                "repeats": len(timing.samples),
                "images_per_s": case.batch / timing.median,
                "fastconv_speedup": fastconv_speedup(impl),
                "fastconv_best_speedup": best("torch") / best("fastconv")
                if impl == "torch"
                else None,
                "layers_converted": workload.converted if impl.startswith("fastconv") else None,
                "check": checks if impl == "fastconv" else None,
            }
        )
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


def clear_outputs(out: Path) -> List[str]:
    """Removes the files an earlier run wrote into `out` (only those), so that none of them can
    pass for this run's."""
    removed = []
    for name in OUTPUT_FILES:
        if (out / name).is_file():
            (out / name).unlink()
            removed.append(name)
    return removed


def without_isa_option(argv: List[str]) -> List[str]:
    """argv less its --isa option (as `--isa X` or `--isa=X`)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--isa":
            skip = True
        elif not arg.startswith("--isa="):
            kept.append(arg)
    return kept


def rerun_with_isa(isa: str, argv: List[str]) -> int:
    """The run in a new process whose libraries are held to `isa` (they read the variables when
    they load)."""
    env = dict(os.environ, **ISA_VARIABLES[isa])
    command = [sys.executable, str(Path(__file__).resolve()), *without_isa_option(argv)]
    print(f"--isa {isa}: running {' '.join(command[1:])} with {ISA_VARIABLES[isa]}", flush=True)
    return subprocess.run(command, env=env).returncode


def isa_label(isa: dict) -> str:
    """The instruction set the run used, as the tables name it: torch's CPU capability, which
    fastconv's kernels follow (isa_problems checks that the others did)."""
    return {"AVX512": "AVX-512", "AVX2": "AVX2"}.get(isa["aten"], isa["aten"])


def isa_problems(isa: dict, variables: dict) -> List[str]:
    """Where a library ignored the ISA variables in force."""
    if variables.get("ATEN_CPU_CAPABILITY", "").lower() != "avx2":
        return []
    problems = []
    if isa["aten"] != "AVX2":
        problems.append(f"torch's CPU capability is {isa['aten']}")
    if isa["fastconv"] != "avx2_fma":
        problems.append(f"fastconv's kernels are {isa['fastconv']}")
    if "512" in isa["onednn"] or isa["onednn"] == "unknown":
        problems.append(f"oneDNN's ISA is {isa['onednn']}")
    if "512" in isa["mkl"]:
        problems.append(f"MKL's ISA is {isa['mkl']}")
    return problems


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.isa != "native":
        return rerun_with_isa(args.isa, argv)
    configure_torch(args)
    started = time.perf_counter()
    device = torch.device(args.device)
    timer = Timer(device)
    machine = machine_info(device)
    args.cache_bytes = machine.get("last_level_cache_bytes")
    peak_candidates = PeakCandidates(device, DTYPES[args.dtype])
    peaks = measure_peaks(peak_candidates, timer, repeats=3)
    hardware = machine.get("gpu_name") or machine["cpu_model"]
    if machine["isa"]:
        hardware += f", {isa_label(machine['isa'])}"
    context = (
        f"{args.device}: {hardware}, {torch.get_num_threads()} threads, {args.dtype}, "
        f"{machine['date'][:10]}" + (", torch.compile" if args.compile else "")
    )
    print(
        f"fastconv benchmark ({args.scope} run) on {context}\n"
        f"peaks: {peaks['gemm_size']}^3 GEMM {peaks['gemm_gflops']:.3g} GFLOP/s, copy "
        f"{peaks['copy_gbs']:.3g} GB/s\n"
        f"fastconv from {machine['fastconv_path']}"
    )
    if machine["isa"]:
        isa = machine["isa"]
        print(
            f"ISA: torch {isa['aten']}, fastconv {isa['fastconv']}, oneDNN {isa['onednn']}, MKL "
            f"{isa['mkl']}"
            + (f" (variables: {machine['isa_variables']})" if machine["isa_variables"] else "")
        )
        problems = isa_problems(isa, machine["isa_variables"])
        if problems:
            print(f"error: ATEN_CPU_CAPABILITY=avx2, but {'; '.join(problems)}", file=sys.stderr)
            return 2
    if args.models_skipped:
        print(f"note: torchvision is not installed: the {MODELS_SUITE} suite is left out")
    load = machine["load_average_at_start"]
    if load and load[0] > 0.5 and args.device == "cpu":
        print(
            textwrap.fill(
                f"note: load average {load[0]:.1f} before starting: other work is running on this "
                "machine; timings will be noisy (ratios measured side by side suffer least)",
                report.TERMINAL_WIDTH,
            )
        )

    args.out.mkdir(parents=True, exist_ok=True)
    removed = clear_outputs(args.out)
    if removed:
        print(f"cleared {len(removed)} file(s) of an earlier run from {args.out}")
    rows, failures, plots, suite_tables = [], [], [], []
    for suite in args.suites:
        suite_rows = []
        for case in progress(suite.cases(args.device, args.scope), suite.name):
            try:
                suite_rows += measure_case(case, args, timer, peak_candidates)
            except CorrectnessError as error:
                failures.append(
                    {
                        "suite": suite.name,
                        "case": case.label,
                        "kind": "mismatch",
                        "message": str(error),
                    }
                )
                say(f"CORRECTNESS FAILURE: {error}")
            except (RuntimeError, NotImplementedError) as error:  # e.g. no kernel for this device
                message = f"{suite.name}/{case.label}: {type(error).__name__}: {error}"
                failures.append(
                    {"suite": suite.name, "case": case.label, "kind": "error", "message": message}
                )
                say(f"ERROR in {message.splitlines()[0]}")
        if suite_rows:
            suite_tables.append(
                report.suite_table(suite.name, suite.op, suite_rows, peaks, context)
            )
            suite_tables[-1].print()
        rows += suite_rows
    model_rows = []
    for case in progress(args.model_cases, MODELS_SUITE):
        try:
            model_rows += measure_model_case(case, args, timer)
        except CorrectnessError as error:
            failures.append(
                {
                    "suite": MODELS_SUITE,
                    "case": case.label,
                    "kind": "mismatch",
                    "message": str(error),
                }
            )
            say(f"CORRECTNESS FAILURE: {error}")
        except (RuntimeError, NotImplementedError) as error:
            message = f"{MODELS_SUITE}/{case.label}: {type(error).__name__}: {error}"
            failures.append(
                {"suite": MODELS_SUITE, "case": case.label, "kind": "error", "message": message}
            )
            say(f"ERROR in {message.splitlines()[0]}")
    if model_rows:
        suite_tables.append(report.models_table(model_rows, context))
        suite_tables[-1].print()
        plots += report.plot_models(model_rows, context, args.out)
    rows += model_rows

    for suite in args.suites:
        suite_rows = [r for r in rows if r["suite"] == suite.name]
        if suite_rows:
            plots += report.plot_suite(suite.name, suite.op, suite_rows, context, args.out)
    summary = report.summarize_models(model_rows) + report.summarize(rows)
    # The whole networks first: what decides whether converting pays.
    tables = report.models_summary_tables(model_rows, context) + report.summary_tables(
        summary, context, peaks
    )
    beyond_cache = report.beyond_cache_table(rows, context, args.cache_bytes)
    if beyond_cache is not None:
        tables.append(beyond_cache)
    for table in tables:
        table.print()
    elapsed = time.perf_counter() - started
    write_outputs(
        args, rows, summary, tables + suite_tables, failures, machine, peaks, context, elapsed
    )
    print(
        f"\n{len(rows)} results in {elapsed:.0f} s; wrote {args.out}/results.csv, results.json, "
        "summary.md" + (f" and {len(plots)} plots" if plots else " (no plots)")
    )
    if failures:
        print(
            f"{len(failures)} case(s) FAILED:",
            *(f"  {f['message']}" for f in failures),
            sep="\n",
            file=sys.stderr,
        )
        return 1
    if not rows:
        print("nothing was measured (no suite selected?)", file=sys.stderr)
        return 2
    return 0


def write_outputs(args, rows, summary, tables, failures, machine, peaks, context, elapsed) -> None:
    in_json_only = ("check", "samples_s")
    report.write_csv(
        [{k: v for k, v in row.items() if k not in in_json_only} for row in rows],
        args.out / "results.csv",
    )
    config = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "suites"
    }
    config["suites"] = [suite.name for suite in args.suites]
    config["model_cases"] = [case.label for case in args.model_cases]
    report.write_json(
        {
            "machine": {
                **machine,
                "threads": torch.get_num_threads(),
                "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
            },
            "config": config,
            "peaks": peaks,
            "references": {
                f"{op}/{ref}": text for (op, ref), text in REFERENCE_DESCRIPTIONS.items()
            },
            "elapsed_s": elapsed,
            "failures": failures,
            "summary": summary,
            "results": rows,
        },
        args.out / "results.json",
    )
    header = (
        f"fastconv benchmark, {context}. Machine: {machine['cpu_model']} ({machine['cpu_count']} "
        f"cores, {machine['cpu_capability']})"
        + (f", {machine['gpu_name']}" if "gpu_name" in machine else "")
        + f"; torch {machine['torch_version']}, fastconv {machine['fastconv_version']}"
        + (f" @ {machine['git_commit']}" if machine["git_commit"] else "")
        + f" (from {machine['fastconv_path']}). Peaks at the start: {peaks['gemm_size']}^3 GEMM "
        f"{peaks['gemm_gflops']:.3g} GFLOP/s, copy {peaks['copy_gbs']:.3g} GB/s (fractions of peak "
        f"use those timed with each case). Command: `python bench/run.py {' '.join(sys.argv[1:])}`"
        + f" ({elapsed / 60:.1f} min)."
    )
    report.write_markdown(tables, header, args.out / "summary.md")


if __name__ == "__main__":
    sys.exit(main())
