"""Presenting results: terminal tables (plain text, at most 120 columns), the per-suite summary
(geometric means), CSV / JSON / markdown files and PNG plots (matplotlib when installed).

A result row is one (case, pass, implementation): see run.measure_case for its fields.
"""

import csv
import json
import math
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .workloads import FASTCONV_IMPLS, PASSES, REFERENCES, counterpart

TERMINAL_WIDTH = 120
GAP = "  "


@dataclass
class Table:
    """A table for the terminal and for summary.md. The terminal gets the columns not named in
    `markdown_only`, headers wrapped over several lines to the width of their column, and the
    caption wrapped, so that it fits TERMINAL_WIDTH columns; summary.md gets everything."""

    title: str
    headers: List[str]
    rows: List[List[str]]
    caption: str = ""
    markdown_only: List[str] = field(default_factory=list)

    def print(self) -> None:
        print(self.terminal())

    def terminal(self) -> str:
        keep = [i for i, h in enumerate(self.headers) if h not in self.markdown_only]
        while True:
            text = self._render(keep)
            if max(map(len, text.splitlines())) <= TERMINAL_WIDTH or len(keep) <= 2:
                return text
            keep = keep[:-1]  # a last resort (very long names): summary.md has every column

    def _render(self, keep: List[int]) -> str:
        headers = [self.headers[i] for i in keep]
        rows = [[row[i] for i in keep] for row in self.rows]
        widths = []
        for i, header in enumerate(headers):
            cells = max((len(r[i]) for r in rows), default=0)
            longest_word = max(len(word) for word in header.split())
            widths.append(max(cells, longest_word, 4))
        header_lines = [textwrap.wrap(h, w) for h, w in zip(headers, widths)]
        widths = [max(w, *(len(line) for line in lines)) for w, lines in zip(widths, header_lines)]
        depth = max(len(lines) for lines in header_lines)
        header_lines = [
            [""] * (depth - len(lines)) + lines for lines in header_lines
        ]  # bottom-aligned

        def line(cells):
            return GAP.join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
            ).rstrip()

        text = textwrap.wrap(self.title, TERMINAL_WIDTH)
        text += [line([lines[k] for lines in header_lines]) for k in range(depth)]
        text += [line(["-" * w for w in widths])] + [line(r) for r in rows]
        if self.caption:
            text += textwrap.wrap(self.caption, TERMINAL_WIDTH)
        return "\n" + "\n".join(text)

    def markdown(self) -> str:
        lines = [
            f"**{self.title}**",
            "",
            "| " + " | ".join(self.headers) + " |",
            "|" + "|".join(["---"] + ["---:"] * (len(self.headers) - 1)) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.caption:
            lines += ["", self.caption]
        return "\n".join(lines) + "\n"


def geomean(values: Sequence[float]) -> float:
    values = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def _speedup(value: Optional[float]) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}x"


def _percent(value: Optional[float]) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.0f}%"


def rate_unit(op: str) -> str:
    return "GFLOP/s" if op == "conv2d" else "GB/s"


def _by_case_and_pass(rows: List[dict]) -> Dict[tuple, Dict[str, dict]]:
    """{(layer, batch, pass): {impl: row}}, in the order the rows came."""
    grouped: Dict[tuple, Dict[str, dict]] = {}
    for row in rows:
        grouped.setdefault((row["layer"], row["batch"], row["pass"]), {})[row["impl"]] = row
    return grouped


def _impl_prefix(impl: str) -> str:
    """Column prefix of a fastconv implementation: none for the main one ("fastconv ms", "of
    peak"), its suffix for the others ("cl ms", "cl of peak")."""
    return "" if impl == "fastconv" else impl.replace("fastconv_", "") + " "


def _versus(op: str, ref: str) -> str:
    fast = counterpart(op, ref)
    return f"vs {ref}" if fast == "fastconv" else f"{fast.replace('fastconv_', '')} vs {ref}"


