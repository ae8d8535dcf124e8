"""PNG plots of the report: top-1 vs clips per device (95% intervals over seeds), the paper's
Figure 1 on its own metric (error of the final-5 median vs clips per device), val top-1 per epoch,
and for one run its confusion matrix and per-class top-1 (from ``predictions.csv``).
"""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import matplotlib
import numpy as np

from ..record.predictions import TOP, confusion_matrix, per_class_top1, read_predictions
from .cells import Cell, CellKey, Context, norm_order
from .runs import validation_curve
from .stats import t_interval

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _ci_half_widths(cells: list[Cell]) -> list[float]:
    """Half the 95% t-interval of each cell's mean (0 for a single run)."""
    out = []
    for c in cells:
        e = t_interval(c.top1)
        out.append(0.0 if e.high is None else (e.high - e.low) / 2)
    return out


def plot_accuracy_vs_batch(all_tables: dict[Context, dict[CellKey, Cell]], path: Path) -> None:
    """One panel per context (the GN paper's Figure 1 layout): top-1 vs clips per device, a line per
    norm and clip setting, the mean over seeds with its 95% t-interval."""
    n = len(all_tables)
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 4.2), squeeze=False)
    for ax, (context, table) in zip(axes[0], all_tables.items(), strict=True):
        for norm in norm_order({k[0] for k in table}):
            for f, s in sorted({(k[1], k[2]) for k in table if k[0] == norm}):
                cells = sorted((k[3], c) for k, c in table.items() if k[:3] == (norm, f, s))
                ax.errorbar([b for b, _ in cells], [c.mean() for _, c in cells],
                            yerr=_ci_half_widths([c for _, c in cells]), marker="o", capsize=4,
                            label=f"{norm.upper()}, {f}×{s} frames")
        ax.set_xscale("log", base=2)
        batches = sorted({k[3] for k in table})
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_xlabel("clips per device")
        ax.set_ylabel("top-1 (%)")
        ax.set_title(f"{context.dataset}, {context.arch}, init {context.init.split(' ')[0]}, "
                     f"{context.devices} device(s), {context.max_epochs} epochs\n"
                     + textwrap.fill(f"{context.protocol}; mean over seeds, 95% CI", 75), fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def error_vs_batch_series(table: dict[CellKey, Cell]) -> dict[str, list[tuple[int, float, float]]]:
    """Per norm and clip setting: (clips per device, mean error %, 95% t-interval half width) of the
    median of the final 5 validations (100 − top-1), over the runs that trained (an evaluation of a
    checkpoint, e.g. precise BN, has no validations of its own)."""
    series = {}
    for norm in norm_order({k[0] for k in table}):
        for f, s in sorted({(k[1], k[2]) for k in table if k[0] == norm}):
            points = []
            for key, cell in sorted((k, c) for k, c in table.items() if k[:3] == (norm, f, s)):
                final5 = cell.other_protocol("final5")
                if final5 is not None:
                    points.append((key[3], 100 - final5.mean(), _ci_half_widths([final5])[0]))
            if points:
                series[f"{norm.upper()}, {f}×{s} frames"] = points
    return series


def plot_error_vs_batch(all_tables: dict[Context, dict[CellKey, Cell]], path: Path) -> None:
    """The GN paper's Figure 1 on the paper's metric: error (100 − the median of the final 5
    validations' top-1) vs clips per device, mean over seeds with its 95% t-interval, log scale (near
    the ceiling error is what differs); one panel per context."""
    n = len(all_tables)
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 4.2), squeeze=False)
    for ax, (context, table) in zip(axes[0], all_tables.items(), strict=True):
        for label, points in error_vs_batch_series(table).items():
            batches, errors, half = (list(v) for v in zip(*points, strict=True))
            below = [min(h, 0.9 * e) for h, e in zip(half, errors, strict=True)]  # log axis: stay > 0
            ax.errorbar(batches, errors, yerr=[below, half], marker="o", capsize=4, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        batches = sorted({k[3] for k in table})
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_xlabel("clips per device")
        ax.set_ylabel("val error (%), median of the final 5 epochs")
        ax.set_title(f"{context.dataset}, {context.arch}, {context.devices} device(s), {context.max_epochs} "
                     "epochs\nthe paper's metric; mean over seeds, 95% CI", fontsize=8)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_training_curves(runs: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in runs:
        points = validation_curve(r)
        if points:
            label = (f"{r['norm'].upper()} {r['frames_per_clip']}f b{r['batch_size_per_device']}"
                     f" s{r.get('seed', '?')}")
            ax.plot(*zip(*points, strict=True), marker=".", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val top-1 (%)")
    ax.set_title("Validation accuracy during training")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0] and len(runs) <= 24:
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def class_names_of(rows: list[dict]) -> list[str]:
    """Index -> class name, from the labels and predictions predictions.csv names."""
    names: dict[int, str] = {}
    for r in rows:
        names[int(r["label"])] = r["label_name"]
        for k in range(1, TOP + 1):
            if r.get(f"top{k}_index") not in ("", None):
                names[int(r[f"top{k}_index"])] = r[f"top{k}_name"]
    return [names.get(i, str(i)) for i in range(max(names) + 1)]


def most_confused(counts, classes: list[str], n: int = 20) -> list[tuple[str, str, int]]:
    """The ``n`` largest off-diagonal counts: (true class, predicted class, videos)."""
    off = counts.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:n]
    pairs = [np.unravel_index(i, off.shape) for i in order]
    return [(classes[t], classes[p], int(off[t, p])) for t, p in pairs if off[t, p] > 0]


def plot_confusion(rows: list[dict], classes: list[str], path: Path, max_classes: int = 30) -> None:
    """Row-normalised confusion matrix with class names on the axes. With more than ``max_classes``
    classes (Kinetics: 400) only the classes of the most-confused pairs are shown."""
    counts = confusion_matrix(rows, len(classes))
    shown = list(range(len(classes)))
    title = "Confusion matrix (rows: true class, normalised; numbers: videos)"
    if len(classes) > max_classes:
        shown = []
        for t, p, _ in most_confused(counts, classes, n=len(classes)):
            for name in (t, p):
                if classes.index(name) not in shown and len(shown) < max_classes:
                    shown.append(classes.index(name))
        shown = shown or list(range(max_classes))
        title = f"The {len(shown)} classes of the most-confused pairs (of {len(classes)})"
    sub = counts[np.ix_(shown, shown)]
    rates = sub / np.maximum(counts[shown].sum(1, keepdims=True), 1)
    size = max(5, 0.35 * len(shown) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    names = [classes[i] for i in shown]
    ax.set_xticks(range(len(shown)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(shown)), names, fontsize=7)
    for i in range(len(shown)):
        for j in range(len(shown)):
            if sub[i, j]:
                ax.text(j, i, str(sub[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_per_class(per_class: dict[str, float], path: Path, max_bars: int = 60) -> None:
    """Horizontal bars of per-class top-1, worst first (with many classes: the worst and best 30)."""
    ranked = sorted(per_class.items(), key=lambda kv: kv[1])
    if len(ranked) > max_bars:
        ranked = ranked[: max_bars // 2] + ranked[-max_bars // 2:]
    fig, ax = plt.subplots(figsize=(7, max(3, 0.22 * len(ranked) + 1)))
    ax.barh(range(len(ranked)), [100 * v for _, v in ranked], color="tab:blue")
    ax.set_yticks(range(len(ranked)), [k for k, _ in ranked], fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_xlabel("top-1 (%)")
    mean = 100 * np.mean(list(per_class.values()))
    title = f"Per-class top-1, mean {mean:.1f}% over {len(per_class)} classes"
    ax.set_title(title + (" (worst and best 30)" if len(per_class) > max_bars else ""), fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_plots(run: dict, out: Path) -> dict[str, Path]:
    """A single run with ``predictions.csv``: confusion matrix, per-class top-1, confused pairs."""
    predictions = Path(run["run_dir"]) / (run.get("predictions_file") or "predictions.csv")
    if not predictions.is_file():
        return {}
    rows = read_predictions(predictions)
    classes = class_names_of(rows)
    files = {"confusion_matrix": out / "confusion_matrix.png", "per_class_plot": out / "per_class_top1.png",
             "confused_pairs": out / "confused_pairs.csv"}
    plot_confusion(rows, classes, files["confusion_matrix"])
    plot_per_class(per_class_top1(rows, classes), files["per_class_plot"])
    with files["confused_pairs"].open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["true", "predicted", "videos"])
        writer.writerows(most_confused(confusion_matrix(rows, len(classes)), classes, n=len(classes) ** 2))
    return files


