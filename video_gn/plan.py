"""The run plan: what a training run does, decided once from the checked config.

``plan_run(cfg)`` is the one place that reads the multigrid group, turns ``trainer.max_epochs`` into
the epochs the trainer runs, and decides how BN computes its statistics under multigrid. ``train``
builds it first (``config.checks.check_config`` returns it) and hands it to the datamodule, the
module, the trainer and the results record; ``python -m video_gn.summary`` prints the same plan.
Nothing downstream derives these again from ``cfg``.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError
from .models import model_gn_groups
from .training.multigrid import MultigridSchedule, schedule_from_config


@dataclass(frozen=True)
class RunPlan:
    """Args:
        train: fit then test (False: ``train=false`` evaluates given weights).
        base_epochs: the base schedule's epochs: ``trainer.max_epochs``, or under multigrid
            ``multigrid.base_epochs`` (which defaults to it).
        schedule: the multigrid schedule (None: the base clip shape throughout).
        norm: the network's norm settings: ``cfg.norm`` with GN's G resolved (``norm.num_groups:
            null`` -> the model's), and for BN under multigrid with ``bn_statistics=sub_batch`` its
            ``sub_batch`` (the base clips per device).
        bn_statistics: BN under multigrid: ``sub_batch`` or ``whole_batch`` (None otherwise).
    """

    train: bool
    base_epochs: int | None
    schedule: MultigridSchedule | None
    norm: dict
    bn_statistics: str | None

    @property
    def epochs(self) -> int | None:
        """The epochs the trainer runs: the multigrid schedule's (``epoch_factor`` × the base), or
        ``trainer.max_epochs``; None when nothing is trained."""
        return self.schedule.epochs if self.schedule else self.base_epochs

    @property
    def multigrid(self) -> str | None:
        """``long`` / ``long_short``, or None."""
        return self.schedule.kind if self.schedule else None

    def multigrid_record(self) -> dict | None:
        """What results.json and every checkpoint's training record keep of multigrid: the schedule
        and, for BN, whether its statistics were over sub-batches of the base clips or the batch."""
        if self.schedule is None:
            return None
        return {**self.schedule.record(), "bn_statistics": self.bn_statistics}


def plan_run(cfg: DictConfig) -> RunPlan:
    """The plan of the run ``cfg`` describes (its values already checked)."""
    train = bool(cfg.get("train", True))
    norm = OmegaConf.to_container(cfg.norm, resolve=True)
    if norm["kind"] == "gn" and norm.get("num_groups") is None and norm.get("group_size") is None:
        norm["num_groups"] = model_gn_groups(OmegaConf.to_container(cfg.model, resolve=True),
                                             cfg.data.num_classes)
    schedule = multigrid_schedule(cfg) if train else None
    bn_statistics = None
    if schedule is not None and norm["kind"] in ("bn", "syncbn"):
        bn_statistics = cfg.multigrid.bn_statistics
        if norm["kind"] == "bn" and bn_statistics == "sub_batch":
            # BN's statistics stay over the base clips per device while multigrid grows the batch
            norm["sub_batch"] = int(cfg.data.batch_size_per_device)
    base_epochs = int(cfg.multigrid.base_epochs if schedule else cfg.trainer.max_epochs) if train else None
    return RunPlan(train=train, base_epochs=base_epochs,
                   schedule=schedule, norm=norm, bn_statistics=bn_statistics)


def multigrid_schedule(cfg: DictConfig) -> MultigridSchedule | None:
    try:
        return schedule_from_config(cfg)
    except ValueError as e:  # build_schedule's own checks of the derived stage bounds
        raise ConfigError(f"multigrid={cfg.multigrid.kind}: {e}") from None
