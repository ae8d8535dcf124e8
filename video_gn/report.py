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
import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np

from .predictions import TOP, confusion_matrix, per_class_top1, read_predictions

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# GN paper, arXiv 1803.08494 Table 8: (frames, stride, clips per GPU) -> norm -> (top-1, top-5),
# Kinetics-400 val, I3D-R50 from ImageNet, 8 GPUs, 10 clips x 3 crops.
PAPER_TABLE8 = {
    (32, 2, 8): {"bn": (73.3, 90.7), "gn": (73.0, 90.6)},
    (32, 2, 4): {"bn": (72.1, 90.0), "gn": (72.8, 90.6)},
    (64, 1, 4): {"bn": (73.3, 90.8), "gn": (74.5, 91.7)},
}
VAL_PROTOCOL = "best validation top-1 (1 centre view; the epoch is picked on the same split)"


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


def trained_record(run: dict) -> dict:
    """How the evaluated weights were trained: the run itself, or for ``train=false`` on a checkpoint
    of ours (e.g. re-evaluated with precise BN), the record the checkpoint carries (init, seed, epochs),
    so the evaluation is compared with the runs trained the same way."""
    init = run.get("init") or {}
    trained = init.get("trained") if init.get("kind") == "checkpoint" else None
    if not trained:
        return {"init": init, "max_epochs": run.get("max_epochs")}
    return {"init": trained.get("init") or {}, "max_epochs": trained.get("max_epochs")}


def init_label(run: dict) -> str:
    init = trained_record(run)["init"] or {"kind": "unrecorded"}
    return init["kind"] if "file" not in init else f"{init['kind']} {init['file']} ({init['sha256'][:8]})"


def norm_label(run: dict) -> str:
    """The row a run belongs to: its norm, ``bn+precise`` where BN statistics were recomputed."""
    return run["norm"] + ("+precise" if run.get("precise_bn_batches") else "")


@dataclass(frozen=True)
class Context:
    """Everything but the cell and the seed: runs in different contexts are never compared."""

    dataset: str
    arch: str
    init: str
    devices: int
    max_epochs: int | None
    protocol: str

    def title(self) -> str:
        return (f"{self.dataset}, {self.arch}, init {self.init}, {self.devices} device(s), "
                f"{self.max_epochs} epochs — {self.protocol}")

    def differences_from_paper(self) -> list[str]:
        """How this setting differs from the paper's Table 8 (empty: comparable)."""
        paper = {"dataset": ("kinetics400", self.dataset == "kinetics400"),
                 "network": ("i3d", self.arch == "i3d"),
                 "init": ("ImageNet 2-D inflated (pretrained_2d)", self.init.startswith("pretrained_2d")),
                 "devices": ("8", self.devices == 8),
                 "test": ("10 clips x 3 crops on val",
                          "10 clips x 3 crops, split 'val'" in self.protocol)}
        ours = {"dataset": self.dataset, "network": self.arch, "init": self.init,
                "devices": str(self.devices), "test": self.protocol}
        return [f"{key}: {ours[key]} (paper: {want})" for key, (want, same) in paper.items() if not same]

    def matches_paper(self) -> bool:
        return not self.differences_from_paper()


def measurement(run: dict) -> tuple[Context, float, float | None]:
    """(context, top-1 %, top-5 %): the multi-view test, else the best validation (a different
    protocol, so a different context)."""
    if run.get("test_top1") is not None:
        protocol = "multi-view test: " + (run.get("test_protocol") or "protocol unrecorded")
        top1, top5 = run["test_top1"], run.get("test_top5")
    else:
        protocol, top1, top5 = VAL_PROTOCOL, run.get("best_val_top1"), run.get("best_val_top5")
    context = Context(run.get("dataset", ""), run.get("arch", ""), init_label(run), run.get("devices", 1),
                      trained_record(run)["max_epochs"], protocol)
    return context, (None if top1 is None else 100 * top1), (None if top5 is None else 100 * top5)


