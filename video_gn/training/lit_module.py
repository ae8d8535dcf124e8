"""``VideoClassifier``: the LightningModule — loss, metrics, multi-view test, optimizer and schedule.

What a run records (validation history, per-video predictions, what its checkpoints carry) is the
callbacks' (``video_gn.record``, listed in ``conf/callbacks``), not the module's.

It takes primitives (the ``model``, ``norm`` and ``optim`` config mappings) and builds the network
itself, so ``save_hyperparameters()`` stays small and ``load_from_checkpoint`` works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from ..data.transforms import normalize
from ..models import build_network
from .optim import build_sgd, global_batch, lr_lambda, peak_lr_of

# How a network is computed on a machine, not what it is (``from_checkpoint``).
RUNTIME_DEFAULTS = {"impl": "torch", "channels_last_3d": False, "compile": False}


def average_view_predictions(logits: torch.Tensor) -> torch.Tensor:
    """``[B, V, K]`` logits of V views per video -> ``[B, K]`` mean of the per-view softmax."""
    return logits.float().softmax(-1).mean(1)


def scored_only(batch: dict) -> dict:
    """The batch without its unreadable videos (``scored`` False: the dataset could not decode them;
    they are in load_failures, not in any metric)."""
    scored = batch.get("scored")
    if scored is None or bool(scored.all()):
        return batch
    return {**batch, **{k: batch[k][scored] for k in ("video", "label", "index")}}


class VideoClassifier(L.LightningModule):
    """Args:
        model, norm, optim: the ``conf/model``, ``conf/norm`` and ``conf/optim`` mappings.
        num_classes: classifier outputs.
        batch_size_per_device: with the device count gives the global batch for the LR rule.
        mean, std: per-channel normalisation of uint8 clips, applied on the device.
        test_views_per_forward: views of a test video run through the network at once.
        multigrid: ``long`` / ``long_short`` when the clip shape changes during training; the LR of
            every step is then ``training.multigrid.MultigridLR``'s, from the peak LR here.
    """

    def __init__(self, *, model: Mapping, norm: Mapping, optim: Mapping, num_classes: int,
                 batch_size_per_device: int, mean: Sequence[float] = (0.45, 0.45, 0.45),
                 std: Sequence[float] = (0.225, 0.225, 0.225), test_views_per_forward: int = 10,
                 multigrid: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.net = build_network(dict(model), dict(norm), num_classes)
        self.channels_last = bool(model.get("channels_last_3d", False))
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last_3d)
        top5 = min(5, num_classes)
        self.metrics = torch.nn.ModuleDict({
            f"{stage}_{name}": MulticlassAccuracy(num_classes, top_k=k, average="micro")
            for stage in ("train", "val", "test") for name, k in (("top1", 1), ("top5", top5))
        })
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()

    def setup(self, stage: str) -> None:
        if (self.hparams.norm.get("kind") == "syncbn" and self.trainer.world_size > 1
                and self.device.type != "cuda"):
            raise ValueError("norm=syncbn syncs BN statistics over GPUs only (PyTorch's SyncBatchNorm "
                             "is CUDA-only); use norm=bn for DDP on CPU")

    def on_validation_start(self) -> None:
        self._share_rank_zero_statistics()

    def on_test_start(self) -> None:
        self._share_rank_zero_statistics()

    def _share_rank_zero_statistics(self) -> None:
        """Under DDP, every rank evaluates with rank 0's BN statistics: the ones its checkpoint saves.

        BN statistics are per device (``broadcast_buffers: false``, as in the paper), so each rank's
        running mean/var are its own; evaluated as they are, each rank's shard would be scored by a
        different network and the val metrics (and the best checkpoint they pick) would match none
        that is saved. This runs after precise BN (a callback hook, before the module's) and before
        the first batch. The ranks keep rank 0's afterwards: running statistics never enter a training
        step (train-mode BN normalises by the batch), so only evaluations see them, and those use
        rank 0's anyway."""
        if self.trainer.world_size > 1 and torch.distributed.is_initialized():
            for buffer in self.net.buffers():
                torch.distributed.broadcast(buffer, src=0)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.net(video)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        video = normalize(batch["video"], self.hparams.mean, self.hparams.std)
        if self.channels_last and video.dim() == 5:
            video = video.contiguous(memory_format=torch.channels_last_3d)
        return {**batch, "video": video}

    def _count_videos(self, stage: str, batch: dict) -> None:
        """Videos scored, summed over steps and ranks: each readable video once (the loaders never pad;
        an unreadable one is not scored)."""
        self.log(f"{stage}/videos", float(len(batch["label"])), on_step=False, on_epoch=True,
                 reduce_fx="sum", sync_dist=True, batch_size=1)

    def _log_accuracy(self, stage: str, scores: torch.Tensor, labels: torch.Tensor, **kw) -> None:
        for name in ("top1", "top5"):
            metric = self.metrics[f"{stage}_{name}"]
            if len(labels):
                metric(scores, labels)
            self.log(f"{stage}/{name}", metric, **kw)  # logged on every step: every rank syncs it

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(batch["video"])
        loss = F.cross_entropy(logits, batch["label"])
        self.train_loss(loss)
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True)
        self._log_accuracy("train", logits.detach(), batch["label"], on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        batch = scored_only(batch)
        logits = self(batch["video"]) if len(batch["label"]) else batch["video"].new_zeros(0)
        if len(batch["label"]):
            self.val_loss(F.cross_entropy(logits, batch["label"]))
        self.log("val/loss", self.val_loss, on_epoch=True)
        self._log_accuracy("val", logits, batch["label"], on_epoch=True, prog_bar=True)
        self._count_videos("val", batch)

    def predict_views(self, video: torch.Tensor) -> torch.Tensor:
        """``[B, V, C, T, H, W]`` -> ``[B, K]``: softmax averaged over each video's V views."""
        b, v = video.shape[:2]
        views = video.flatten(0, 1)
        logits = torch.cat([self(chunk) for chunk in views.split(self.hparams.test_views_per_forward)])
        return average_view_predictions(logits.view(b, v, -1))

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, runtime: Mapping | None = None) -> VideoClassifier:
        """The network a loaded checkpoint of ours describes, with its weights. The checkpoint holds
        the weights: the files it was started from (``pretrained_2d/3d``) need not exist any more.

        How the run computed it (``norm.impl``, ``runtime.channels_last_3d``, ``runtime.compile``) is not
        part of the network — the same weights, the same function — so it is not taken from the
        checkpoint (a Triton-trained one still evaluates on a CPU): ``runtime`` gives this machine's
        choices, ``{"impl": ..., "channels_last_3d": ..., "compile": ...}``; default PyTorch's GN,
        contiguous layout, eager."""
        saved = checkpoint["hyper_parameters"]
        runtime = {**RUNTIME_DEFAULTS, **(runtime or {})}
        model = {**saved["model"], "pretrained_2d": None, "pretrained_3d": None,
                 "channels_last_3d": runtime["channels_last_3d"], "compile": runtime["compile"]}
        module = cls(**{**saved, "model": model, "norm": {**saved["norm"], "impl": runtime["impl"]}})
        module.load_state_dict(checkpoint["state_dict"])
        return module

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        """The multi-view test of one batch; returns the scored videos' ``index``, ``label`` and
        per-video ``probs`` (what ``PredictionWriter`` writes to ``predictions.csv``)."""
        batch = scored_only(batch)
        probs = self.predict_views(batch["video"]) if len(batch["label"]) else batch["video"].new_zeros(0)
        self._log_accuracy("test", probs, batch["label"], on_epoch=True)
        self._count_videos("test", batch)
        return {"index": batch["index"], "label": batch["label"], "probs": probs}

    def global_batch(self) -> int:
        return global_batch(self.hparams.batch_size_per_device, self.trainer)

    def peak_lr(self) -> float:
        """``optim.lr``, or the linear scaling rule's LR for the global batch."""
        return peak_lr_of(self.hparams.optim, self.global_batch())

    def configure_optimizers(self):
        o = self.hparams.optim
        optimizer = build_sgd(self.net, self.peak_lr(), o["momentum"], o["nesterov"], o["weight_decay"],
                              o.get("norm_weight_decay"))
        if self.hparams.multigrid:
            return optimizer  # MultigridLR sets each step's LR from the shape schedule
        total = int(self.trainer.estimated_stepping_batches)
        steps_per_epoch = max(1, total // max(1, self.trainer.max_epochs or 1))
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(
            o["schedule"], total, int(o.get("warmup_epochs", 0) * steps_per_epoch),
            tuple(o.get("milestones") or ()), o.get("gamma", 0.1)))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
