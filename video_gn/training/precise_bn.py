"""Precise BN: before each validation and the test, every BatchNorm layer's running mean and variance
are recomputed as the exact average over N training batches (``norm.precise_bn_batches=N``).

BN's running statistics are an exponential average taken while the weights were still moving, so
the last epochs' statistics can lag the final network; PySlowFast (``BN.USE_PRECISE_STATS``) and
fvcore (``update_bn_stats``) recompute them with the weights frozen. As there: N training batches
(the training transform), forwarded with no gradients, BN layers in train mode (their batch
statistics), everything else in eval mode (no dropout); the per-batch means and (unbiased) variances
are pooled, weighted by the elements each batch normalised. Under DDP each rank reads its own shard
and keeps its own statistics, as training does (BN is per device; the checkpoint holds rank 0's);
``norm=syncbn`` layers see the statistics of all ranks' batches, as in its training.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from itertools import islice

import lightning as L
import torch
from torch import nn

log = logging.getLogger(__name__)


def batch_norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Layers whose running statistics precise BN recomputes (BN and SyncBN; frozen BN has none to
    learn)."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def update_bn_stats(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Sets each BN layer's running mean/var to the element-weighted average of the batch statistics
    over ``batches`` (inputs, already on the model's device and normalised). Returns the number of
    batches used. The model's train/eval modes and BN momenta are restored."""
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    modes = {m: m.training for m in model.modules()}
    saved = [(bn.momentum, bn.num_batches_tracked.clone()) for bn in layers]
    mean_sums = [torch.zeros_like(bn.running_mean, dtype=torch.float64) for bn in layers]
    var_sums = [torch.zeros_like(bn.running_var, dtype=torch.float64) for bn in layers]
    elements = [0] * len(layers)
    counted = [0] * len(layers)

    def count_elements(index: int):
        def hook(module, inputs):
            x = inputs[0]
            counted[index] = x.numel() // x.shape[1]
        return hook

    hooks = [bn.register_forward_pre_hook(count_elements(i)) for i, bn in enumerate(layers)]
    model.eval()
    for bn in layers:
        bn.train()
        bn.momentum = 1.0  # running stats := this batch's stats (mean, unbiased var)
    used = 0
    try:
        for x in batches:
            model(x)
            for i, bn in enumerate(layers):
                mean_sums[i] += counted[i] * bn.running_mean.double()
                var_sums[i] += counted[i] * bn.running_var.double()
                elements[i] += counted[i]
            used += 1
    finally:
        for h in hooks:
            h.remove()
        for bn, (momentum, tracked) in zip(layers, saved, strict=True):
            bn.momentum = momentum
            bn.num_batches_tracked.copy_(tracked)
        for m, training in modes.items():
            m.train(training)
    if used:
        for i, bn in enumerate(layers):
            bn.running_mean.copy_(mean_sums[i] / elements[i])
            bn.running_var.copy_(var_sums[i] / elements[i])
    return used


class PreciseBatchNorm(L.Callback):
    """Recomputes BN statistics over ``num_batches`` training batches before every validation
    (not the sanity check) and before the test. The training batches come from
    ``datamodule.training_batches_loader`` (each rank its own shard)."""

    def __init__(self, num_batches: int):
        self.num_batches = num_batches

    def _recompute(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        loader = trainer.datamodule.training_batches_loader(trainer.world_size, trainer.global_rank,
                                                           epoch=trainer.current_epoch)

        inputs = (module.on_after_batch_transfer({**b, "video": b["video"].to(module.device)}, 0)["video"]
                  for b in islice(loader, self.num_batches))
        used = update_bn_stats(module, inputs)
        if used < self.num_batches:
            log.warning("precise BN: the training split has only %d batches per device; used them all "
                        "(norm.precise_bn_batches=%d)", used, self.num_batches)

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._recompute(trainer, module)

    def on_test_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._recompute(trainer, module)