def suite_table(suite: str, op: str, rows: List[dict], peaks: dict, context: str) -> Table:
    refs = REFERENCES[op]
    fasts = FASTCONV_IMPLS[op]
    unit = rate_unit(op)
    headers = [
        "layer",
        "N",
        "shape",
        "count",
        "pass",
        *[
            h
            for impl in fasts
            for h in (f"{impl} ms", f"{_impl_prefix(impl)}{unit}", f"{_impl_prefix(impl)}of peak")
        ],
        *[_versus(op, ref) for ref in refs],
        "workspace MiB",
    ]
    table_rows = []
    for (layer, batch, pass_name), impls in _by_case_and_pass(rows).items():
        fast = impls["fastconv"]
        workspace = fast.get("workspace_bytes")
        cells = []
        for impl in fasts:
            row = impls.get(impl)
            cells += (
                ["-"] * 3
                if row is None
                else [
                    f"{1e3 * row['median_s']:.3f}",
                    f"{row['rate']:.1f}",
                    _percent(row["fraction_of_peak"]),
                ]
            )
        table_rows.append(
            [
                layer,
                str(batch),
                fast["shape"],
                str(fast["count"]),
                pass_name,
                *cells,
                *[
                    _speedup(impls[ref]["fastconv_speedup"]) if ref in impls else "-"
                    for ref in refs
                ],
                "-" if workspace is None else f"{workspace / 2**20:.2f}",
            ]
        )
    backends = defaultdict(set)
    for row in rows:
        backends[row["impl"]].add(row["backend"])
    pairs = "; ".join(
        f"{_versus(op, ref)} = {ref}'s time / {counterpart(op, ref)}'s time"
        for ref in refs
        if counterpart(op, ref) != "fastconv"
    )
    caption = (
        "vs REF = REF's time / fastconv's time (>1: fastconv "
        f"faster){'; ' + pairs if pairs else ''}. Of peak: {peak_description(op, peaks)}. "
        + "; ".join(
            f"{impl} ran on {', '.join(sorted(backends[impl]))}"
            for impl in (*refs, *fasts[1:])
            if impl in backends
        )
        + ". Full table (shapes, counts): summary.md."
    )
    return Table(
        f"{suite} ({context})", headers, table_rows, caption, markdown_only=["shape", "count"]
    )


def peak_description(op: str, peaks: dict) -> str:
    if op == "conv2d":
        what = f"the rate of a {peaks['gemm_size']}^3 {peaks['gemm_dtype']} GEMM"
    else:
        what = (
            f"the bandwidth of a {peaks['copy_bytes'] // 2**21} MiB copy (bytes read plus written)"
        )
    return f"fraction of {what}, timed in the same interleaved rounds as each case"


def summarize(rows: List[dict]) -> List[dict]:
    """Per suite, batch and pass: geometric mean over the distinct layers of fastconv's speedup
    over each reference (against the fastconv implementation that takes the same input), the whole
    network's speedup (every layer weighted by how often the network runs it: sum of count *
    time), and each fastconv implementation's geometric-mean rate and fraction of peak."""
    groups: Dict[tuple, List[dict]] = defaultdict(list)
    for row in (r for r in rows if r["op"] in REFERENCES):  # the layer suites' rows
        groups[(row["suite"], row["op"], row["batch"], row["pass"])].append(row)
    summary = []
    for (suite, op, batch, pass_name), group in groups.items():
        fast = [r for r in group if r["impl"] == "fastconv"]
        entry = {"suite": suite, "op": op, "batch": batch, "pass": pass_name, "layers": len(fast)}
        for impl in FASTCONV_IMPLS[op]:
            impl_rows = [r for r in group if r["impl"] == impl]
            entry[f"{impl}_rate_geomean"] = geomean([r["rate"] for r in impl_rows])
            entry[f"{impl}_fraction_of_peak_geomean"] = geomean(
                [r["fraction_of_peak"] for r in impl_rows]
            )
        for ref in REFERENCES[op]:
            fast_time = {
                r["layer"]: r["median_s"] for r in group if r["impl"] == counterpart(op, ref)
            }
            ref_rows = [r for r in group if r["impl"] == ref and r["layer"] in fast_time]
            entry[f"speedup_vs_{ref}_geomean"] = geomean([r["fastconv_speedup"] for r in ref_rows])
            network_fast = sum(r["count"] * fast_time[r["layer"]] for r in ref_rows)
            network_ref = sum(r["count"] * r["median_s"] for r in ref_rows)
            entry[f"speedup_vs_{ref}_network"] = (
                network_ref / network_fast if network_fast else float("nan")
            )
            entry[f"{ref}_fraction_of_peak_geomean"] = geomean(
                [r["fraction_of_peak"] for r in ref_rows]
            )
        summary.append(entry)
    return summary


