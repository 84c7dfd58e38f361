"""Presenting results: terminal tables (rich when installed, plain text otherwise), the per-suite
summary (geometric means), CSV / JSON / markdown files and PNG plots (matplotlib when installed).

A result row is one (case, pass, implementation): see run.measure_case for its fields.
"""

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .workloads import FASTCONV_IMPLS, PASSES, REFERENCES, counterpart

try:
    import rich.console
    import rich.table
except ImportError:  # optional: plain text tables instead
    rich = None


@dataclass
class Table:
    title: str
    headers: List[str]
    rows: List[List[str]]
    caption: str = ""

    def print(self) -> None:
        if rich is not None:
            table = rich.table.Table(title=self.title, caption=self.caption or None, title_justify="left",
                                     caption_justify="left")
            for i, header in enumerate(self.headers):
                table.add_column(header, justify="left" if i == 0 else "right", no_wrap=i == 0)
            for row in self.rows:
                table.add_row(*[_colour(cell) for cell in row])
            # As wide as the table needs (a narrower terminal wraps lines, rather than rich
            # squeezing the cells into several lines each).
            rich.console.Console(width=max(80, len(self._plain().splitlines()[0]) + 3 * len(self.headers))).print(table)
            return
        print(f"\n{self.title}\n" + self._plain())
        if self.caption:
            print(self.caption)

    def _plain(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h)
                  for i, h in enumerate(self.headers)]
        line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                       for i, (c, w) in enumerate(zip(cells, widths)))
        return "\n".join([line(self.headers), line(["-" * w for w in widths])] + [line(r) for r in self.rows])

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.headers) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(self.headers) - 1)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.caption:
            lines += ["", self.caption]
        return "\n".join(lines) + "\n"


def _colour(cell: str) -> str:
    """Speedups (cells like '1.23x') green when fastconv is faster, red when slower."""
    if cell.endswith("x") and cell[:-1].replace(".", "", 1).isdigit():
        return f"[green]{cell}[/]" if float(cell[:-1]) >= 1 else f"[red]{cell}[/]"
    return cell


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


def set_fractions_of_peak(rows: List[dict], peaks: dict) -> None:
    """Convolutions against the GEMM's GFLOP/s, pooling against the copy's GB/s."""
    for row in rows:
        row["fraction_of_peak"] = row["rate"] / (peaks["gemm_gflops"] if row["op"] == "conv2d" else peaks["copy_gbs"])


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
    headers = ["layer", "N", "shape", "count", "pass",
               *[h for impl in fasts for h in (f"{impl} ms", f"{_impl_prefix(impl)}{unit}",
                                               f"{_impl_prefix(impl)}of peak")],
               *[_versus(op, ref) for ref in refs], "workspace MiB"]
    table_rows = []
    for (layer, batch, pass_name), impls in _by_case_and_pass(rows).items():
        fast = impls["fastconv"]
        workspace = fast.get("workspace_bytes")
        cells = []
        for impl in fasts:
            row = impls.get(impl)
            cells += (["-"] * 3 if row is None else
                      [f"{1e3 * row['median_s']:.3f}", f"{row['rate']:.1f}", _percent(row["fraction_of_peak"])])
        table_rows.append([
            layer, str(batch), fast["shape"], str(fast["count"]), pass_name, *cells,
            *[_speedup(impls[ref]["fastconv_speedup"]) if ref in impls else "-" for ref in refs],
            "-" if workspace is None else f"{workspace / 2**20:.2f}",
        ])
    backends = defaultdict(set)
    for row in rows:
        backends[row["impl"]].add(row["backend"])
    peak = (f"{peaks['gemm_size']}^3 GEMM {peaks['gemm_gflops']:.3g} GFLOP/s" if op == "conv2d"
            else f"copy {peaks['copy_gbs']:.3g} GB/s")
    pairs = "; ".join(f"{_versus(op, ref)} = {ref}'s time / {counterpart(op, ref)}'s time" for ref in refs
                      if counterpart(op, ref) != "fastconv")
    caption = (f"vs REF = REF's time / fastconv's time (>1: fastconv faster){'; ' + pairs if pairs else ''}. "
               f"Peak: {peak}. "
               + "; ".join(f"{impl} ran on {', '.join(sorted(backends[impl]))}"
                           for impl in (*refs, *fasts[1:]) if impl in backends))
    return Table(f"{suite} ({context})", headers, table_rows, caption)


