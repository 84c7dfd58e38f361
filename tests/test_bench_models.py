"""The benchmark's models suite (bench/models.py and its parts of bench/run.py and bench/report.py):
case selection, the check that must catch a wrongly converted network before anything is timed,
and a tiny run's rows and files. Timings are never asserted."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after the installed fastconv, as bench/run.py does

pytest.importorskip("torchvision")

from bench import report  # noqa: E402
from bench.models import MODELS, REPRESENTATIVE, ModelCase, ModelWorkload  # noqa: E402
from bench.run import parse_args  # noqa: E402
from bench.workloads import CorrectnessError  # noqa: E402
from helpers import num_threads  # noqa: E402
from test_bench import CONTEXT, run_bench  # noqa: E402

SMALL = 64  # pixels: resnet18 still ends on 2x2 maps, and a case takes well under a second


def test_the_suite_runs_whole_only_when_named_or_full():
    default = parse_args([]).model_cases
    assert [(c.model, c.pass_name, c.batch) for c in default] == [REPRESENTATIVE]
    assert parse_args(["--quick"]).model_cases == default
    assert parse_args(["--suite", "models", "--quick"]).model_cases == default
    whole = parse_args(["--suite", "models"]).model_cases
    assert whole == parse_args(["--full"]).model_cases
    assert (
        {c.model for c in whole}
        == set(MODELS)
        == {
            "resnet18",
            "resnet50",
            "vgg16",
            "mobilenet_v2",
            "googlenet",
            "densenet121",
            "resnext50_32x4d",
        }
    )
    for spec in MODELS.values():
        batches = {(c.pass_name, c.batch) for c in whole if c.model == spec.name}
        assert batches == {("infer", 1), ("infer", 8), ("train", spec.train_batch)}
    assert MODELS["vgg16"].train_batch == 2  # documented: a smaller training batch
    assert (
        parse_args(["--suite", "models", "--pass", "train"]).suites == []
    )  # the models suite alone
    assert {
        c.pass_name for c in parse_args(["--suite", "models", "--pass", "train"]).model_cases
    } == {"train"}
    assert [c.pass_name for c in parse_args(["--pass", "train"]).model_cases] == ["train"]
    assert parse_args(["--op", "conv2d"]).model_cases == []  # --op selects layer suites
    assert parse_args(["--suite", "resnet18"]).model_cases == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--suite", "models", "--op", "conv2d"], "--op selects layer suites only"),
        (["--suite", "models", "--pass", "fwd"], "nothing to run"),
        (["--suite", "nope"], "choose from ['models', "),
    ],
)
def test_bad_selections_are_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.fixture
def one_thread():
    """Small networks gain little from a second thread, and lose much when another process has the
    other core (threads then wait for each other at every layer)."""
    with num_threads(1):
        yield


def small_workload(pass_name, batch=2):
    return ModelWorkload(
        ModelCase("resnet18", pass_name, batch), torch.device("cpu"), torch.float32, SMALL
    )


def test_check_passes_a_correct_conversion_and_catches_a_wrong_output(one_thread):
    workload = small_workload("infer")
    checks = workload.check()
    assert checks["output"]["fastconv"] <= checks["output"]["tolerance"]
    assert workload.converted == 21  # 20 convolutions and the stem's max-pool
    workload = small_workload("infer")
    with torch.no_grad():  # one weight of one converted layer off by 1%
        workload.models["fastconv"].layer3[0].conv1.weight[0, 0, 0, 0] *= 1.01
    with pytest.raises(CorrectnessError, match="output disagrees"):
        workload.check()


@pytest.mark.slow
def test_compiled_networks_are_checked_and_run(one_thread):
    """--compile: all four networks under torch.compile, checked like the eager ones."""
    workload = ModelWorkload(
        ModelCase("resnet18", "infer", 2), torch.device("cpu"), torch.float32, 32, compiled=True
    )
    checks = workload.check()
    assert checks["output"]["fastconv"] <= checks["output"]["tolerance"]
    assert all(hasattr(model, "_orig_mod") for model in workload.models.values())
    assert workload.backend("fastconv_cl").endswith("channels_last, torch.compile)")
    with torch.no_grad():
        assert workload.candidate("fastconv").fn().shape == (2, 1000)


def test_check_catches_a_wrong_gradient(one_thread):
    workload = small_workload("train")
    checks = workload.check()
    assert (
        checks["grads"]["tensors"] > 40
        and checks["grads"]["fastconv"] <= checks["grads"]["tolerance"]
    )
    workload = small_workload("train")
    # The forward is right, one weight's gradient 10% too large: only the gradient check can see it.
    workload.models["fastconv"].layer2[0].conv2.weight.register_hook(lambda grad: grad * 1.1)
    with pytest.raises(CorrectnessError, match=r"grad layer2\.0\.conv2\.weight disagrees"):
        workload.check()


def test_a_tiny_run_writes_rows_tables_and_plot(tmp_path):
    out = tmp_path / "out"
    result = run_bench(
        [
            "--suite",
            "models",
            "--quick",
            "--image-size",
            str(SMALL),
            "--repeats",
            "2",
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "results.json").read_text())["results"]
    assert {(r["model"], r["pass"], r["batch"], r["impl"]) for r in rows} == {
        ("resnet18", "infer", 1, impl) for impl in ("fastconv", "torch", "fastconv_cl", "torch_cl")
    }
    by_impl = {r["impl"]: r for r in rows}
    fast, original = by_impl["fastconv"], by_impl["torch"]
    assert original["fastconv_speedup"] == pytest.approx(original["median_s"] / fast["median_s"])
    assert by_impl["torch_cl"]["fastconv_speedup"] == pytest.approx(
        by_impl["torch_cl"]["median_s"] / by_impl["fastconv_cl"]["median_s"]
    )
    fastest = {
        lib: min(by_impl[lib]["median_s"], by_impl[f"{lib}_cl"]["median_s"])
        for lib in ("fastconv", "torch")
    }
    assert original["fastconv_best_speedup"] == pytest.approx(
        fastest["torch"] / fastest["fastconv"]
    )
    assert fast["fastconv_speedup"] is None and fast["layers_converted"] == 21
    assert by_impl["fastconv_cl"]["backend"].endswith("channels_last)")
    assert fast["check"]["output"]["fastconv"] <= fast["check"]["output"]["tolerance"]
    assert all(
        r["threads"] == 1 and len(r["samples_s"]) == 2 and r["shape"] == "3x64x64" for r in rows
    )
    assert all(
        r["median_s"] == pytest.approx(sum(r["samples_s"]) / 2) for r in rows
    )  # median of 2 rounds
    summary = (out / "summary.md").read_text()
    first_table = summary.split("**")[1]
    # the whole networks come first, against torch's best layout, then NCHW against NCHW
    assert first_table.startswith("Summary: whole networks against torch's best layout")
    assert f"| resnet18 | {original['fastconv_best_speedup']:.2f}x |" in summary
    assert f"| resnet18 | {original['fastconv_speedup']:.2f}x |" in summary
    assert (
        max(len(line) for line in result.stdout.splitlines() if "/" not in line)
        <= report.TERMINAL_WIDTH
    )
    pytest.importorskip("matplotlib")
    assert (out / "models_speedup.png").read_bytes().startswith(b"\x89PNG")


def fake_model_rows():
    rows = []
    for spec in MODELS.values():
        for pass_name, batch in (("infer", 1), ("infer", 8), ("train", spec.train_batch)):
            times = {"fastconv": 1.0, "torch": 2.0 if pass_name == "infer" else 0.5}
            for impl, seconds in times.items():
                rows.append(
                    {
                        "suite": "models",
                        "op": "model",
                        "model": spec.name,
                        "batch": batch,
                        "pass": pass_name,
                        "impl": impl,
                        "median_s": seconds * 123.456,
                        "images_per_s": 12345.6,
                        "layers_converted": 123,
                        "fastconv_speedup": None
                        if impl == "fastconv"
                        else times["torch"] / times["fastconv"],
                        "check": {
                            "output": {"fastconv": 1e-6, "torch": 1e-6},
                            "grads": {"fastconv": 1e-3, "torch": 1e-3},
                        },
                    }
                )
    return rows


def test_model_tables_fit_120_columns_with_geomeans_per_pass():
    rows = fake_model_rows()
    tables = [report.models_table(rows, CONTEXT), *report.models_summary_tables(rows, CONTEXT)]
    for table in tables:
        assert max(map(len, table.terminal().splitlines())) <= report.TERMINAL_WIDTH, table.title
    summary = tables[1]
    assert summary.headers == ["model", "inference N=1", "inference N=8", "training step N=2/8"]
    assert summary.rows[-1] == ["geomean", "2.00x", "2.00x", "0.50x"]
    assert summary.rows[MODELS_ORDER.index("vgg16")][0] == "vgg16 (training N=2)"
    assert "inference 2.00x, training 0.50x" in summary.caption
    entries = {(e["pass"], e["batch"]): e for e in report.summarize_models(rows)}
    assert math.isclose(entries[("infer", "all")]["speedup_vs_torch_geomean"], 2.0)
    assert entries[("train", "all")]["cases"] == len(MODELS)
    assert report.summarize(rows) == []  # the layer suites' summary ignores whole networks


MODELS_ORDER = list(MODELS)


def test_model_tables_with_both_layouts_lead_with_torchs_best_layout():
    rows = []
    for row in fake_model_rows():
        rows.append(row)
        cl = dict(row, impl=row["impl"] + "_cl", median_s=row["median_s"] / 2)
        rows.append(cl)
        if row["impl"] == "torch":  # torch 2x faster in channels_last, fastconv too
            row["fastconv_best_speedup"] = row["fastconv_speedup"]
    tables = [report.models_table(rows, CONTEXT), *report.models_summary_tables(rows, CONTEXT)]
    for table in tables:
        assert max(map(len, table.terminal().splitlines())) <= report.TERMINAL_WIDTH, table.title
    assert "vs best" in tables[0].headers and "torch CL ms" in tables[0].headers
    assert [t.title.split(" (")[0] for t in tables[1:]] == [
        "Summary: whole networks against torch's best layout",
        "Summary: whole networks",
    ]
    assert tables[1].rows[-1] == ["geomean", "2.00x", "2.00x", "0.50x"]
    entries = {(e["pass"], e["batch"]): e for e in report.summarize_models(rows)}
    assert math.isclose(entries[("train", "all")]["speedup_vs_best_torch_layout_geomean"], 0.5)
