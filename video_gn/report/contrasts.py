"""The comparisons a small-batch table answers, paired by seed, fixed before the runs.

For one table (one context) and one metric, the family is:

- per norm and clip shape, each smaller batch against the largest: ``BN 4−8``, ``GN 2−8``, ...;
- the interaction, per smaller batch: ``(BN 4−8) − (GN 4−8)`` — does BN lose more than GN;
- the clip-length trade, per norm: two cells of the same temporal span and the same activation memory
  (frames × clips), e.g. ``16×1 / 4 − 8×2 / 8``.

Each row: the mean paired difference (points) with its 95% t-interval, the paired t-test's p, Holm's
p within the family, and the equivalence test (TOST) at ±``margin`` points — "flat" is claimed only
where that rejects a difference of ``margin`` or more. Seeds missing from either side are left out
of that row (n says how many pairs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from .cells import Cell, CellKey
from .stats import PairedTest, holm, paired_t, tost

EQUIVALENCE_MARGIN = 3.0  # points of top-1: "no difference" means within this, both ways
# metric name -> the per-run values of a cell (aligned with cell.seeds; None where a run has none)
METRICS: dict[str, Callable[[Cell], list]] = {
    "final-5 median val": lambda c: c.final5,
    "test (the table's protocol)": lambda c: c.top1,
}


@dataclass(frozen=True)
class Contrast:
    name: str
    test: PairedTest
    equivalence_p: float | None


def _by_seed(cell: Cell, values: Callable[[Cell], list]) -> dict:
    return {s: v for s, v in zip(cell.seeds, values(cell), strict=True) if s is not None and v is not None}


def _label(key: CellKey) -> str:
    norm, f, s, b = key
    return f"{norm.upper()} {f}×{s}/{b}"


def _pairs(table: dict[CellKey, Cell]) -> list[tuple[str, list[tuple[CellKey, CellKey]]]]:
    """(row name, [(minuend cell, subtrahend cell), ...]): one pair for a plain difference, two for an
    interaction (the second pair's difference is subtracted from the first's)."""
    rows = []
    norms = sorted({k[0] for k in table if "+" not in k[0]})  # the trained norms, not re-evaluations
    shapes = sorted({k[1:3] for k in table})
    for (f, s) in shapes:
        batches = sorted({k[3] for k in table if k[1:3] == (f, s)}, reverse=True)
        if len(batches) < 2:
            continue
        largest = batches[0]
        for b in batches[1:]:
            for norm in norms:
                if (norm, f, s, b) in table and (norm, f, s, largest) in table:
                    rows.append((f"{norm.upper()} {b}−{largest} ({f}×{s})",
                                 [((norm, f, s, b), (norm, f, s, largest))]))
            if {"bn", "gn"} <= set(norms) and all((n, f, s, x) in table for n in ("bn", "gn")
                                                  for x in (b, largest)):
                rows.append((f"(BN {b}−{largest}) − (GN {b}−{largest}) ({f}×{s})",
                             [(("bn", f, s, b), ("bn", f, s, largest)),
                              (("gn", f, s, b), ("gn", f, s, largest))]))
    keys = sorted(table)
    for a in keys:
        for c in keys:
            same_norm, same_span = a[0] == c[0] and a[0] in norms, a[1] * a[2] == c[1] * c[2]
            if same_norm and same_span and a[1] > c[1] and a[1] * a[3] == c[1] * c[3]:
                rows.append((f"{_label(a)} − {_label(c)} (clip length at equal memory)", [(a, c)]))
    return rows


def contrasts(table: dict[CellKey, Cell], metric: str, margin: float = EQUIVALENCE_MARGIN) -> list[Contrast]:
    """The family of paired contrasts of ``table`` on ``metric`` (a key of ``METRICS``), Holm-adjusted."""
    values = METRICS[metric]
    out = []
    for name, pairs in _pairs(table):
        sides = [(_by_seed(table[a], values), _by_seed(table[b], values)) for a, b in pairs]
        seeds = sorted(set.intersection(*(set(x) & set(y) for x, y in sides)))
        if len(seeds) < 2:
            continue
        first = [sides[0][0][s] - sides[0][1][s] for s in seeds]
        second = [sides[1][0][s] - sides[1][1][s] for s in seeds] if len(sides) > 1 else [0.0] * len(seeds)
        test = paired_t(first, second)
        diffs = [x - y for x, y in zip(first, second, strict=True)]
        out.append(Contrast(name, test, tost(diffs, margin)))
    adjusted = holm([c.test.p for c in out])
    return [replace(c, test=replace(c.test, p_holm=p)) for c, p in zip(out, adjusted, strict=True)]


def _p(p: float | None) -> str:
    return "–" if p is None else ("< .001" if p < 0.001 else f"{p:.3f}".lstrip("0"))


def contrast_lines(table: dict[CellKey, Cell], margin: float = EQUIVALENCE_MARGIN) -> list[str]:
    """Markdown: one table of contrasts per metric that has at least one (empty list: none)."""
    lines = []
    for metric in METRICS:
        rows = contrasts(table, metric, margin)
        if not rows:
            continue
        lines += [f"Paired contrasts on **{metric}** (points; by seed; Holm within these rows; "
                  f"equivalence: both one-sided tests at ±{margin:g} points):", "",
                  "| contrast | n | mean [95% CI] | p | p (Holm) | equivalence p | reading |",
                  "|---|---|---|---|---|---|---|"]
        for c in rows:
            d = c.test.difference
            ci = f"{d.mean:+.1f} [{d.low:+.1f}, {d.high:+.1f}]" if d.low is not None else f"{d.mean:+.1f}"
            if c.test.p_holm is not None and c.test.p_holm < 0.05:
                reading = "differs (Holm p < .05)"
            elif c.equivalence_p is not None and c.equivalence_p < 0.05:
                reading = f"equivalent within ±{margin:g}"
            else:
                reading = "unresolved"
            lines.append(f"| {c.name} | {d.n} | {ci} | {_p(c.test.p)} | {_p(c.test.p_holm)} | "
                         f"{_p(c.equivalence_p)} | {reading} |")
        lines.append("")
    return lines
