"""The fifth small-batch design's pilot: which width and base LR put BN at 8 clips per device in a
regime where data, not luck, sets the score — decided by criteria written before the runs.

    python bench/small_batch_pilot.py [--out logs/small_batch_pilot] [--streams 2]   # resumable
    python bench/small_batch_pilot.py --summary [--out ...] [--table FILE.md]
    python bench/small_batch_pilot.py --summary --grid --out logs/small_batch_grid   # the chosen setting

Cells: BN and GN at 8 clips per device (``conf/experiment/small_batch_pilot.yaml``), base LR 0.2
and 0.4, widths 16 and 8 (GN G = width / 2: 2 channels per group at the narrowest layer), seed by
seed within a width so every setting has a first seed early; ``--override`` sets the data (e.g. its
noise) for a pilot round. The rounds so far and why each was stopped are in the experiment config and
docs/results/small_batch_grid/fifth_design_pilot/. A setting is **accepted** when, over its seeds
(the median of each run's final 5 validations, the GN paper's protocol):

- BN lands at 65-85% val top-1 (room below the ceiling and above chance for effects of a few points),
- BN's train - val gap (the same 5 epochs' medians) is at most 5 points (not a memorised train set),
- the seeds' sd is at most 2 points for BN and for GN (the effect sizes of interest are 1-10 points).

Runs go through bench/small_batch_grid.py's runner (resumable, design-checked, one thread each).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import small_batch_grid

EXPERIMENT = "small_batch_pilot"
WIDTHS, LRS, SEEDS = (16, 8), (0.2, 0.4), (0, 1, 2)
# The acceptance criteria (points of top-1): fixed before the runs.
BN_RANGE, MAX_GAP, MAX_SD = (65.0, 85.0), 5.0, 2.0


def cells() -> list[tuple[str, list[str]]]:
    out = []
    for width in WIDTHS:
        for seed in SEEDS:
            for lr in LRS:
                for norm in ("bn", "gn"):
                    out.append((f"{norm}_w{width}_lr{lr}_s{seed}",
                                # GN's G: norm.num_groups=null gives width / 2 at these widths
                                [f"norm={norm}", f"model.width={width}", f"optim.base_lr={lr}",
                                 f"seed={seed}"]))
    return out


def final5(history: list[dict], key: str) -> float | None:
    values = [h[key] for h in history[-5:] if h.get(key) is not None]
    return 100 * statistics.median(values) if values else None


def pilot_setting(folder: str, grid_design: dict | None) -> tuple[int, float, str] | None:
    """(width, base LR, norm) of a pilot cell's folder (``bn_w16_lr0.2_s0``), or in a grid folder
    (``grid_design``: its design.yaml) of its 8-clip 8x2 cells (``bn_8x2_b8_s0``); None otherwise."""
    if grid_design is None:
        norm, width, lr, _ = folder.split("_")
        return int(width[1:]), float(lr[2:]), norm
    norm, clip, batch, *rest = folder.split("_")
    if clip != "8x2" or batch != "b8" or len(rest) != 1:  # other cells, precise-BN re-evaluations
        return None
    return grid_design["model"]["width"], grid_design["optim"]["base_lr"], norm


def setting_rows(out: Path, grid: bool = False) -> list[dict]:
    """Per (width, LR, norm): the final-5 medians of its finished seeds, their mean and sd. With
    ``grid``, ``out`` is a grid folder (bench/small_batch_grid.py) and its 8-clip cells are read:
    the accepted setting's 3-seed round, run there first."""
    from omegaconf import OmegaConf

    design = OmegaConf.to_container(OmegaConf.load(out / "design.yaml")) if grid else None
    groups: dict[tuple, list[dict]] = {}
    for f in sorted(out.glob("*/results.json")):
        setting = pilot_setting(f.parent.name, design)
        if setting is not None:
            groups.setdefault(setting, []).append(json.loads(f.read_text()))
    rows = []
    for (width, lr, norm), runs in sorted(groups.items()):
        val = [final5(r["val_history"], "top1") for r in runs]
        train = [final5(r["val_history"], "train_top1") for r in runs]
        gaps = [t - v for t, v in zip(train, val, strict=True) if t is not None and v is not None]
        rows.append({"width": width, "lr": lr, "norm": norm, "n": len(runs), "val": val,
                     "mean": statistics.mean(val), "sd": statistics.stdev(val) if len(val) > 1 else None,
                     "gap": statistics.mean(gaps) if gaps else None,
                     "test": [100 * r["final_test_top1"] for r in runs
                              if r.get("final_test_top1") is not None],
                     "wall_s": statistics.mean(r["wall_time_s"] for r in runs)})
    return rows


