"""Multigrid training (Wu, Girshick, He, Feichtenhofer, Krähenbühl, CVPR 2020): the clip shape and the
batch change during training so that clips x frames x pixels per device stays constant
(``multigrid=long|long_short``; ``off`` by default).

- **Long cycle**, per epoch: shapes (T, S) = (¼T₀, S₀/√2), (½T₀, S₀/√2), (½T₀, S₀), (T₀, S₀) with
  clips per device × round(T₀S₀² / (TS²)) and the LR × the same factor (linear in the batch). The
  frame stride grows as T shrinks (× T₀ // T), so a clip spans the same time. Each LR stage of the
  base schedule runs the cycle once, its epochs split over the shapes ∝ their mean batch (the same
  iterations at each shape); then a fine-tune phase at the base shape; total epochs × ``epoch_factor``.
- **Short cycle** (``long_short``), per iteration: crops S₀/2, S₀/√2 and the current one, the batch
  × round((S/s)²); the LR stays the long cycle's (as PySlowFast).

The schedule is PySlowFast's (``slowfast/utils/multigrid.py``: same shapes, the same epoch allocation
and rounding), for any base schedule: its LR stages are ``optim.milestones`` for ``optim.schedule=step``
(the stage after the last milestone is the fine-tune, as there), and for ``cosine``/``constant``, which
have no stages, ``cycles`` equal stages over the first ``1 - finetune_fraction`` of the epochs. The LR
at a point of the multigrid run is the base schedule's at the matching point of the base run (stage k
of one maps linearly onto stage k of the other) times the current shape's batch factor. (PySlowFast's
fine-tune runs its first half at the previous stage's LR; here it follows the base schedule's last
stage.) Validation and test stay at the base shape.

Nothing is rebuilt when the shape changes: the loader is one ``DataLoader`` whose batch sampler
(``data.shape_sampler``) puts each clip's shape beside its index; GN's statistics are per clip, and
BN's are fixed to the base clips per device by ``models.norm.SubBatchNorm3d`` (``bn_statistics``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import lightning as L

from ..errors import ConfigError
from .optim import lr_lambda

log = logging.getLogger(__name__)

KINDS = ("off", "long", "long_short")
BN_STATISTICS = ("sub_batch", "whole_batch")
# the base schedule's LR evaluated at this many points per epoch (a step-free function of the position)
_LR_RESOLUTION = 1000


@dataclass(frozen=True)
class IterationShape:
    """What one training iteration reads: clips per device and each clip's frames, stride and crop."""

    clips: int
    frames: int
    stride: int
    crop: int


@dataclass(frozen=True)
class Phase:
    """Epochs ``[start_epoch, end_epoch)`` at one long-cycle shape.

    ``stage``: the base schedule's LR stage (the last one is the fine-tune). ``batch_factor``: clips
    per device and LR relative to the base. ``iterations``: the shapes its iterations cycle through
    (one without the short cycle).
    """

    stage: int
    start_epoch: int
    end_epoch: int
    batch_factor: int
    frames: int
    stride: int
    crop: int
    iterations: tuple[IterationShape, ...]
    finetune: bool


@dataclass(frozen=True)
class MultigridSchedule:
    kind: str
    base_clips: int
    base_frames: int
    base_stride: int
    base_crop: int
    base_epochs: int
    phases: tuple[Phase, ...]
    # stage k spans base epochs [base_stage_bounds[k], base_stage_bounds[k+1]) and multigrid epochs
    # [stage_bounds[k], stage_bounds[k+1])
    base_stage_bounds: tuple[float, ...]
    stage_bounds: tuple[int, ...]

    @property
    def epochs(self) -> int:
        return self.phases[-1].end_epoch

    def phase_at(self, epoch: int) -> Phase:
        for phase in self.phases:
            if epoch < phase.end_epoch:
                return phase
        return self.phases[-1]

    def base_position(self, position: float) -> float:
        """The point of the base run (in its epochs) matching ``position`` (epochs) of this one."""
        bounds, base = self.stage_bounds, self.base_stage_bounds
        for k in range(len(bounds) - 1):
            if position < bounds[k + 1] or k == len(bounds) - 2:
                span = max(1, bounds[k + 1] - bounds[k])
                return base[k] + (base[k + 1] - base[k]) * min(1.0, (position - bounds[k]) / span)
        return base[-1]

    def largest_batch(self) -> int:
        return max(it.clips for p in self.phases for it in p.iterations)

    def record(self) -> dict:
        """What results.json keeps of the schedule."""
        return {"kind": self.kind, "epochs": self.epochs, "base_epochs": self.base_epochs,
                "base_shape": {"clips": self.base_clips, "frames": self.base_frames,
                               "stride": self.base_stride, "crop": self.base_crop},
                "phases": [{**asdict(p), "iterations": [asdict(i) for i in p.iterations]}
                           for p in self.phases]}


