"""Multigrid vs its base schedule on the small-batch benchmark's design, on CPU: the wall time each run
needs to reach the baseline's accuracy and its final test top-1, for GN and BN (statistics over
sub-batches of the base clips, PySlowFast's fix, and plain BN over the grown batch), multigrid long
and long+short vs the base schedule, every cell over several seeds.

    python bench/multigrid_grid.py [--out logs/multigrid_grid] [--seeds 5] [--streams 2]
    python bench/multigrid_grid.py --summarize logs/multigrid_grid --to docs/results/multigrid

The runs go through bench/small_batch_grid.py's runner: resumable (a cell with its results.json is
skipped, a killed one resumes from its last.ckpt), the folder stamped with the design and refused
under another one. The base schedule (8 clips x 8 frames x 40², 90 epochs: the benchmark's 8-clip
cells) runs here again rather than being taken from the small-batch grid, so every wall time in the
comparison is measured under the same load (``--streams`` runs side by side).

``--summarize`` writes ``multigrid.md`` (per cell: final test top-1, best val top-1, wall time, and the
time to reach the target: the first validation within 1 point of the same seed's baseline best val
top-1, the same norm) and ``val_top1_vs_wall_time.png``. The target is on the validation split because
that is what a run measures while it trains; the test is run once, at the end, on the best-by-val
checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import small_batch_grid

# (cell label, overrides): the base schedule and each multigrid schedule; BN twice under multigrid
VARIANTS = [
    ("base", []),
    ("long", ["multigrid=long"]),
    ("long_short", ["multigrid=long_short"]),
]
BN_STATISTICS = ("sub_batch", "whole_batch")
TARGET_POINTS = 1.0  # "reached the baseline": within this many top-1 points of its best val top-1


def cells(seeds: int) -> list[tuple[str, list[str]]]:
    """(folder name, overrides), seed by seed: per seed the two baselines first, then GN, BN with
    sub-batch statistics and plain BN under each schedule."""
    out = []
    for seed in range(seeds):
        for schedule, overrides in VARIANTS:
            out.append((f"gn_{schedule}_s{seed}", ["norm=gn", *overrides, f"seed={seed}"]))
            for stats in BN_STATISTICS if overrides else ("",):
                name = f"bn_{schedule}" + (f"_{stats}" if stats else "") + f"_s{seed}"
                extra = [f"multigrid.bn_statistics={stats}"] if stats else []
                out.append((name, ["norm=bn", *overrides, *extra, f"seed={seed}"]))
    return out


def cell_of(folder_name: str) -> tuple[str, int]:
    """'bn_long_short_sub_batch_s3' -> ('bn_long_short_sub_batch', 3)."""
    name, seed = folder_name.rsplit("_s", 1)
    return name, int(seed)


def time_to_target(run: dict, target: float) -> float | None:
    """Wall time (s) of the first validation at or above ``target`` (top-1 %), None if never."""
    for h in run.get("val_history", []):
        if 100 * h["top1"] >= target and h.get("wall_time_s") is not None:
            return h["wall_time_s"]
    return None


def summarize(grid: Path, to: Path) -> str:
    runs = {}
    for path in sorted(grid.glob("*/results.json")):
        runs[cell_of(path.parent.name)] = json.loads(path.read_text())
    if not runs:
        raise SystemExit(f"error: no results.json under {grid}/*/: run the grid first")
    names = sorted({c for c, _ in runs}, key=lambda c: (c.split("_")[0], c != f"{c.split('_')[0]}_base", c))
    rows = ["| cell | n | test top-1 | best val top-1 | wall time s | reached base −1 pt | time to it s "
            "| vs base |", "|---|---|---|---|---|---|---|---|"]
    for name in names:
        seeds = sorted(s for c, s in runs if c == name)
        norm = name.split("_")[0]
        test = [100 * runs[(name, s)]["test_top1"] for s in seeds]
        val = [100 * runs[(name, s)]["best_val_top1"] for s in seeds]
        wall = [runs[(name, s)]["wall_time_s"] for s in seeds]
        reached, ratios = [], []
        for s in seeds:
            base = runs.get((f"{norm}_base", s))
            if base is None:
                continue
            target = 100 * base["best_val_top1"] - TARGET_POINTS
            t, t_base = time_to_target(runs[(name, s)], target), time_to_target(base, target)
            reached.append(t)
            if t is not None and t_base:
                ratios.append(t_base / t)
        hit = [t for t in reached if t is not None]
        rows.append(f"| {name} | {len(seeds)} | {_mean_std(test)} | {_mean_std(val)} | {_mean_std(wall, 0)} "
                    f"| {len(hit)} of {len(reached)} | {_mean_std(hit, 0) if hit else '–'} "
                    f"| {_mean_std(ratios, 2) + '×' if ratios else '–'} |")
    to.mkdir(parents=True, exist_ok=True)
    table = "\n".join(rows) + "\n"
    (to / "multigrid.md").write_text(table)
    _plot(runs, names, to / "val_top1_vs_wall_time.png")
    return table


def _mean_std(values: list[float], digits: int = 1) -> str:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


def _plot(runs: dict, names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, norm in zip(axes, ("gn", "bn"), strict=True):
        for k, name in enumerate(n for n in names if n.split("_")[0] == norm):
            colour = f"C{k}"
            for (c, seed), run in sorted(runs.items()):
                if c != name:
                    continue
                h = [x for x in run.get("val_history", []) if x.get("wall_time_s") is not None]
                ax.plot([x["wall_time_s"] for x in h], [100 * x["top1"] for x in h], color=colour, lw=0.8,
                        alpha=0.7, label=name if seed == min(s for cc, s in runs if cc == name) else None)
        ax.set_title(f"{norm.upper()}: val top-1 vs wall time (one line per seed)")
        ax.set_xlabel("wall time (s, this run, 2 runs side by side on 2 CPU cores)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("val top-1 (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("logs/multigrid_grid"))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--streams", type=int, default=2)
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="a run.py override added to every run (repeatable)")
    p.add_argument("--summarize", type=Path, metavar="GRID", help="write the table and plot of GRID")
    p.add_argument("--to", type=Path, default=Path("docs/results/multigrid"))
    a = p.parse_args(argv)
    if a.summarize:
        print(summarize(a.summarize, a.to), end="")
        return
    small_batch_grid.EXTRA[:] = a.override
    small_batch_grid.run_grid(a.out, cells(a.seeds), a.streams, precise_bn=False,
                              experiment="small_batch_grid_fourth", datasets=("synthetic_bench",))
    print(f"next: python {sys.argv[0]} --summarize {a.out}")


if __name__ == "__main__":
    main()