def summarize(rows: List[dict]) -> List[dict]:
    """Per suite, batch and pass: geometric mean over the distinct layers of fastconv's speedup
    over each reference (against the fastconv implementation that takes the same input), the whole
    network's speedup (every layer weighted by how often the network runs it: sum of count *
    time), and each fastconv implementation's geometric-mean rate and fraction of peak."""
    groups: Dict[tuple, List[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["suite"], row["op"], row["batch"], row["pass"])].append(row)
    summary = []
    for (suite, op, batch, pass_name), group in groups.items():
        fast = [r for r in group if r["impl"] == "fastconv"]
        entry = {"suite": suite, "op": op, "batch": batch, "pass": pass_name, "layers": len(fast)}
        for impl in FASTCONV_IMPLS[op]:
            impl_rows = [r for r in group if r["impl"] == impl]
            entry[f"{impl}_rate_geomean"] = geomean([r["rate"] for r in impl_rows])
            entry[f"{impl}_fraction_of_peak_geomean"] = geomean([r["fraction_of_peak"] for r in impl_rows])
        for ref in REFERENCES[op]:
            fast_time = {r["layer"]: r["median_s"] for r in group if r["impl"] == counterpart(op, ref)}
            ref_rows = [r for r in group if r["impl"] == ref and r["layer"] in fast_time]
            entry[f"speedup_vs_{ref}_geomean"] = geomean([r["fastconv_speedup"] for r in ref_rows])
            network_fast = sum(r["count"] * fast_time[r["layer"]] for r in ref_rows)
            network_ref = sum(r["count"] * r["median_s"] for r in ref_rows)
            entry[f"speedup_vs_{ref}_network"] = network_ref / network_fast if network_fast else float("nan")
            entry[f"{ref}_fraction_of_peak_geomean"] = geomean([r["fraction_of_peak"] for r in ref_rows])
        summary.append(entry)
    return summary


def summary_tables(summary: List[dict], context: str) -> List[Table]:
    tables = []
    for op in REFERENCES:
        entries = [e for e in summary if e["op"] == op]
        if not entries:
            continue
        refs = REFERENCES[op]
        fasts = FASTCONV_IMPLS[op]
        headers = ["suite", "N", "pass", "layers",
                   *[h for ref in refs for h in (f"{_versus(op, ref)} (geomean)", f"{_versus(op, ref)} (network)")],
                   f"fastconv {rate_unit(op)} (geomean)", *[f"{impl} of peak" for impl in fasts],
                   *[f"{ref} of peak" for ref in refs]]
        rows = [[e["suite"], str(e["batch"]), e["pass"], str(e["layers"]),
                 *[_speedup(e[f"speedup_vs_{ref}_{kind}"]) for ref in refs for kind in ("geomean", "network")],
                 f"{e['fastconv_rate_geomean']:.1f}",
                 *[_percent(e[f"{impl}_fraction_of_peak_geomean"]) for impl in fasts],
                 *[_percent(e[f"{ref}_fraction_of_peak_geomean"]) for ref in refs]]
                for e in entries]
        peak = "a large GEMM's rate in this dtype" if op == "conv2d" else "a 256 MiB copy's bandwidth"
        pairs = "".join(f" {_versus(op, ref)}: {ref}'s time / {counterpart(op, ref)}'s time (same input)."
                        for ref in refs if counterpart(op, ref) != "fastconv")
        caption = ("vs REF: REF's time / fastconv's time, >1 means fastconv is faster; geomean over the "
                   "distinct layers, network = whole network's time (layers weighted by how often they "
                   f"occur).{pairs} Of peak: geomean fraction of {peak}, the best of the measurements taken "
                   "before each suite and at the end of this run.")
        tables.append(Table(f"Summary: {op} ({context})", headers, rows, caption))
    return tables