def summary_tables(summary: List[dict], context: str, peaks: dict) -> List[Table]:
    tables = []
    for op in REFERENCES:
        entries = [e for e in summary if e["op"] == op]
        if not entries:
            continue
        refs = REFERENCES[op]
        fasts = FASTCONV_IMPLS[op]
        headers = [
            "suite",
            "N",
            "pass",
            "layers",
            *[
                h
                for ref in refs
                for h in (f"{_versus(op, ref)} (geomean)", f"{_versus(op, ref)} (network)")
            ],
            f"fastconv {rate_unit(op)} (geomean)",
            *[f"{impl} of peak" for impl in fasts],
            *[f"{ref} of peak" for ref in refs],
        ]
        rows = [
            [
                e["suite"],
                str(e["batch"]),
                e["pass"],
                str(e["layers"]),
                *[
                    _speedup(e[f"speedup_vs_{ref}_{kind}"])
                    for ref in refs
                    for kind in ("geomean", "network")
                ],
                f"{e['fastconv_rate_geomean']:.1f}",
                *[_percent(e[f"{impl}_fraction_of_peak_geomean"]) for impl in fasts],
                *[_percent(e[f"{ref}_fraction_of_peak_geomean"]) for ref in refs],
            ]
            for e in entries
        ]
        pairs = "".join(
            f" {_versus(op, ref)}: {ref}'s time / {counterpart(op, ref)}'s time (same input)."
            for ref in refs
            if counterpart(op, ref) != "fastconv"
        )
        caption = (
            "vs REF: REF's time / fastconv's time, >1 means fastconv is faster; geomean over the "
            "distinct layers, network = whole network's time (layers weighted by how often they "
            f"occur).{pairs} Of peak: geomean {peak_description(op, peaks)}. Fractions above "
            "100% are real, not noise: pooling tensors that fit in the cache move faster than a "
            "copy through memory, and Winograd or FFT convolutions do fewer FLOPs than counted."
        )
        tables.append(
            Table(
                f"Summary: {op} ({context})",
                headers,
                rows,
                caption,
                markdown_only=["layers", f"fastconv {rate_unit(op)} (geomean)"],
            )
        )
    return tables


# ------------------------------------------------------------------------------- whole networks


def _models_by_case(rows: List[dict]) -> Dict[tuple, Dict[str, dict]]:
    """{(model, pass, batch): {impl: row}}, in the order the rows came."""
    grouped: Dict[tuple, Dict[str, dict]] = {}
    for row in rows:
        grouped.setdefault((row["model"], row["pass"], row["batch"]), {})[row["impl"]] = row
    return grouped


def _model_columns(rows: List[dict]) -> List[tuple]:
    """(pass, batch or None) per column of the whole-network table: inference at each batch, the
    training step at each network's own batch (one column)."""
    keys = list(
        dict.fromkeys((r["pass"], r["batch"] if r["pass"] == "infer" else None) for r in rows)
    )
    return sorted(keys, key=lambda k: (k[0] != "infer", k[1] or 0))


def _column_name(pass_name: str, batch: Optional[int], rows: List[dict]) -> str:
    if pass_name == "infer":
        return f"inference N={batch}"
    batches = sorted({r["batch"] for r in rows if r["pass"] == pass_name})
    return (
        f"training step N={'/'.join(map(str, batches))}"
        if len(batches) > 1
        else f"training step N={batches[0]}"
    )


