"""Runs -> tables: runs grouped by every setting that changes the number, seeds averaged.

One table per *context* (dataset, network, init, devices, epochs and evaluation protocol); inside
it a cell per (norm, frames, stride, clips per device), holding its seeds; and the lines written
under each table (the drop from the largest to the smallest batch, paired BN − GN differences,
convergence).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from ..record.results import final_median
from .runs import (
    best_epoch_fraction,
    init_label,
    late_gain,
    norm_label,
    plateau_fraction,
    trained_record,
)

# GN paper, arXiv 1803.08494 Table 8: (frames, stride, clips per GPU) -> norm -> (top-1, top-5),
# Kinetics-400 val, I3D-R50 from ImageNet, 8 GPUs, 10 clips x 3 crops.
PAPER_TABLE8 = {
    (32, 2, 8): {"bn": (73.3, 90.7), "gn": (73.0, 90.6)},
    (32, 2, 4): {"bn": (72.1, 90.0), "gn": (72.8, 90.6)},
    (64, 1, 4): {"bn": (73.3, 90.8), "gn": (74.5, 91.7)},
}
VAL_PROTOCOL = "best validation top-1 (1 centre view; the epoch is picked on the same split)"


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
    trained = trained_record(run)
    # a multigrid run sits in its base schedule's table (its row says multigrid; it trains x1.5 epochs)
    epochs = trained["multigrid"]["base_epochs"] if trained.get("multigrid") else trained["max_epochs"]
    context = Context(run.get("dataset", ""), run.get("arch", ""), init_label(run), run.get("devices", 1),
                      epochs, protocol)
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
    # (best val top-1 of the last 20% − best before, val standard error) per run: report.runs.late_gain
    late_gains: list[tuple[float, float] | None] = field(default_factory=list)
    # The GN paper's protocol beside ours, per run (%, None where it has none): the median of the final
    # 5 validations, and the multi-view test of the final weights (no checkpoint picked on val)
    final5: list[float | None] = field(default_factory=list)
    final_test: list[float | None] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.top1)

    def other_protocol(self, which: str) -> Cell | None:
        """``final5`` or ``final_test`` as a cell of its own (the runs that have it), or None."""
        values = [v for v in getattr(self, which) if v is not None]
        return Cell(top1=values, top5=[float("nan")] * len(values)) if values else None

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
        cell.late_gains.append(late_gain(r))
        final5 = final_median(r.get("val_history") or [])["final5_median_val_top1"]
        cell.final5.append(None if final5 is None else 100 * final5)
        cell.final_test.append(None if r.get("final_test_top1") is None else 100 * r["final_test_top1"])
    return {c: dict(t) for c, t in sorted(out.items(), key=lambda kv: -sum(x.n for x in kv[1].values()))}


def norm_order(norms) -> list[str]:
    known = ("bn", "bn+precise", "gn")
    return sorted(norms, key=lambda n: (known.index(n) if n in known else len(known), n))


def verdicts(table: dict[CellKey, Cell]) -> list[str]:
    """Per norm and clip setting: top-1 change from the largest to the smallest clips per device."""
    lines = []
    for norm in norm_order({k[0] for k in table}):
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
    for (norm, f, s, b), c in sorted(table.items(), key=lambda kv: (norm_order([kv[0][0]]), kv[0])):
        fractions = [x for x in c.best_epoch_fractions if x is not None]
        if not fractions:
            continue
        early = sum(x <= 0.8 for x in fractions)
        plateau = [x for x in c.plateau_fractions if x is not None]
        line = (f"{norm.upper()} {f}×{s} / {b}: best val epoch at {min(fractions):.0%}–"
                f"{max(fractions):.0%} of training; {early} of {len(fractions)} runs before the "
                f"last 20%; within 1 point of the best from {min(plateau):.0%}–{max(plateau):.0%}")
        gains = [g for g in c.late_gains if g is not None]
        if gains:
            within = sum(gain <= se for gain, se in gains)
            line += (f"; the last 20% gained {100 * min(g for g, _ in gains):+.1f} to "
                     f"{100 * max(g for g, _ in gains):+.1f} points over the earlier best, within the val "
                     f"set's standard error (±{100 * max(se for _, se in gains):.1f}) in {within} of {len(gains)}")
        lines.append(line)
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


