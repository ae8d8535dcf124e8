"""Runs read back from their ``results.json`` (``record.results`` writes them), and what the report
derives from one run: how its weights were trained, its row label, its validation curve and
whether it had converged."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import UserError
from ..record.results import RESULTS_FILE


def load_runs(paths: list[Path]) -> list[dict]:
    """Every ``results.json`` below ``paths`` (folders or the files themselves), each with its
    ``run_dir``."""
    runs = []
    for root in paths:
        if not root.exists():
            raise UserError(f"{root} does not exist")
        files = [root] if root.name == RESULTS_FILE else sorted(root.rglob(RESULTS_FILE))
        for f in files:
            try:
                r = json.loads(f.read_text())
            except json.JSONDecodeError as e:  # cut short by a crash mid-write, or edited by hand
                raise UserError(f"{f} is not valid JSON ({e}); move it away or rerun its run") from None
            r["run_dir"] = str(f.parent)
            runs.append(r)
    if not runs:
        raise UserError(f"no {RESULTS_FILE} under {', '.join(map(str, paths))}")
    return runs


def trained_record(run: dict) -> dict:
    """How the evaluated weights were trained: the run itself, or for ``train=false`` on a checkpoint
    of ours (e.g. re-evaluated with precise BN), the record the checkpoint carries (init, seed, epochs),
    so the evaluation is compared with the runs trained the same way."""
    init = run.get("init") or {}
    trained = init.get("trained") if init.get("kind") == "checkpoint" else None
    if not trained:
        return {"init": init, "max_epochs": run.get("max_epochs"), "multigrid": run.get("multigrid")}
    return {"init": trained.get("init") or {}, "max_epochs": trained.get("max_epochs"),
            "multigrid": trained.get("multigrid")}


def init_label(run: dict) -> str:
    init = trained_record(run)["init"] or {"kind": "unrecorded"}
    return init["kind"] if "file" not in init else f"{init['kind']} {init['file']} ({init['sha256'][:8]})"


def norm_label(run: dict) -> str:
    """The row a run belongs to: its norm; ``+long``/``+long_short`` (and BN's statistics, e.g.
    ``bn+long_short/sub_batch``) for a multigrid schedule; ``+precise`` where BN statistics were
    recomputed."""
    m = trained_record(run)["multigrid"]
    schedule = f"+{m['kind']}" + (f"/{m['bn_statistics']}" if m.get("bn_statistics") else "") if m else ""
    return run["norm"] + schedule + ("+precise" if run.get("precise_bn_batches") else "")


def validation_curve(run: dict) -> list[tuple[int, float]]:
    """(epoch, val top-1 %) of every validation the run made (results.json's history)."""
    return [(h["epoch"], 100 * h["top1"]) for h in run.get("val_history", [])]


def best_epoch_fraction(run: dict) -> float | None:
    """Where in training the best validation came: (best epoch + 1) / epochs. A run whose best epoch
    is in the last 20% of its epochs was probably still improving (not converged)."""
    epochs, best = run.get("max_epochs"), run.get("best_val_epoch")
    if not epochs or best is None or epochs < 0:
        return None
    return (best + 1) / epochs


def late_gain(run: dict, last: float = 0.2) -> tuple[float, float] | None:
    """(best val top-1 in the last ``last`` of the epochs − best before them, the val set's binomial
    standard error at that best), both as fractions. The issue's rule "best epoch before the last 20%"
    asks for a gain <= 0; on a val set of a few hundred videos a plateau's maximum lands in its last
    fifth by chance about as often as anywhere, so a gain within one standard error is noise."""
    epochs, history = run.get("max_epochs"), run.get("val_history") or []
    start = (1 - last) * (epochs or 0)
    before = [h["top1"] for h in history if h["epoch"] + 1 <= start]
    after = [h for h in history if h["epoch"] + 1 > start]
    if not epochs or not before or not after:
        return None
    best = max(after, key=lambda h: h["top1"])
    p, n = best["top1"], best.get("videos") or 0
    return best["top1"] - max(before), (math.sqrt(p * (1 - p) / n) if n else float("nan"))


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
