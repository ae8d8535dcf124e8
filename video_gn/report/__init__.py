"""Runs -> the paper's Table 8 layout (Markdown + CSV) and PNG plots.

    python -m video_gn.report logs/multiruns/2026-11-22_12-00-00 [more run dirs] [--out DIR]

Reads every ``results.json`` below the given folders. Runs are grouped by every setting that changes
the number; only seeds are averaged (mean ± std, n). One table per *context* — dataset, network,
init, devices, epochs and evaluation protocol — each named; inside it rows are norms and columns
"frames×stride / clips per device". Protocols never mix: the multi-view test is one table, the best
single-view validation (of runs without a test) another. The paper's Table 8 numbers stand beside
ours only where the setting matches theirs (Kinetics-400, I3D, ImageNet-inflated init, 8 devices,
10×3 views on val). Under each table, a verdict per norm: the drop from the largest to the smallest
clips per device. Plots: top-1 vs clips per device (error bars over seeds) and val top-1 per epoch.
Given one run, also its per-class results from ``predictions.csv``: the confusion matrix (class
names on the axes; with many classes, those of the most-confused pairs), per-class top-1 bars and
``confused_pairs.csv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError, one_line_errors
from .cells import tables
from .plots import plot_accuracy_vs_batch, plot_error_vs_batch, plot_training_curves, run_plots
from .runs import load_runs
from .writers import write_csv, write_markdown


def report(paths: list[Path], out: Path) -> dict[str, Path]:
    runs = load_runs(paths)
    all_tables = tables(runs)
    if not all_tables:
        raise UserError(f"no run under {', '.join(map(str, paths))} has a test or validation result")
    out.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out / "table8.md", "csv": out / "table8.csv",
             "accuracy_plot": out / "accuracy_vs_batch.png", "error_plot": out / "val_error_vs_batch.png",
             "curves_plot": out / "val_top1_curves.png"}
    write_markdown(all_tables, files["markdown"])
    write_csv(all_tables, files["csv"])
    plot_accuracy_vs_batch(all_tables, files["accuracy_plot"])
    plot_error_vs_batch(all_tables, files["error_plot"])
    plot_training_curves(runs, files["curves_plot"])
    if len(runs) == 1:  # one run: its per-class results
        files.update(run_plots(runs[0], out))
    return files


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m video_gn.report", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run dirs, multirun dirs or results.json files")
    p.add_argument("--out", type=Path, default=None, help="default: <first path>/report")
    a = p.parse_args(argv)
    with one_line_errors():
        files = report(a.runs, a.out or a.runs[0] / "report")
    print(files["markdown"].read_text())
    for name, path in files.items():
        print(f"{name}: {path}")