def _speedups(rows: List[dict], field: str) -> Dict[tuple, float]:
    """{(model, pass, batch or None for training): the NCHW original's row's `field`}."""
    return {
        (r["model"], r["pass"], r["batch"] if r["pass"] == "infer" else None): r[field]
        for r in rows
        if r["impl"] == "torch" and r.get(field) is not None
    }


def summarize_models(rows: List[dict]) -> List[dict]:
    """Geometric means of the converted networks' speedup (original's time / converted's time, both
    NCHW; and torch's faster layout against fastconv's, where both were timed): per inference
    batch, over all inference cases, and over the training steps."""
    groups: Dict[tuple, List[tuple]] = defaultdict(list)
    for r in rows:
        if r["impl"] != "torch":
            continue
        pair = (r["fastconv_speedup"], r.get("fastconv_best_speedup"))
        if r["pass"] == "infer":
            groups[(r["pass"], r["batch"])].append(pair)
        groups[(r["pass"], "all")].append(pair)
    summaries = []
    for (pass_name, batch), pairs in groups.items():
        values = [p[0] for p in pairs]
        entry = {
            "suite": "models",
            "op": "model",
            "pass": pass_name,
            "batch": batch,
            "cases": len(values),
            "speedup_vs_torch_geomean": geomean(values),
            "speedup_vs_torch_min": min(values),
        }
        best = [p[1] for p in pairs if p[1] is not None]
        if best and len(best) == len(pairs):
            entry["speedup_vs_best_torch_layout_geomean"] = geomean(best)
            entry["speedup_vs_best_torch_layout_min"] = min(best)
        summaries.append(entry)
    return summaries


def models_table(rows: List[dict], context: str) -> Table:
    """Every network case: the times in both layouts, images per second, the speedups and the
    check's errors."""
    cases = _models_by_case(rows)
    with_cl = all("fastconv_cl" in impls and "torch_cl" in impls for impls in cases.values())
    headers = ["model", "pass", "N", "fastconv ms", "torch ms"]
    if with_cl:
        headers += ["fastconv CL ms", "torch CL ms"]
    headers += ["fastconv img/s", "torch img/s", "vs torch"]
    if with_cl:
        headers += ["vs torch (CL)", "vs best"]
    headers += ["layers converted", "error (fastconv / torch)"]
    table_rows = []
    for (model, pass_name, batch), impls in cases.items():
        fast, ref = impls["fastconv"], impls["torch"]
        check = fast.get("check") or {}
        errors = "; ".join(
            f"{group} {c['fastconv']:.1e} / {c['torch']:.1e}" for group, c in check.items()
        )
        row = [model, pass_name, str(batch)]
        row += [f"{1e3 * fast['median_s']:.1f}", f"{1e3 * ref['median_s']:.1f}"]
        if with_cl:
            row += [f"{1e3 * impls[i]['median_s']:.1f}" for i in ("fastconv_cl", "torch_cl")]
        row += [f"{fast['images_per_s']:.1f}", f"{ref['images_per_s']:.1f}"]
        row.append(_speedup(ref["fastconv_speedup"]))
        if with_cl:
            row += [
                _speedup(impls["torch_cl"]["fastconv_speedup"]),
                _speedup(ref.get("fastconv_best_speedup")),
            ]
        row += [str(fast.get("layers_converted", "-")), errors or "-"]
        table_rows.append(row)
    shapes = ", ".join(sorted({str(r.get("shape")) for r in rows}))
    caption = (
        "vs torch = the original network's time / the converted network's time (>1: fastconv "
        f"faster), medians of interleaved rounds; input {shapes} per image. "
        + (
            "CL: network and input in channels_last; vs best = torch in its faster layout "
            "against fastconv in its faster one. "
            if with_cl
            else ""
        )
        + "infer: eval mode, no_grad; train: one step (train mode, forward, cross-entropy, "
        "backward; no optimizer step). Error against the network in float64 (the worse of "
        "fastconv's two layouts): output, the largest deviation relative to the largest value; "
        "grads, the worst parameter gradient's deviation relative to its norm."
    )
    return Table(
        f"models: torchvision networks converted vs original ({context})",
        headers,
        table_rows,
        caption,
        markdown_only=[
            "fastconv img/s",
            "torch img/s",
            "layers converted",
            "error (fastconv / torch)",
        ],
    )