@dataclass
class Cell:
    """The runs of one setting (seeds): mean ± std over them."""

    top1: list[float] = field(default_factory=list)
    top5: list[float] = field(default_factory=list)
    seeds: list = field(default_factory=list)
    run_dirs: list[str] = field(default_factory=list)
    wall_times: list[float] = field(default_factory=list)
    # best val epoch / epochs trained, per run that trained (None: an evaluation of a checkpoint)
    best_epoch_fractions: list[float | None] = field(default_factory=list)
    # first epoch within 1 point of the run's best val top-1 / epochs (where its plateau began)
    plateau_fractions: list[float | None] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.top1)

    def mean(self, which="top1") -> float:
        values = getattr(self, which)
        return sum(values) / len(values)

    def std(self, which="top1") -> float:
        values = getattr(self, which)
        if len(values) < 2:
            return 0.0
        m = sum(values) / len(values)
        return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


CellKey = tuple[str, int, int, int]  # norm, frames, stride, clips per device


def tables(runs: list[dict]) -> dict[Context, dict[CellKey, Cell]]:
    """Context -> (norm, frames, stride, clips per device) -> the seeds of that cell."""
    out: dict[Context, dict[CellKey, Cell]] = defaultdict(lambda: defaultdict(Cell))
    for r in runs:
        context, top1, top5 = measurement(r)
        if top1 is None:
            continue
        cell = out[context][(norm_label(r), r["frames_per_clip"], r.get("frame_stride", 1),
                             r["batch_size_per_device"])]
        cell.top1.append(top1)
        cell.top5.append(top5 if top5 is not None else float("nan"))
        cell.seeds.append(r.get("seed"))
        cell.run_dirs.append(r["run_dir"])
        cell.wall_times.append(r.get("wall_time_s") or float("nan"))
        cell.best_epoch_fractions.append(best_epoch_fraction(r))
        cell.plateau_fractions.append(plateau_fraction(r))
    return {c: dict(t) for c, t in sorted(out.items(), key=lambda kv: -sum(x.n for x in kv[1].values()))}


def best_epoch_fraction(run: dict) -> float | None:
    """Where in training the best validation came: (best epoch + 1) / epochs. A run whose best epoch
    is in the last 20% of its epochs was probably still improving (not converged)."""
    epochs, best = run.get("max_epochs"), run.get("best_val_epoch")
    if not epochs or best is None or epochs < 0:
        return None
    return (best + 1) / epochs


def plateau_fraction(run: dict, within: float = 0.01) -> float | None:
    """(first epoch whose val top-1 is within ``within`` of the run's best, + 1) / epochs: under a
    schedule that decays to 0 the last epochs move the weights little, so the best epoch can fall
    late by a hair while the curve has long been flat."""
    epochs, history = run.get("max_epochs"), run.get("val_history") or []
    if not epochs or not history or epochs < 0:
        return None
    best = max(h["top1"] for h in history)
    first = next(h["epoch"] for h in history if h["top1"] >= best - within)
    return (first + 1) / epochs


def _fmt(cell: Cell | None) -> str:
    if cell is None:
        return "–"
    if cell.n == 1:
        return f"{cell.mean():.1f} / {cell.mean('top5'):.1f}"
    return (f"{cell.mean():.1f} ± {cell.std():.1f} / {cell.mean('top5'):.1f} ± {cell.std('top5'):.1f}"
            f" (n={cell.n})")


def _norm_order(norms) -> list[str]:
    known = ("bn", "bn+precise", "gn")
    return sorted(norms, key=lambda n: (known.index(n) if n in known else len(known), n))


