"""Optimizer parameter groups, the linear LR scaling rule, and per-step LR schedules."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..models.norm import is_norm


def param_groups(model: nn.Module, weight_decay: float, norm_weight_decay: float | None = None,
                 ) -> list[dict]:
    """Two groups: norm parameters (every norm kind, by ``is_norm``) and everything else.

    The paper applies weight decay to γ/β too, so ``norm_weight_decay=None`` means "same as the rest".
    """
    norm_params = {id(p) for m in model.modules() if is_norm(m) for p in m.parameters(recurse=False)}
    norm, other = [], []
    for p in model.parameters():
        if p.requires_grad:
            (norm if id(p) in norm_params else other).append(p)
    norm_wd = weight_decay if norm_weight_decay is None else norm_weight_decay
    return [{"params": other, "weight_decay": weight_decay},
            {"params": norm, "weight_decay": norm_wd}]


def scaled_lr(base_lr: float, global_batch: int, base_batch: int = 64) -> float:
    """Linear scaling rule: base LR at ``base_batch`` clips, proportional to the global batch."""
    return base_lr * global_batch / base_batch


def global_batch(batch_size_per_device: int, trainer) -> int:
    """Clips per optimizer step over every device: the batch the linear LR rule scales with."""
    return batch_size_per_device * trainer.world_size * trainer.accumulate_grad_batches


def peak_lr_of(optim, global_batch: int) -> float:
    """``optim.lr``, or the linear scaling rule's LR for the global batch: where the schedule peaks."""
    if optim.get("lr") is not None:
        return optim["lr"]
    return scaled_lr(optim["base_lr"], global_batch, optim["base_batch"])


SCHEDULES = ("step", "cosine", "constant")  # optim.schedule


def lr_lambda(schedule: str, total_steps: int, warmup_steps: int = 0,
              milestones: tuple[float, ...] = (), gamma: float = 0.1):
    """Multiplier of the peak LR at a given optimizer step (for ``LambdaLR``, stepped per step).

    ``step``: ×gamma at each milestone (fractions of training); ``cosine``: half-cosine to 0;
    ``constant``. All start with a linear warmup of ``warmup_steps``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule={schedule!r} is not one of {', '.join(SCHEDULES)}")
    boundaries = [int(f * total_steps) for f in milestones]

    def multiplier(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
        if schedule == "step":
            return warm * gamma ** sum(step >= b for b in boundaries)
        if schedule == "cosine":
            progress = min(1.0, max(0, step - warmup_steps) / max(1, total_steps - warmup_steps))
            return warm * 0.5 * (1 + math.cos(math.pi * progress))
        return warm

    return multiplier


def build_sgd(model: nn.Module, lr: float, momentum: float, nesterov: bool, weight_decay: float,
              norm_weight_decay: float | None = None) -> torch.optim.SGD:
    return torch.optim.SGD(param_groups(model, weight_decay, norm_weight_decay), lr=lr,
                           momentum=momentum, nesterov=nesterov)