def _speedup_summary(rows: List[dict], speedup: Dict[tuple, float], title: str, what: str) -> Table:
    columns = _model_columns(rows)
    train_batch = {r["model"]: r["batch"] for r in rows if r["pass"] == "train"}
    usual = max(train_batch.values(), default=0)
    models = list(dict.fromkeys(r["model"] for r in rows))
    table_rows = [
        [
            model
            + (
                f" (training N={train_batch[model]})"
                if train_batch.get(model, usual) != usual
                else ""
            ),
            *[_speedup(speedup.get((model, *column))) for column in columns],
        ]
        for model in models
    ]
    table_rows.append(
        [
            "geomean",
            *[
                _speedup(geomean([speedup[key] for key in speedup if key[1:] == column]))
                for column in columns
            ],
        ]
    )
    overall = [
        f"{'inference' if p == 'infer' else 'training'} "
        f"{_speedup(geomean([v for k, v in speedup.items() if k[1] == p]))}"
        for p in dict.fromkeys(column[0] for column in columns)
    ]
    caption = (
        f"Speedup of fastconv.convert(model, fold_batchnorm=True) (folding acts in inference "
        f"only) = {what}, measured side by side (interleaved rounds, medians); >1 means "
        "converting makes the network faster. Geomeans over all cases: "
        f"{', '.join(overall)}."
    )
    headers = ["model", *[_column_name(*column, rows) for column in columns]]
    return Table(title, headers, table_rows, caption)


def models_summary_tables(rows: List[dict], context: str) -> List[Table]:
    """The whole-network tables: one row per network, a column per (pass, batch), and geomeans;
    against torch's faster layout first, where both layouts were timed, then NCHW against NCHW."""
    if not rows:
        return []
    tables = []
    best = _speedups(rows, "fastconv_best_speedup")
    if best:
        tables.append(
            _speedup_summary(
                rows,
                best,
                f"Summary: whole networks against torch's best layout ({context})",
                "torch's time in its faster layout (NCHW or channels_last) / the converted "
                "network's time in its faster layout",
            )
        )
    tables.append(
        _speedup_summary(
            rows,
            _speedups(rows, "fastconv_speedup"),
            f"Summary: whole networks ({context})",
            "the original's time / the converted network's time, both on NCHW input",
        )
    )
    return tables


def beyond_cache_table(
    rows: List[dict], context: str, cache_bytes: Optional[int]
) -> Optional[Table]:
    """Memory-bound ops (pooling) on cases whose tensors do not fit in the last-level cache: every
    implementation's fraction of the copy's bandwidth, case by case, and their geometric mean."""
    pool_rows = [r for r in rows if r["op"] != "conv2d" and r.get("fits_in_cache") is False]
    if not pool_rows:
        return None
    impls = list(dict.fromkeys(r["impl"] for r in pool_rows))
    headers = ["layer", "N", "pass", "tensors MiB", *[f"{impl} of peak" for impl in impls]]
    grouped = _by_case_and_pass(pool_rows)
    table_rows = [
        [
            layer,
            str(batch),
            pass_name,
            f"{next(iter(by_impl.values()))['footprint_bytes'] / 2**20:.0f}",
            *[_percent(by_impl[i]["fraction_of_peak"]) if i in by_impl else "-" for i in impls],
        ]
        for (layer, batch, pass_name), by_impl in grouped.items()
    ]
    for pass_name in PASSES:
        selected = [by_impl for key, by_impl in grouped.items() if key[2] == pass_name]
        if selected:
            table_rows.append(
                [
                    "geomean",
                    "",
                    pass_name,
                    "",
                    *[
                        _percent(geomean([s[i]["fraction_of_peak"] for s in selected if i in s]))
                        for i in impls
                    ],
                ]
            )
    caption = (
        "Cases whose tensors (forward: input, values, indices) exceed the "
        f"{cache_bytes / 2**20:.0f} MiB last-level cache. Of peak: bytes moved (each tensor read "
        "or written once) per second, over the copy's bandwidth (bytes read plus written, into a "
        "tensor allocated once). With glibc's malloc, outputs of more than 32 MiB (its largest "
        "mmap threshold) are fresh pages from the OS on every call, for every implementation: "
        "page faults then take much of the time."
    )
    return Table(f"max_pool2d beyond the cache ({context})", headers, table_rows, caption)


