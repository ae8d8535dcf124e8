"""Tables -> ``table8.md`` and ``table8.csv`` in the paper's Table 8 layout: rows are norms, columns
"frames×stride / clips per device"; the paper's numbers beside ours only where the setting matches.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from .cells import PAPER_TABLE8, Cell, CellKey, Context, convergence, norm_differences, norm_order, verdicts
from .contrasts import contrast_lines
from .stats import t_interval


def _fmt(cell: Cell | None) -> str:
    if cell is None:
        return "–"
    if cell.n == 1:
        return f"{cell.mean():.1f} / {cell.mean('top5'):.1f}"
    return (f"{cell.mean():.1f} ± {cell.std():.1f} / {cell.mean('top5'):.1f} ± {cell.std('top5'):.1f}"
            f" (n={cell.n})")


def table_rows(context: Context, table: dict[CellKey, Cell]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one Markdown table (the paper's layout)."""
    columns = sorted({k[1:] for k in table}, key=lambda c: (c[0] * c[1], c[0], -c[2]))
    header = ["norm"] + [f"{f}×{s} frames / {b} clips per device" for f, s, b in columns]
    rows = []
    for norm in norm_order({k[0] for k in table}):
        row = [norm.upper()]
        for f, s, b in columns:
            text = _fmt(table.get((norm, f, s, b)))
            paper = PAPER_TABLE8.get((f, s, b), {}).get(norm)
            if paper and context.matches_paper():
                text += f" (paper {paper[0]:.1f} / {paper[1]:.1f})"
            row.append(text)
        rows.append(row)
    return header, rows


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
        lines += contrast_lines(table)
        header, rows = other_protocol_rows(table)
        if rows:
            lines.append("The GN paper's protocol beside ours (top-1 %, mean ± std [95% t-interval of "
                         "the mean] (n)): **final-5 "
                         "median val** — the median of each run's last 5 validations (1 centre view on "
                         "the val split; no epoch picked); **final weights, test** — the last checkpoint "
                         "under this table's test protocol (no checkpoint picked on val).")
            lines.append("")
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
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


OTHER_PROTOCOLS = (("final5", "final-5 median val"), ("final_test", "final weights, test"))


def _fmt_top1(cell: Cell) -> str:
    if cell.n == 1:
        return f"{cell.mean():.1f}"
    e = t_interval(cell.top1)
    return f"{e.mean:.1f} ± {e.sd:.1f} [{e.low:.1f}, {e.high:.1f}] (n={e.n})"


def other_protocol_rows(table: dict[CellKey, Cell]) -> tuple[list[str], list[list[str]]]:
    """Per norm, a row for each of the paper's protocols that any run has (``OTHER_PROTOCOLS``)."""
    columns = sorted({k[1:] for k in table}, key=lambda c: (c[0] * c[1], c[0], -c[2]))
    header = ["norm, protocol"] + [f"{f}×{s} / {b}" for f, s, b in columns]
    rows = []
    for norm in norm_order({k[0] for k in table}):
        for which, name in OTHER_PROTOCOLS:
            cells = [table[(norm, *c)].other_protocol(which) if (norm, *c) in table else None
                     for c in columns]
            if any(cells):
                rows.append([f"{norm.upper()}, {name}"]
                            + ["–" if c is None else _fmt_top1(c) for c in cells])
    return header, rows


def wall_time_rows(table: dict[CellKey, Cell]) -> tuple[list[str], list[list[str]]]:
    columns = sorted({k[1:] for k in table}, key=lambda c: (c[0] * c[1], c[0], -c[2]))
    header = ["norm"] + [f"{f}×{s} / {b}" for f, s, b in columns]
    rows = []
    for norm in norm_order({k[0] for k in table}):
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
                    "final5_median_val_top1_mean", "final5_median_val_top1_std",
                    "final5_median_val_top1_ci_low", "final5_median_val_top1_ci_high", "final_test_top1_mean",
                    "final_test_top1_std", "top1_ci_low", "top1_ci_high", "run_dirs"])
        for context, table in all_tables.items():
            for (norm, frames, stride, batch), c in sorted(table.items()):
                paper = PAPER_TABLE8.get((frames, stride, batch), {}).get(norm) \
                    if context.matches_paper() else None
                w.writerow([context.dataset, context.arch, context.init, context.devices,
                            context.max_epochs, context.protocol, norm, frames, stride, batch,
                            round(c.mean(), 3), round(c.std(), 3), round(c.mean("top5"), 3),
                            round(c.std("top5"), 3), c.n, ";".join(map(str, c.seeds)),
                            round(sum(c.wall_times) / c.n, 1), paper[0] if paper else "",
                            paper[1] if paper else "", *_mean_std_ci(c.other_protocol("final5")),
                            *_mean_std_ci(c.other_protocol("final_test"))[:2], *_mean_std_ci(c)[2:],
                            ";".join(c.run_dirs)])


def _mean_std_ci(cell: Cell | None) -> tuple:
    """Top-1 mean, std and the 95% t-interval of the mean (blank where undefined: no cell, n = 1)."""
    if cell is None:
        return ("", "", "", "")
    e = t_interval(cell.top1)
    ci = ("", "") if e.low is None else (round(e.low, 3), round(e.high, 3))
    return (round(cell.mean(), 3), round(cell.std(), 3), *ci)


