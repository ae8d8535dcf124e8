"""``ValidationHistory``: every validation a run made (epoch, top-1, top-5, videos, the top-1 of that
epoch's training batches, and the run's wall time when it ended: earlier sessions of a resumed run
included), in order.

results.json's ``val_history`` and the report's curves and convergence checks read it. Checkpoints
carry it (``val_history``), so a resumed run reports every epoch; testing a checkpoint (the best one
after fit, or one given to evaluate) does not replace the history of the run that is testing it.
"""

from __future__ import annotations

import time

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from .checkpoints import HISTORY_KEY, TrainingRecord


def _epoch_train_top1(module: L.LightningModule) -> float | None:
    """The top-1 of the training batches of the epoch this validation ends (the training transform,
    train-mode network), from the module's running metric; Lightning resets it only after the
    validation, at the epoch's end. Every rank reaches this point, so its sync over ranks is safe."""
    metrics = getattr(module, "metrics", None)
    metric = metrics["train_top1"] if metrics is not None and "train_top1" in metrics else None
    if metric is None or not metric.update_called:
        return None
    return float(metric.compute())


class ValidationHistory(L.Callback):
    def __init__(self):
        self.history: list[dict] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here the epoch's metrics are synced over ranks (no collective of our own: rank 0's progress
        # bar syncs at other points than the other ranks). Only validations that ran are recorded:
        # an epoch without one (check_val_every_n_epoch > 1) adds nothing.
        if trainer.sanity_checking:
            return
        logged = trainer.callback_metrics
        # the run's clock (TrainingRecord's, which counts a resumed run's earlier sessions): accuracy
        # against wall time, e.g. multigrid vs its base schedule
        clock = next((c for c in trainer.callbacks if isinstance(c, TrainingRecord)), None)
        self.history.append({"epoch": trainer.current_epoch, "top1": float(logged["val/top1"]),
                             "top5": float(logged["val/top5"]), "videos": int(logged["val/videos"]),
                             "train_top1": _epoch_train_top1(pl_module),
                             "wall_time_s": round(time.time() - clock.started, 2) if clock else None})

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[HISTORY_KEY] = self.history

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # only a resumed fit continues the run's history
            self.history = list(checkpoint.get(HISTORY_KEY, []))