def table_rows(context: Context, table: dict[CellKey, Cell]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one Markdown table (the paper's layout)."""
    columns = sorted({k[1:] for k in table}, key=lambda c: (c[0] * c[1], c[0], -c[2]))
    header = ["norm"] + [f"{f}×{s} frames / {b} clips per device" for f, s, b in columns]
    rows = []
    for norm in _norm_order({k[0] for k in table}):
        row = [norm.upper()]
        for f, s, b in columns:
            text = _fmt(table.get((norm, f, s, b)))
            paper = PAPER_TABLE8.get((f, s, b), {}).get(norm)
            if paper and context.matches_paper():
                text += f" (paper {paper[0]:.1f} / {paper[1]:.1f})"
            row.append(text)
        rows.append(row)
    return header, rows


def verdicts(table: dict[CellKey, Cell]) -> list[str]:
    """Per norm and clip setting: top-1 change from the largest to the smallest clips per device."""
    lines = []
    for norm in _norm_order({k[0] for k in table}):
        for f, s in sorted({(k[1], k[2]) for k in table if k[0] == norm}):
            batches = sorted(k[3] for k in table if k[:3] == (norm, f, s))
            if len(batches) < 2:
                continue
            big, small = table[(norm, f, s, batches[-1])], table[(norm, f, s, batches[0])]
            lines.append(f"{norm.upper()} ({f}×{s} frames): top-1 {_change(big, small)} from "
                         f"{batches[-1]} to {batches[0]} clips per device")
    return lines


def norm_differences(table: dict[CellKey, Cell], first: str = "bn", second: str = "gn") -> list[str]:
    """Per clip setting and batch: ``first`` − ``second`` top-1, paired by seed where both ran the same
    seeds (the mean of the per-seed differences and their std)."""
    lines = []
    for f, s, b in sorted({k[1:] for k in table}, key=lambda c: (c[0], c[1], -c[2])):
        a, g = table.get((first, f, s, b)), table.get((second, f, s, b))
        if a is None or g is None:
            continue
        paired = sorted(set(a.seeds) & set(g.seeds) - {None})
        if len(paired) >= 2:
            by_seed_a = dict(zip(a.seeds, a.top1, strict=True))
            by_seed_g = dict(zip(g.seeds, g.top1, strict=True))
            diff = Cell(top1=[by_seed_a[x] - by_seed_g[x] for x in paired])
            text = f"{diff.mean():+.1f} ± {diff.std():.1f} points (std over {diff.n} paired seeds)"
        else:
            text = f"{a.mean() - g.mean():+.1f} points (n={a.n}/{g.n}, unpaired)"
        lines.append(f"{first.upper()} − {second.upper()} at {f}×{s} frames / {b} clips per device: {text}")
    return lines


def convergence(table: dict[CellKey, Cell]) -> list[str]:
    """Per cell: how many runs had their best validation before the last 20% of their epochs."""
    lines = []
    for (norm, f, s, b), c in sorted(table.items(), key=lambda kv: (_norm_order([kv[0][0]]), kv[0])):
        fractions = [x for x in c.best_epoch_fractions if x is not None]
        if not fractions:
            continue
        early = sum(x <= 0.8 for x in fractions)
        plateau = [x for x in c.plateau_fractions if x is not None]
        lines.append(f"{norm.upper()} {f}×{s} / {b}: best val epoch at {min(fractions):.0%}–"
                     f"{max(fractions):.0%} of training; {early} of {len(fractions)} runs before the "
                     f"last 20%; within 1 point of the best from {min(plateau):.0%}–{max(plateau):.0%}")
    return lines


def _change(big: Cell, small: Cell) -> str:
    """Mean change, with its spread: per-seed differences where both cells ran the same seeds."""
    if big.seeds == small.seeds and big.n >= 2 and None not in big.seeds:
        diffs = [b - a for a, b in zip(big.top1, small.top1, strict=True)]
        diff = Cell(top1=diffs)
        spread, how = diff.std(), f"std over {diff.n} paired seeds"
    else:
        spread = math.sqrt(big.std() ** 2 + small.std() ** 2)
        how = f"n={big.n}/{small.n}"
    delta = small.mean() - big.mean()
    return f"{'falls' if delta < 0 else 'rises'} {abs(delta):.1f} ± {spread:.1f} points ({how})"


def write_markdown(all_tables: dict[Context, dict[CellKey, Cell]], path: Path) -> None:
    lines = []
    for context, table in all_tables.items():
        header, rows = table_rows(context, table)
        lines.append(f"### {context.title()}")
        lines.append("")
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
        lines.append("Cells: top-1 / top-5 (%), mean ± std over seeds (n runs).")
        if context.dataset == "kinetics400" and not context.matches_paper():
            lines.append("The paper's numbers are not shown: this setting differs from theirs in "
                         + "; ".join(context.differences_from_paper()) + ".")
        for verdict in verdicts(table):
            lines.append(f"- {verdict}")
        for difference in norm_differences(table):
            lines.append(f"- {difference}")
        lines.append("")
        header, rows = wall_time_rows(table)
        if any(cell != "–" for row in rows for cell in row[1:]):
            lines.append("Wall time per run (s, mean over its runs):")
            lines.append("")
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
        checks = convergence(table)
        if checks:
            lines += ["", "Convergence (best val epoch; converged: before the last 20% of epochs):"]
            lines += [f"- {c}" for c in checks]
        lines.append("")
    path.write_text("\n".join(lines))


def wall_time_rows(table: dict[CellKey, Cell]) -> tuple[list[str], list[list[str]]]:
    columns = sorted({k[1:] for k in table}, key=lambda c: (c[0] * c[1], c[0], -c[2]))
    header = ["norm"] + [f"{f}×{s} / {b}" for f, s, b in columns]
    rows = []
    for norm in _norm_order({k[0] for k in table}):
        cells = [table.get((norm, *c)) for c in columns]
        rows.append([f"{norm.upper()} (s)"] + ["–" if c is None or all(math.isnan(t) for t in c.wall_times)
                                      else f"{np.nanmean(c.wall_times):.0f}" for c in cells])
    return header, rows


def write_csv(all_tables: dict[Context, dict[CellKey, Cell]], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["dataset", "arch", "init", "devices", "max_epochs", "protocol", "norm",
                    "frames_per_clip", "frame_stride", "batch_size_per_device", "top1_mean", "top1_std",
                    "top5_mean", "top5_std", "n", "seeds", "wall_time_s_mean", "paper_top1", "paper_top5",
                    "run_dirs"])
        for context, table in all_tables.items():
            for (norm, frames, stride, batch), c in sorted(table.items()):
                paper = PAPER_TABLE8.get((frames, stride, batch), {}).get(norm) \
                    if context.matches_paper() else None
                w.writerow([context.dataset, context.arch, context.init, context.devices,
                            context.max_epochs, context.protocol, norm, frames, stride, batch,
                            round(c.mean(), 3), round(c.std(), 3), round(c.mean("top5"), 3),
                            round(c.std("top5"), 3), c.n, ";".join(map(str, c.seeds)),
                            round(sum(c.wall_times) / c.n, 1), paper[0] if paper else "",
                            paper[1] if paper else "", ";".join(c.run_dirs)])


def plot_accuracy_vs_batch(all_tables: dict[Context, dict[CellKey, Cell]], path: Path) -> None:
    """One panel per context: top-1 vs clips per device, a line per norm and clip setting."""
    n = len(all_tables)
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 4.2), squeeze=False)
    for ax, (context, table) in zip(axes[0], all_tables.items(), strict=True):
        for norm in _norm_order({k[0] for k in table}):
            for f, s in sorted({(k[1], k[2]) for k in table if k[0] == norm}):
                cells = sorted((k[3], c) for k, c in table.items() if k[:3] == (norm, f, s))
                ax.errorbar([b for b, _ in cells], [c.mean() for _, c in cells],
                            yerr=[c.std() for _, c in cells], marker="o", capsize=4,
                            label=f"{norm.upper()}, {f}×{s} frames")
        ax.set_xscale("log", base=2)
        batches = sorted({k[3] for k in table})
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_xlabel("clips per device")
        ax.set_ylabel("top-1 (%)")
        ax.set_title(f"{context.dataset}, {context.arch}, init {context.init.split(' ')[0]}, "
                     f"{context.devices} device(s)\n"
                     f"{context.protocol[:70]}", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def validation_curve(run: dict) -> list[tuple[int, float]]:
    """(epoch, val top-1 %) of every validation the run made (results.json's history)."""
    return [(h["epoch"], 100 * h["top1"]) for h in run.get("val_history", [])]


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


def report(paths: list[Path], out: Path) -> dict[str, Path]:
    runs = load_runs(paths)
    all_tables = tables(runs)
    if not all_tables:
        raise ValueError(f"no run under {', '.join(map(str, paths))} has a test or validation result")
    out.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out / "table8.md", "csv": out / "table8.csv",
             "accuracy_plot": out / "accuracy_vs_batch.png", "curves_plot": out / "val_top1_curves.png"}
    write_markdown(all_tables, files["markdown"])
    write_csv(all_tables, files["csv"])
    plot_accuracy_vs_batch(all_tables, files["accuracy_plot"])
    plot_training_curves(runs, files["curves_plot"])
    if len(runs) == 1:  # one run: its per-class results
        files.update(run_plots(runs[0], out))
    return files


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m video_gn.report", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run dirs, multirun dirs or results.json files")
    p.add_argument("--out", type=Path, default=None, help="default: <first path>/report")
    a = p.parse_args(argv)
    try:
        files = report(a.runs, a.out or a.runs[0] / "report")
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(files["markdown"].read_text())
    for name, path in files.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
