"""``results.json``: the contract between a training run and the report, as ``data/manifest.py`` is
between prep and training.

The run writes one per run folder (``results_summary``: every setting that changes the number, the
validation history, the multi-view test and the protocol it was measured under); the report reads
them back (``load_runs``) and groups runs by ``evaluation_protocol`` and ``trained_record``.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ..training.multigrid import schedule_from_config, schedule_record
from ..training.optim import peak_lr_of
from .environment import run_environment

RESULTS_FILE = "results.json"


def evaluation_protocol(cfg: DictConfig, tested: dict) -> str:
    """E.g. "10 clips x 3 crops, split 'val', last checkpoint, short side 256": what the report groups
    by. A given checkpoint of ours is named by its role in its run (best, last), so a re-evaluation of
    a run's best checkpoint (e.g. with precise BN) shares that run's protocol."""
    d = cfg.data
    which = tested.get("role") if tested.get("role") in ("best", "last") else tested["checkpoint"]
    # The views' size: GN's per-sample statistics depend on the field of view, BN's running ones do
    # not, so runs tested at another short side are another protocol (docs/results/small_batch_grid).
    return (f"{d.num_test_clips} clips x {d.num_test_crops} crops, split '{tested['split']}', "
            f"{which} checkpoint, short side {d.eval_short_side}")


FINAL_VALIDATIONS = 5  # the GN paper's protocol: the median of the final 5 epochs' validation


def final_median(history: list[dict], n: int = FINAL_VALIDATIONS) -> dict:
    """The median val top-1 / top-5 of the last ``n`` validations and their epochs (the GN paper's
    protocol, §4.1: no epoch is picked on the data it is scored on); all of them if fewer ran."""
    last = history[-n:]
    if not last:
        return {"final5_median_val_top1": None, "final5_median_val_top5": None, "final5_val_epochs": []}
    return {"final5_median_val_top1": float(statistics.median(h["top1"] for h in last)),
            "final5_median_val_top5": float(statistics.median(h["top5"] for h in last)),
            "final5_val_epochs": [h["epoch"] for h in last]}


def results_summary(cfg: DictConfig, trainer, module, init: dict, history: list[dict], test: dict,
                    tested: dict, failed: dict[str, str] | None, wall_time_s: float,
                    final_test: dict | None = None) -> dict:
    """What the report reads: every setting that changes the number, the validation history (its best
    and its final-5 median), the multi-view test with its protocol, the test of the final weights
    (``final_test``: the test's metrics of the last checkpoint; the same as ``test`` when that was
    the last one) and the environment a rerun needs."""
    best = max(history, key=lambda h: h["top1"]) if history else {}
    final_test = final_test or {}
    devices = trainer.world_size
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # called outside a Hydra app (tests composing the config)
        overrides = []
    d = cfg.data
    has_test = test.get("test/top1") is not None
    schedule = schedule_from_config(cfg) if cfg.get("train", True) else None
    global_batch = d.batch_size_per_device * devices * trainer.accumulate_grad_batches
    return {
        "overrides": overrides,
        "dataset": d.get("name", ""),
        "arch": cfg.model.arch,
        "init": init,
        # The network's own norm (a checkpoint evaluated with train=false keeps the one it was trained
        # with), with its settings (GN groups) and whether BN statistics were recomputed (precise BN).
        "norm": module.hparams.norm["kind"],
        "norm_settings": dict(module.hparams.norm),
        "precise_bn_batches": int(cfg.norm.get("precise_bn_batches") or 0) or None,
        "seed": cfg.seed,
        "frames_per_clip": d.frames_per_clip,
        "frame_stride": d.frame_stride,
        "crop_size": d.crop_size,
        "batch_size_per_device": d.batch_size_per_device,
        "devices": devices,
        "global_batch": global_batch,
        "max_epochs": trainer.max_epochs if cfg.get("train", True) else None,
        # the LR the schedule peaks at (optim.lr, or base_lr scaled linearly to the global batch)
        "peak_lr": peak_lr_of(cfg.optim, global_batch) if cfg.get("train", True) else None,
        # multigrid: every phase's shape, clips per device and epochs (None: the base shape throughout),
        # and for BN whether its statistics were over sub-batches of the base clips or the whole batch
        "multigrid": schedule_record(cfg, schedule),
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "val_split": tested["val_split"],
        "best_val_top1": best.get("top1"),
        "best_val_top5": best.get("top5"),
        "best_val_epoch": best.get("epoch"),
        **final_median(history),
        "val_history": history,
        "test_split": tested["split"] if has_test else None,
        "test_views": f"{d.num_test_clips}x{d.num_test_crops}" if has_test else None,
        "test_checkpoint": tested["checkpoint"] if has_test else None,
        "test_checkpoint_reason": tested["reason"] if has_test else None,
        "test_protocol": evaluation_protocol(cfg, tested) if has_test else None,
        "test_videos": int(test["test/videos"]) if "test/videos" in test else None,
        "test_top1": as_float(test.get("test/top1")),
        "test_top5": as_float(test.get("test/top5")),
        # the final weights (last checkpoint) on the same split and views: no checkpoint selection
        "final_test_top1": as_float(final_test.get("test/top1")),
        "final_test_top5": as_float(final_test.get("test/top5")),
        "final_test_videos": int(final_test["test/videos"]) if "test/videos" in final_test else None,
        "wall_time_s": round(wall_time_s, 2),  # as val_history's times: never below the last one
        "peak_gpu_memory_gib": (torch.cuda.max_memory_allocated() / 2**30
                                if torch.cuda.is_available() else None),
        # Distinct videos that failed to load (train, val and test; every rank; across resumes).
        "load_failures": None if failed is None else len(failed),
        "load_failures_file": None if failed is None else "load_failures.csv",
        "environment": run_environment(num_workers=d.num_workers, precision=cfg.trainer.get("precision"),
                                       deterministic=cfg.trainer.get("deterministic")),
    }


def as_float(value):
    return None if value is None else float(value)


# --- reading runs back ---------------------------------------------------------------------------

def load_runs(paths: list[Path]) -> list[dict]:
    """Every ``results.json`` below ``paths`` (folders or the files themselves), each with its
    ``run_dir``."""
    runs = []
    for root in paths:
        files = [root] if root.name == RESULTS_FILE else sorted(root.rglob(RESULTS_FILE))
        for f in files:
            r = json.loads(f.read_text())
            r["run_dir"] = str(f.parent)
            runs.append(r)
    if not runs:
        raise FileNotFoundError(f"no {RESULTS_FILE} under {', '.join(map(str, paths))}")
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