def beyond_cache_table(rows: List[dict], context: str, cache_bytes: Optional[int]) -> Optional[Table]:
    """Memory-bound ops (pooling) on cases whose tensors do not fit in the last-level cache: every
    implementation's fraction of the copy's bandwidth, case by case, and their geometric mean."""
    pool_rows = [r for r in rows if r["op"] != "conv2d" and r.get("fits_in_cache") is False]
    if not pool_rows:
        return None
    impls = list(dict.fromkeys(r["impl"] for r in pool_rows))
    headers = ["layer", "N", "pass", "tensors MiB", *[f"{impl} of peak" for impl in impls]]
    grouped = _by_case_and_pass(pool_rows)
    table_rows = [[layer, str(batch), pass_name, f"{next(iter(by_impl.values()))['footprint_bytes'] / 2**20:.0f}",
                   *[_percent(by_impl[i]["fraction_of_peak"]) if i in by_impl else "-" for i in impls]]
                  for (layer, batch, pass_name), by_impl in grouped.items()]
    for pass_name in PASSES:
        selected = [by_impl for key, by_impl in grouped.items() if key[2] == pass_name]
        if selected:
            table_rows.append(["geomean", "", pass_name, "",
                               *[_percent(geomean([s[i]["fraction_of_peak"] for s in selected if i in s]))
                                 for i in impls]])
    caption = (f"Cases whose tensors (forward: input, values, switches) exceed the {cache_bytes / 2**20:.0f} MiB "
               "last-level cache. Of peak: bytes moved (each tensor read or written once) per second, over "
               "the copy's bandwidth (bytes read plus written, into a tensor allocated once). With glibc's "
               "malloc, outputs of more than 32 MiB (its largest mmap threshold) are fresh pages from the OS "
               "on every call, for every implementation: page faults then take much of the time.")
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


def _label_2_and_5(value: float, _position) -> str:
    """Minor log-axis labels at 2 and 5 times a power of ten only, so they stay legible."""
    leading = value / 10 ** math.floor(math.log10(value)) if value > 0 else 0
    return f"{value:g}x" if round(leading, 6) in (2, 5) else ""


def plot_suite(suite: str, op: str, rows: List[dict], context: str, out_dir: Path) -> List[Path]:
    """Two PNGs: fastconv's speedup over each reference per layer (log scale, line at 1: above it
    fastconv is faster) and every implementation's fraction of peak per layer; a panel per pass."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, PercentFormatter
    except ImportError:
        return []
    grouped = _by_case_and_pass(rows)
    passes = [p for p in PASSES if any(key[2] == p for key in grouped)]
    labels = list(dict.fromkeys(f"{layer} N={batch}" for layer, batch, _ in grouped))
    refs = REFERENCES[op]
    impls = FASTCONV_IMPLS[op] + refs
    written = []
    for kind, series, ylabel in (
        ("speedup", refs, "fastconv speedup (ref time / fastconv time)"),
        ("peak", impls, f"of peak ({'GEMM GFLOP/s' if op == 'conv2d' else 'copy GB/s'})"),
    ):
        fig, axes = plt.subplots(len(passes), 1, figsize=(max(8, 0.45 * len(labels) + 3), 3.2 * len(passes)),
                                 squeeze=False, sharex=True)
        width = 0.8 / len(series)
        for ax, pass_name in zip(axes[:, 0], passes):
            for i, name in enumerate(series):
                values = []
                for label in labels:
                    layer, batch = label.rsplit(" N=", 1)
                    row = grouped.get((layer, int(batch), pass_name), {}).get(name)
                    value = None if row is None else (row["fastconv_speedup"] if kind == "speedup"
                                                      else row["fraction_of_peak"])
                    values.append(float("nan") if value is None else value)
                legend = (f"{counterpart(op, name)} vs {name}" if kind == "speedup" else name)
                ax.bar([x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))], values, width,
                       label=legend)
            if kind == "speedup":
                ax.set_yscale("log")
                ax.axhline(1.0, color="black", linewidth=0.8)
                ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
                ax.yaxis.set_minor_formatter(FuncFormatter(_label_2_and_5))
                ax.tick_params(axis="y", which="minor", labelsize=7)
            else:
                ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_title(f"{suite}: {pass_name}", fontsize=10)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.grid(axis="y", alpha=0.3, which="both")
            ax.legend(fontsize=8)
        axes[-1, 0].set_xticks(range(len(labels)))
        axes[-1, 0].set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
        fig.suptitle(f"{suite} ({context})", fontsize=11)
        fig.tight_layout()
        path = out_dir / f"{suite}_{kind}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