def build_schedule(kind: str, *, base_clips: int, base_frames: int, base_stride: int, base_crop: int,
                   base_epochs: int, base_stage_bounds: Sequence[float],
                   long_cycle_factors: Sequence[Sequence[float]] = ((0.25, 0.5 ** 0.5), (0.5, 0.5 ** 0.5),
                                                                    (0.5, 1.0), (1.0, 1.0)),
                   short_cycle_factors: Sequence[float] = (0.5, 0.5 ** 0.5),
                   epoch_factor: float = 1.5) -> MultigridSchedule:
    """PySlowFast's long-cycle schedule (``get_long_cycle_schedule``) for a base run of
    ``base_epochs`` whose LR stages start at ``base_stage_bounds`` (``[0, ..., start of the fine-tune]``).

    Args:
        kind: ``long`` or ``long_short``.
        base_clips, base_frames, base_stride, base_crop: the base run's shape (clips per device, T,
            frame stride, crop S).
    """
    if kind not in ("long", "long_short"):
        raise ValueError(f"multigrid.kind={kind!r}: a schedule is built for long or long_short")
    bounds = [float(b) for b in base_stage_bounds]
    if (len(bounds) < 2 or bounds[0] != 0 or any(b <= a for a, b in zip(bounds[:-1], bounds[1:], strict=True))
            or bounds[-1] >= base_epochs):
        raise ValueError(f"base stage bounds {bounds} must rise from 0 to below the {base_epochs} epochs")
    volume = base_frames * base_crop ** 2
    short = [base_crop * f for f in short_cycle_factors] if kind == "long_short" else []
    cycle = []  # per long-cycle shape: (T, S, batch factor, its iterations as (batch factor, crop))
    mean_factors = []  # the epoch allocation's mean batch per shape (PySlowFast: unrounded short crops)
    for t_factor, s_factor in long_cycle_factors:
        frames, crop = round(base_frames * t_factor), round(base_crop * s_factor)
        factor = round(volume / (frames * crop * crop))  # a whole multiple of the base clips
        # PySlowFast's short-cycle batches: x round((S / s)^2) of the current one
        iterations = [(factor * round((crop / s) ** 2), round(s)) for s in short] + [(factor, crop)]
        cycle.append((frames, crop, factor, iterations))
        mean_factors.append(sum(round(volume / (frames * s * s)) for s in [*short, crop]) / len(iterations))

    raw, base_iterations = [], 0.0  # (stage, shape, epochs before scaling, fine-tune)
    for stage in range(len(bounds) - 1):
        stage_epochs = bounds[stage + 1] - bounds[stage]
        for shape, mean in zip(cycle, mean_factors, strict=True):
            epochs = stage_epochs * mean / sum(mean_factors)  # the same iterations at every shape
            base_iterations += epochs / mean
            raw.append((stage, shape, epochs, False))
    saving = bounds[-1] / base_iterations
    # the fine-tune saves as many iterations as the rest of training
    raw.append((len(bounds) - 1, cycle[-1], (base_epochs - bounds[-1]) / saving * mean_factors[-1], True))
    scale = base_epochs * epoch_factor / sum(r[2] for r in raw)

    phases, stage_starts, total, start = [], {}, 0.0, 0
    for stage, (frames, crop, factor, iterations), epochs, finetune in raw:
        total += epochs * scale
        end = int(round(total))  # cumulative rounding, as PySlowFast
        stage_starts.setdefault(stage, start)
        stride = base_stride * (base_frames // frames)  # the same time span per clip
        shapes = tuple(IterationShape(base_clips * f, frames, stride, c) for f, c in iterations)
        if end > start:  # a phase rounded to no epoch is left out
            phases.append(Phase(stage, start, end, factor, frames, stride, crop, shapes, finetune))
        start = end
    return MultigridSchedule(kind, base_clips, base_frames, base_stride, base_crop, base_epochs,
                             tuple(phases), (*bounds, float(base_epochs)),
                             (*stage_starts.values(), start))


def schedule_from_config(cfg) -> MultigridSchedule | None:
    """The run's schedule from ``multigrid`` (``base_epochs``: ``trainer.max_epochs`` unless set),
    ``data`` and ``optim``; None when
    ``multigrid=off`` (or the config has no multigrid group). Called once per run, by
    ``plan.plan_run``: everything else takes the plan's schedule."""
    m = cfg.get("multigrid")
    if m is None or m.kind == "off":
        return None
    epochs, o, d = int(m.base_epochs), cfg.optim, cfg.data
    if o.schedule == "step":
        if not o.milestones:
            raise ConfigError(f"multigrid={m.kind} with optim.schedule=step runs one long cycle per LR "
                              "stage: optim.milestones must list at least one")
        stage_bounds = [0.0, *(f * epochs for f in o.milestones)]
    else:
        ft = float(m.finetune_fraction)
        stage_bounds = [k * epochs * (1 - ft) / m.cycles for k in range(m.cycles + 1)]
    return build_schedule(m.kind, base_clips=int(d.batch_size_per_device), base_frames=int(d.frames_per_clip),
                          base_stride=int(d.frame_stride), base_crop=int(d.crop_size), base_epochs=epochs,
                          base_stage_bounds=stage_bounds,
                          long_cycle_factors=[tuple(f) for f in m.long_cycle_factors],
                          short_cycle_factors=list(m.short_cycle_factors), epoch_factor=float(m.epoch_factor))


def lr_multiplier(schedule: MultigridSchedule, optim: Mapping) -> Callable[[float], float]:
    """``position`` (epochs into the multigrid run, fractional) -> multiplier of the base peak LR: the
    base schedule's multiplier at the matching point of the base run × the current batch factor."""
    base = lr_lambda(optim["schedule"], schedule.base_epochs * _LR_RESOLUTION,
                     int(optim.get("warmup_epochs", 0) * _LR_RESOLUTION),
                     tuple(optim.get("milestones") or ()), optim.get("gamma", 0.1))

    def multiplier(position: float) -> float:
        phase = schedule.phase_at(math.floor(position))
        return base(int(schedule.base_position(position) * _LR_RESOLUTION)) * phase.batch_factor

    return multiplier


class MultigridLR(L.Callback):
    """Sets the LR of every step from the epoch position (epoch + batch / batches in the epoch):
    stateless, so a resumed run continues on the same curve. The module's peak LR is the base one
    (``VideoClassifier.peak_lr``, LR rule at the base clips per device)."""

    def __init__(self, schedule: MultigridSchedule, optim: Mapping):
        self.schedule, self.multiplier = schedule, lr_multiplier(schedule, optim)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx: int) -> None:
        position = trainer.current_epoch + batch_idx / max(1, trainer.num_training_batches)
        lr = pl_module.peak_lr() * self.multiplier(position)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module) -> None:
        phase = self.schedule.phase_at(trainer.current_epoch)
        if trainer.current_epoch == phase.start_epoch:
            shapes = ", ".join(f"{i.clips}x{i.frames}x{i.crop}²" for i in phase.iterations)
            log.info("multigrid epoch %d: stage %d%s, clips x frames x crop² %s, frame stride %d",
                     trainer.current_epoch, phase.stage, " (fine-tune)" if phase.finetune else "", shapes,
                     phase.stride)
