"""``results.json``: the contract between a training run and the report, as ``data/manifest.py`` is
between prep and training.

The run writes one per run folder (``results_summary``: every setting that changes the number, the
validation history, the multi-view test and the protocol it was measured under); the report reads
them back (``report.runs``) and groups runs by ``evaluation_protocol`` and the training record.
"""

from __future__ import annotations

import statistics

import torch
from omegaconf import DictConfig

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


def results_summary(cfg: DictConfig, overrides: list[str], training: dict, trainer, module, init: dict,
                    history: list[dict], test: dict, tested: dict, failed: dict[str, str] | None,
                    wall_time_s: float, final_test: dict | None = None) -> dict:
    """What the report reads: every setting that changes the number, the validation history (its best
    and its final-5 median), the multi-view test with its protocol, the test of the final weights
    (``final_test``: the test's metrics of the last checkpoint; the same as ``test`` when that was
    the last one) and the environment a rerun needs.

    ``overrides``: the command line's. ``training``: what the run plan decided — ``global_batch``,
    ``epochs`` (None: nothing trained), ``peak_lr`` and the ``multigrid`` record."""
    best = max(history, key=lambda h: h["top1"]) if history else {}
    final_test = final_test or {}
    d = cfg.data
    has_test = test.get("test/top1") is not None
    return {
        "overrides": list(overrides),
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
        "devices": trainer.world_size,
        "global_batch": training["global_batch"],
        "max_epochs": training["epochs"],
        # the LR the schedule peaks at (optim.lr, or base_lr scaled linearly to the global batch)
        "peak_lr": training["peak_lr"],
        # multigrid: every phase's shape, clips per device and epochs (None: the base shape throughout),
        # and for BN whether its statistics were over sub-batches of the base clips or the whole batch
        "multigrid": training["multigrid"],
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
