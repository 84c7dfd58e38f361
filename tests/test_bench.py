"""The benchmark's command line and output (bench/run.py, bench/report.py): usage errors, table
widths, the default scope, the files it writes and clears. Timings are never asserted."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after the installed fastconv, as bench/run.py does

from bench import report  # noqa: E402
from bench.run import (  # noqa: E402
    OUTPUT_FILES,
    clear_outputs,
    isa_problems,
    parse_args,
    without_isa_option,
)
from bench.suites import SUITES  # noqa: E402


def run_bench(args, cwd, timeout=300):
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([os.environ.get("PYTHONPATH", ""), str(ROOT)])
    )
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--threads", "0"], "argument --threads: must be at least 1, not 0"),
        (["--repeats", "-2"], "argument --repeats: must be at least 1, not -2"),
        (["--warmup", "-1"], "argument --warmup: must be 0 or more, not -1"),
        (["--threads", "two"], "argument --threads: invalid positive_int value: 'two'"),
        (["--quick", "--full"], "not allowed with argument"),
        (["--suite", "nope"], "unknown suite(s) ['nope']"),
        (["--pass", "fwd,up"], "unknown pass(es) ['up']"),
    ],
)
def test_bad_arguments_are_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage:") and message in err and "Traceback" not in err


def test_default_scope_keeps_every_suite_at_both_batches():
    args = parse_args([])
    assert args.scope == "default"
    for suite in SUITES.values():
        default = suite.cases("cpu", "default")
        full = suite.cases("cpu", "full")
        assert {c.batch for c in default} == {1, suite.train_batch["cpu"]}
        assert 0 < len(default) <= len(full)
        assert {c.layer.name for c in default} == set(suite.representative)
        assert all(c.batch == 1 for c in suite.cases("cpu", "quick"))
    assert any(s.op == "max_pool2d" for s in SUITES.values())
    assert parse_args(["--full"]).scope == "full" and parse_args(["--quick"]).scope == "quick"


def fake_rows(suite, op):
    """Result rows as measure_case makes them, with the longest names and widest numbers."""
    impls = report.FASTCONV_IMPLS[op] + report.REFERENCES[op]
    rows = []
    for layer in SUITES[suite].layers:
        for batch in (1, 256):
            for pass_name in report.PASSES:
                for impl in impls:
                    rows.append(
                        {
                            "suite": suite,
                            "op": op,
                            "layer": layer.name,
                            "shape": layer.describe(),
                            "count": 12,
                            "batch": batch,
                            "pass": pass_name,
                            "impl": impl,
                            "backend": "Mkldnn",
                            "median_s": 12.3456789,
                            "rate": 12345.6,
                            "peak_rate": 100.0,
                            "fraction_of_peak": 1.234,
                            "fastconv_speedup": None if impl.startswith("fastconv") else 123.456,
                            "workspace_bytes": 2**31,
                            "footprint_bytes": 2**30,
                            "fits_in_cache": False,
                        }
                    )
    return rows


PEAKS = {
    "gemm_size": 1536,
    "gemm_dtype": "float32",
    "gemm_gflops": 100.0,
    "copy_bytes": 2 << 26,
    "copy_gbs": 10.0,
}
CONTEXT = "cpu: AMD EPYC 7B13 64-Core Processor, 128 threads, bfloat16, 2026-12-01"


@pytest.mark.parametrize("suite", list(SUITES))
def test_terminal_tables_fit_120_columns_and_markdown_keeps_every_column(suite):
    op = SUITES[suite].op
    rows = fake_rows(suite, op)
    tables = [report.suite_table(suite, op, rows, PEAKS, CONTEXT)]
    tables += report.summary_tables(report.summarize(rows), CONTEXT, PEAKS)
    tables.append(report.beyond_cache_table(rows, CONTEXT, 32 << 20))
    for table in filter(None, tables):
        lines = table.terminal().splitlines()
        assert max(map(len, lines)) <= report.TERMINAL_WIDTH, table.title
        header_row = table.markdown().splitlines()[2]
        assert header_row.count("|") == len(table.headers) + 1  # summary.md: all columns
    shape = SUITES[suite].layers[0].describe()
    assert shape not in tables[0].terminal() and shape in tables[0].markdown()


@pytest.mark.parametrize(
    "low, high", [(0.58, 1.0), (0.9, 1.3), (1.0, 1.05), (0.05, 40.0), (1.0, 900.0)]
)
def test_speedup_ticks_label_the_values_not_only_1x(low, high):
    ticks = report.speedup_ticks(low, high)
    assert 4 <= len(ticks) <= 10 and ticks == sorted(ticks) and 1 in ticks
    near = [t for t in ticks if low / 1.25 <= t <= high * 1.25]
    assert len(near) >= 3  # values besides 1x can be read off, near the data
    assert all(math.isfinite(t) and t > 0 for t in ticks)


def test_a_run_checks_writes_and_clears_only_its_own_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("not the benchmark's")
    (out / "vgg16_speedup.png").write_bytes(b"stale plot of an earlier run")
    result = run_bench(
        [
            "--quick",
            "--suite",
            "lenet5,maxpool",
            "--pass",
            "fwd",
            "--repeats",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "cleared 1 file(s) of an earlier run" in result.stdout
    assert (out / "mine.txt").exists() and not (out / "vgg16_speedup.png").exists()
    for name in ("results.csv", "results.json", "summary.md"):
        assert (out / name).stat().st_size > 0
    pytest.importorskip("matplotlib")
    for name in (
        "lenet5_speedup.png",
        "lenet5_peak.png",
        "maxpool_speedup.png",
        "maxpool_peak.png",
    ):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    assert (
        max(len(line) for line in result.stdout.splitlines() if "/" not in line)
        <= report.TERMINAL_WIDTH
    )
    assert "fastconv from " in result.stdout


def test_clear_outputs_removes_nothing_else(tmp_path):
    names = ["results.csv", "resnet18_peak.png", "notes.md", "other.png"]
    for name in names:
        (tmp_path / name).write_text("x")
    assert sorted(clear_outputs(tmp_path)) == ["resnet18_peak.png", "results.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.md", "other.png"]
    assert "summary.md" in OUTPUT_FILES


def test_isa_option_reruns_with_every_library_held_to_avx2(tmp_path):
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("this CPU has no AVX2")
    result = run_bench(
        ["--quick", "--suite", "lenet5", "--pass", "fwd", "--repeats", "1", "--threads", "1"]
        + ["--isa", "avx2", "--out", str(tmp_path / "out")],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "ISA: torch AVX2, fastconv avx2_fma, oneDNN Intel AVX2" in result.stdout
    assert "(cpu: " in result.stdout and ", AVX2, 1 threads," in result.stdout


def test_isa_helpers():
    assert without_isa_option(["--quick", "--isa", "avx2", "--isa=avx2", "--out", "x"]) == [
        "--quick",
        "--out",
        "x",
    ]
    held = {"ATEN_CPU_CAPABILITY": "avx2"}
    good = {"aten": "AVX2", "fastconv": "avx2_fma", "onednn": "Intel AVX2", "mkl": "unknown"}
    assert isa_problems(good, held) == []
    assert isa_problems(dict(good, aten="AVX512", onednn="Intel AVX-512"), {}) == []
    problems = isa_problems(dict(good, fastconv="avx512f", onednn="Intel AVX-512 with ..."), held)
    assert problems == ["fastconv's kernels are avx512f", "oneDNN's ISA is Intel AVX-512 with ..."]