# ------------------------------------------------------------------------------------------ files


def write_csv(rows: List[dict], path: Path) -> None:
    columns: List[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def write_json(document: dict, path: Path) -> None:
    path.write_text(json.dumps(document, indent=1, default=str, allow_nan=True) + "\n")


def write_markdown(tables: List[Table], header: str, path: Path) -> None:
    path.write_text(header + "\n\n" + "\n".join(t.markdown() for t in tables))


# Candidate ticks of a speedup axis (log scale): the coarse set on wide ranges, the fine set where
# the values lie close to 1x and the coarse one would label 1x alone.
COARSE_TICKS = [
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.3,
    0.5,
    0.7,
    1,
    1.5,
    2,
    3,
    5,
    7,
    10,
    20,
    50,
    100,
    200,
    500,
    1000,
]
FINE_TICKS = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1, 1.05, 1.1, 1.15, 1.2, 1.25, 1.5, 1.75, 2]


def speedup_ticks(low: float, high: float) -> List[float]:
    """Labelled ticks for values between low and high (a range that includes 1): between four
    and about ten, always 1x; a narrow range gets the fine ticks just around it (the axis is then
    stretched to show them)."""
    ticks = [t for t in COARSE_TICKS if low <= t <= high]
    if len(ticks) < 4:
        fine = [t for t in FINE_TICKS if low <= t <= high]
        while len(fine) < 4 and (low > FINE_TICKS[0] or high < FINE_TICKS[-1]):
            low, high = low / 1.05, high * 1.05
            fine = [t for t in FINE_TICKS if low <= t <= high]
        ticks = sorted(set(ticks) | set(fine))
    while len(ticks) > 10:
        ticks = ticks[::2] if 1 in ticks[::2] else ticks[1::2]
    return ticks