def verdict(bn: dict | None, gn: dict | None) -> str:
    """The criteria on one setting's BN and GN rows."""
    if bn is None or gn is None or min(bn["n"], gn["n"]) < len(SEEDS):
        return f"open ({bn['n'] if bn else 0}+{gn['n'] if gn else 0} of {2 * len(SEEDS)} runs)"
    failed = []
    if not BN_RANGE[0] <= bn["mean"] <= BN_RANGE[1]:
        failed.append(f"BN {bn['mean']:.1f}% outside {BN_RANGE[0]:.0f}-{BN_RANGE[1]:.0f}")
    if bn["gap"] is not None and bn["gap"] > MAX_GAP:
        failed.append(f"BN train-val gap {bn['gap']:.1f} > {MAX_GAP:.0f}")
    for row in (bn, gn):
        if row["sd"] > MAX_SD:
            failed.append(f"{row['norm'].upper()} sd {row['sd']:.1f} > {MAX_SD:.0f}")
    return "accepted" if not failed else "rejected: " + "; ".join(failed)


def summary_table(out: Path, grid: bool = False) -> str:
    rows = setting_rows(out, grid)
    lines = ["| width | base LR | norm | n | final-5 median val top-1 (%) per seed | mean ± sd | "
             "train − val | final weights, test top-1 (%) | wall (s) | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        other = next((x for x in rows if (x["width"], x["lr"]) == (r["width"], r["lr"]) and x is not r),
                     None)
        bn, gn = (r, other) if r["norm"] == "bn" else (other, r)
        sd = f" ± {r['sd']:.1f}" if r["sd"] is not None else ""
        gap = f"{r['gap']:+.1f}" if r["gap"] is not None else "–"
        test = ", ".join(f"{t:.1f}" for t in r["test"]) or "–"
        lines.append(f"| {r['width']} | {r['lr']} | {r['norm'].upper()} | {r['n']} | "
                     f"{', '.join(f'{v:.1f}' for v in r['val'])} | {r['mean']:.1f}{sd} | {gap} | {test} | "
                     f"{r['wall_s']:.0f} | {verdict(bn, gn) if r['norm'] == 'bn' else ''} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("logs/small_batch_pilot"))
    p.add_argument("--streams", type=int, default=2)
    p.add_argument("--summary", action="store_true", help="print the pilot table with each verdict")
    p.add_argument("--table", type=Path, help="with --summary: also write the table to this file")
    p.add_argument("--grid", action="store_true",
                   help="with --summary: --out is a grid folder; judge its 8-clip cells by the criteria")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="a run.py override added to every run (repeatable)")
    a = p.parse_args(argv)
    small_batch_grid.EXTRA[:] = a.override
    if a.summary:
        table = summary_table(a.out, a.grid)
        print(table)
        if a.table:
            a.table.write_text(table + "\n")
        return
    small_batch_grid.run_grid(a.out, cells(), a.streams, precise_bn=False, experiment=EXPERIMENT,
                              datasets=("synthetic_bench_large",), paper_rules=False)


if __name__ == "__main__":
    main()
