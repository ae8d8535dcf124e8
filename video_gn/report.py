"""Runs -> the paper's Table 8 layout (Markdown + CSV) and PNG plots.

    python -m video_gn.report logs/multiruns/2026-11-22_12-00-00 [more run dirs] [--out DIR]

Reads every ``results.json`` below the given folders. The table has rows BN/GN (and any other
norm), columns "clip length / clips per GPU", cells "top-1 / top-5" of the multi-view test (best
validation where a run has no test). For Kinetics-400 the paper's numbers stand beside ours.
Plots: accuracy vs clips per GPU per norm, and validation top-1 per epoch of every run.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# GN paper, arXiv 1803.08494 Table 8: (frames, clips per GPU) -> norm -> (top-1, top-5), K400 val.
PAPER_TABLE8 = {
    (32, 8): {"bn": (73.3, 90.7), "gn": (73.0, 90.6)},
    (32, 4): {"bn": (72.1, 90.0), "gn": (72.8, 90.6)},
    (64, 4): {"bn": (73.3, 90.8), "gn": (74.5, 91.7)},
}


def load_runs(paths: list[Path]) -> list[dict]:
    runs = []
    for root in paths:
        files = [root] if root.name == "results.json" else sorted(root.rglob("results.json"))
        for f in files:
            r = json.loads(f.read_text())
            r["run_dir"] = str(f.parent)
            runs.append(r)
    if not runs:
        raise FileNotFoundError(f"no results.json under {', '.join(map(str, paths))}")
    return runs


def _accuracy(run: dict) -> tuple[float | None, float | None]:
    """Percent top-1/top-5: the multi-view test, else the best validation."""
    top1 = run.get("test_top1") if run.get("test_top1") is not None else run.get("best_val_top1")
    top5 = run.get("test_top5") if run.get("test_top5") is not None else run.get("best_val_top5")
    return (None if top1 is None else 100 * top1, None if top5 is None else 100 * top5)


def cells(runs: list[dict]) -> dict[tuple[str, int, int], dict]:
    """(norm, frames, clips per GPU) -> mean accuracy over the runs of that cell (e.g. seeds)."""
    grouped = defaultdict(list)
    for r in runs:
        grouped[(r["norm"], r["frames_per_clip"], r["batch_size_per_device"])].append(r)
    out = {}
    for key, rs in grouped.items():
        accs = [_accuracy(r) for r in rs]
        top1 = [a for a, _ in accs if a is not None]
        top5 = [b for _, b in accs if b is not None]
        out[key] = {"top1": sum(top1) / len(top1) if top1 else None,
                    "top5": sum(top5) / len(top5) if top5 else None, "runs": len(rs),
                    "dataset": rs[0].get("dataset", ""), "run_dirs": [r["run_dir"] for r in rs]}
    return out


def _fmt(top1, top5) -> str:
    return "–" if top1 is None else f"{top1:.1f} / {top5:.1f}"


def table_rows(table: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the Markdown table (paper's layout)."""
    columns = sorted({(f, b) for _, f, b in table}, key=lambda c: (c[0], -c[1]))
    norms = sorted({n for n, _, _ in table}, key=lambda n: (n not in ("bn", "gn"), n))
    kinetics = any(c["dataset"] == "kinetics400" for c in table.values())
    header = ["norm"] + [f"{f} frames / {b} clips per GPU" for f, b in columns]
    rows = []
    for norm in norms:
        row = [norm.upper()]
        for f, b in columns:
            cell = table.get((norm, f, b))
            text = _fmt(cell["top1"], cell["top5"]) if cell else "–"
            paper = PAPER_TABLE8.get((f, b), {}).get(norm)
            if kinetics and paper:
                text += f" (paper {paper[0]:.1f} / {paper[1]:.1f})"
            row.append(text)
        rows.append(row)
    return header, rows


def write_markdown(table: dict, path: Path) -> None:
    header, rows = table_rows(table)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append("")
    lines.append("Cells: top-1 / top-5 (%), multi-view test (best validation where a run has no test).")
    path.write_text("\n".join(lines) + "\n")


def write_csv(table: dict, path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["norm", "frames_per_clip", "batch_size_per_device", "top1", "top5", "runs",
                    "paper_top1", "paper_top5", "run_dirs"])
        for (norm, frames, batch), c in sorted(table.items()):
            paper = PAPER_TABLE8.get((frames, batch), {}).get(norm) \
                if c["dataset"] == "kinetics400" else None
            w.writerow([norm, frames, batch, c["top1"], c["top5"], c["runs"],
                        paper[0] if paper else "", paper[1] if paper else "", ";".join(c["run_dirs"])])


def plot_accuracy_vs_batch(table: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for norm in sorted({n for n, _, _ in table}):
        for frames in sorted({f for _, f, _ in table}):
            points = sorted((b, c["top1"]) for (n, f, b), c in table.items()
                            if n == norm and f == frames and c["top1"] is not None)
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=f"{norm.upper()}, {frames} frames")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("clips per GPU")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("Accuracy vs batch size per device")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def validation_curve(run: dict) -> list[tuple[int, float]]:
    """(epoch, val top-1 %) from the run's CSV log, else from results.json's history."""
    metrics = Path(run["run_dir"]) / "csv" / "metrics.csv"
    if metrics.is_file():
        with metrics.open(newline="") as f:
            points = [(int(r["epoch"]), 100 * float(r["val/top1"])) for r in csv.DictReader(f)
                      if r.get("val/top1")]
        if points:
            return points
    return [(h["epoch"], 100 * h["top1"]) for h in run.get("val_history", [])]


def plot_training_curves(runs: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in runs:
        points = validation_curve(r)
        if points:
            label = f"{r['norm'].upper()} {r['frames_per_clip']}f b{r['batch_size_per_device']}"
            ax.plot(*zip(*points, strict=True), marker=".", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val top-1 (%)")
    ax.set_title("Validation accuracy during training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(paths: list[Path], out: Path) -> dict[str, Path]:
    runs = load_runs(paths)
    table = cells(runs)
    out.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out / "table8.md", "csv": out / "table8.csv",
             "accuracy_plot": out / "accuracy_vs_batch.png", "curves_plot": out / "val_top1_curves.png"}
    write_markdown(table, files["markdown"])
    write_csv(table, files["csv"])
    plot_accuracy_vs_batch(table, files["accuracy_plot"])
    plot_training_curves(runs, files["curves_plot"])
    return files


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m video_gn.report", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run dirs, multirun dirs or results.json files")
    p.add_argument("--out", type=Path, default=None, help="default: <first path>/report")
    a = p.parse_args(argv)
    files = report(a.runs, a.out or a.runs[0] / "report")
    print(files["markdown"].read_text())
    for name, path in files.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