def plot_suite(suite: str, op: str, rows: List[dict], context: str, out_dir: Path) -> List[Path]:
    """Two PNGs: fastconv's speedup over each reference per layer (log scale, bars drawn from 1x:
    above it fastconv is faster) and every implementation's fraction of peak per layer; a panel
    per pass, one legend above them all."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator, PercentFormatter
    except ImportError:
        return []
    grouped = _by_case_and_pass(rows)
    passes = [p for p in PASSES if any(key[2] == p for key in grouped)]
    labels = list(dict.fromkeys(f"{layer} N={batch}" for layer, batch, _ in grouped))
    refs = REFERENCES[op]
    impls = FASTCONV_IMPLS[op] + refs
    written = []
    for kind, series, ylabel in (
        ("speedup", refs, "speedup (ref time / fastconv time)"),
        ("peak", impls, f"of peak ({'GEMM GFLOP/s' if op == 'conv2d' else 'copy GB/s'})"),
    ):
        fig, axes = plt.subplots(
            len(passes),
            1,
            figsize=(max(8, 0.45 * len(labels) + 3), 0.6 + 3.0 * len(passes)),
            squeeze=False,
            sharex=True,
        )
        width = 0.8 / len(series)
        values = {
            (pass_name, name): [
                _plot_value(grouped, label, pass_name, name, kind) for label in labels
            ]
            for pass_name in passes
            for name in series
        }
        finite = [v for vs in values.values() for v in vs if math.isfinite(v) and v > 0]
        for ax, pass_name in zip(axes[:, 0], passes):
            for i, name in enumerate(series):
                xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
                legend = f"{counterpart(op, name)} vs {name}" if kind == "speedup" else name
                heights = values[(pass_name, name)]
                if kind == "speedup":  # from 1x up (fastconv faster) or down (slower)
                    ax.bar(xs, [v - 1 for v in heights], width, bottom=1, label=legend)
                else:
                    ax.bar(xs, heights, width, label=legend)
            if kind == "speedup":
                low, high = min(finite + [1.0]) / 1.1, max(finite + [1.0]) * 1.1
                ticks = speedup_ticks(low, high)
                ax.set_yscale("log")
                ax.set_ylim(min(low, ticks[0] / 1.02), max(high, ticks[-1] * 1.02))
                ax.axhline(1.0, color="black", linewidth=0.8)
                ax.yaxis.set_major_locator(FixedLocator(ticks))
                ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
                ax.yaxis.set_minor_locator(NullLocator())
            else:
                ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_title(f"{pass_name}", fontsize=10, loc="left")
            ax.set_ylabel(ylabel, fontsize=8)
            ax.grid(axis="y", alpha=0.3)
        axes[-1, 0].set_xticks(range(len(labels)))
        axes[-1, 0].set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
        handles, names = axes[0, 0].get_legend_handles_labels()
        # Above the panels, below the title: never over a bar.
        fig.legend(
            handles,
            names,
            loc="upper center",
            ncol=len(names),
            fontsize=9,
            frameon=False,
            bbox_to_anchor=(0.5, 1 - 0.45 / fig.get_figheight()),
        )
        fig.suptitle(f"{suite} ({context})", fontsize=11, y=1 - 0.1 / fig.get_figheight(), va="top")
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.75 / fig.get_figheight()))
        path = out_dir / f"{suite}_{kind}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def plot_models(rows: List[dict], context: str, out_dir: Path) -> List[Path]:
    """models_speedup.png: each network's speedup (log scale, bars drawn from 1x), a bar per
    (pass, batch)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    except ImportError:
        return []
    columns = _model_columns(rows)
    models = list(dict.fromkeys(r["model"] for r in rows))
    speedup = {
        (r["model"], r["pass"], r["batch"] if r["pass"] == "infer" else None): r["fastconv_speedup"]
        for r in rows
        if r["impl"] == "torch"
    }
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(models) + 2), 4))
    width = 0.8 / len(columns)
    for i, column in enumerate(columns):
        xs = [x + (i - (len(columns) - 1) / 2) * width for x in range(len(models))]
        heights = [speedup.get((model, *column), float("nan")) for model in models]
        ax.bar(xs, [h - 1 for h in heights], width, bottom=1, label=_column_name(*column, rows))
    finite = [v for v in speedup.values() if v is not None and math.isfinite(v) and v > 0]
    low, high = min(finite + [1.0]) / 1.1, max(finite + [1.0]) * 1.1
    ticks = speedup_ticks(low, high)
    ax.set_yscale("log")
    ax.set_ylim(min(low, ticks[0] / 1.02), max(high, ticks[-1] * 1.02))
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels(models, fontsize=9)
    ax.set_ylabel("speedup (original time / converted time)", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="best")
    ax.set_title(f"models ({context})", fontsize=10)
    fig.tight_layout()
    path = out_dir / "models_speedup.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def _plot_value(grouped, label: str, pass_name: str, impl: str, kind: str) -> float:
    layer, batch = label.rsplit(" N=", 1)
    row = grouped.get((layer, int(batch), pass_name), {}).get(impl)
    value = (
        None
        if row is None
        else (row["fastconv_speedup"] if kind == "speedup" else row["fraction_of_peak"])
    )
    return float("nan") if value is None else value
