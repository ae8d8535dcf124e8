"""``train(cfg)``: seed -> datamodule, module, callbacks, loggers, trainer -> fit -> multi-view test
on the best checkpoint -> ``<run dir>/results.json``.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from .io import atomic_write_text
from .lit_module import VideoClassifier

log = logging.getLogger(__name__)
# Normalising on the device in the LightningModule's on_after_batch_transfer is deliberate.
warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")


def _instantiate_all(group: DictConfig | None) -> list:
    return [hydra.utils.instantiate(c) for c in (group or {}).values() if c and "_target_" in c]


def resume_checkpoint(cfg: DictConfig, output_dir: Path) -> str | None:
    """``ckpt_path`` if given, else the ``last.ckpt`` an interrupted run left in this run dir."""
    if cfg.get("ckpt_path"):
        if not Path(cfg.ckpt_path).is_file():
            raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path} does not exist")
        return str(cfg.ckpt_path)
    last = output_dir / "checkpoints" / "last.ckpt"
    return str(last) if last.is_file() else None


def train(cfg: DictConfig) -> float | None:
    """Trains and tests one configuration; returns the test top-1 (for Hydra sweepers)."""
    started = time.time()
    output_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)

    datamodule = hydra.utils.instantiate(cfg.data)
    module = VideoClassifier(
        model=OmegaConf.to_container(cfg.model, resolve=True),
        norm=OmegaConf.to_container(cfg.norm, resolve=True),
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        num_classes=cfg.data.num_classes, batch_size_per_device=cfg.data.batch_size_per_device,
        mean=list(cfg.data.mean), std=list(cfg.data.std))
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=_instantiate_all(cfg.get("callbacks")),
        logger=_instantiate_all(cfg.get("logger")) or False)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()

    ckpt_path = resume_checkpoint(cfg, output_dir)
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
    network = torch.compile(module) if cfg.model.get("compile") else module
    trainer.fit(network, datamodule=datamodule, ckpt_path=ckpt_path)

    test_metrics = {}
    if cfg.get("test_after_fit"):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        results = trainer.test(network, datamodule=datamodule, ckpt_path=best or None)
        test_metrics = results[0] if results else {}

    summary = results_summary(cfg, trainer, module, test_metrics, time.time() - started)
    if trainer.is_global_zero:
        atomic_write_text(output_dir / "results.json", json.dumps(summary, indent=1))
        log.info("results: %s", output_dir / "results.json")
        print(f"\nTest top-1 {summary['test_top1']}, top-5 {summary['test_top5']}; outputs in {output_dir}")
    return summary["test_top1"]


def results_summary(cfg: DictConfig, trainer: L.Trainer, module: VideoClassifier, test: dict,
                    wall_time_s: float) -> dict:
    """What the report reads: the setting, the best validation and the multi-view test accuracy."""
    history = module.val_history
    best = max(history, key=lambda h: h["top1"]) if history else {}
    devices = trainer.world_size
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # called outside a Hydra app (tests composing the config)
        overrides = []
    return {
        "overrides": overrides,
        "dataset": cfg.data.get("name", ""),
        "arch": cfg.model.arch,
        "norm": cfg.norm.kind,
        "frames_per_clip": cfg.data.frames_per_clip,
        "frame_stride": cfg.data.frame_stride,
        "batch_size_per_device": cfg.data.batch_size_per_device,
        "devices": devices,
        "global_batch": cfg.data.batch_size_per_device * devices * trainer.accumulate_grad_batches,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "best_val_top1": best.get("top1"),
        "best_val_top5": best.get("top5"),
        "best_val_epoch": best.get("epoch"),
        "val_history": history,
        "test_top1": _float(test.get("test/top1")),
        "test_top5": _float(test.get("test/top5")),
        "wall_time_s": round(wall_time_s, 1),
        "peak_gpu_memory_gib": (torch.cuda.max_memory_allocated() / 2**30
                                if torch.cuda.is_available() else None),
        "load_failures": module.total_load_failures(),
    }


def _float(value):
    return None if value is None else float(value)

