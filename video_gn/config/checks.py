"""``check_config(cfg)``: every config value checked when the run is built, before any work.

Each message names the key, the value and the allowed range, so a typo costs seconds, not a failed
job after the data loaded, or a run that silently does something else (a crop larger than the eval
short side would be zero-padded; ``max_epochs=0`` would test an untrained network). The allowed
values come from the modules that use them. What needs the files (the manifests, the class list, a
checkpoint) is checked where they are read, still before the first step. Hydra's own errors for
unknown keys stay as they are (``overrides`` explains them).
"""

from __future__ import annotations

import math
import sys
from functools import reduce

import torch
from omegaconf import DictConfig, OmegaConf

from ..data.datamodule import SHORT_VIDEOS
from ..data.decode import DECODERS
from ..errors import ConfigError
from ..models import build_network, model_gn_groups
from ..models.norm import GN_IMPLS, NORM_KINDS, NormLayer, NormSpec, instance_norm_warning
from ..plan import RunPlan, plan_run
from ..training.multigrid import BN_STATISTICS
from ..training.multigrid import KINDS as MULTIGRID_KINDS
from ..training.optim import SCHEDULES


def check_config(cfg: DictConfig) -> RunPlan:
    """Raises :class:`ConfigError` for the first value outside its range; returns the run's plan
    (``plan.plan_run``), its multigrid shapes checked through the network."""
    _check_data(cfg.data)
    _check_optim(cfg.optim)
    if cfg.get("train", True):
        epochs = cfg.trainer.get("max_epochs")
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            # -1 (Lightning's "until max_steps") would make the whole run one epoch for the schedule:
            # the warmup and the decay are set in epochs, so the number of epochs must be known.
            raise ConfigError(f"trainer.max_epochs={epochs}: must be a number of epochs >= 1 (the LR "
                              "warmup and schedule are set in epochs); to evaluate a checkpoint without "
                              "training use train=false ckpt_path=PATH")
    _check_trainer(cfg.trainer)
    probe = _check_network(cfg)
    if cfg.get("train", True):
        _check_multigrid(cfg)
    plan = plan_run(cfg)
    if plan.schedule is not None:
        _check_multigrid_shapes(cfg, plan, probe)
    return plan


def _check_trainer(t: DictConfig) -> None:
    devices = t.get("devices")
    if t.get("accelerator") == "cpu" and isinstance(devices, int) and devices > 1 and not t.get("strategy"):
        # Lightning would start its subprocess DDP launcher (the command re-run per rank, BN buffers
        # broadcast from rank 0 every step): not per-device BN, and fragile under Hydra.
        raise ConfigError(f"trainer.devices={devices} on the CPU accelerator: several CPU processes train "
                          f"with trainer=ddp_cpu (DDP over gloo, BN per process): python run.py "
                          f"trainer=ddp_cpu trainer.devices={devices}")
    if isinstance(devices, int) and (devices == 0 or devices < -1):
        raise ConfigError(f"trainer.devices={devices}: must be a number of devices >= 1 (or -1: all)")


def _at_least(key: str, value, low) -> None:
    if not _number(value) or value < low:
        raise ConfigError(f"{key}={value}: must be a number >= {low}")


def _check_data(d: DictConfig) -> None:
    for key in ("batch_size_per_device", "frames_per_clip", "frame_stride", "crop_size", "num_classes",
                "num_test_clips", "num_test_crops", "eval_short_side"):
        _at_least(f"data.{key}", d.get(key), 1)
    _at_least("data.num_workers", d.get("num_workers"), 0)
    _at_least("data.max_retries", d.get("max_retries"), 0)
    _one_of("data.decoder", d.get("decoder"), DECODERS)
    _one_of("data.short_videos", d.get("short_videos", SHORT_VIDEOS[0]), SHORT_VIDEOS)
    short = list(d.get("train_short_side") or [])
    if len(short) != 2 or short[0] > short[1]:
        raise ConfigError(f"data.train_short_side={short}: must be [low, high] with low <= high")
    if d.crop_size > short[0]:
        raise ConfigError(f"data.crop_size={d.crop_size} is larger than the smallest training short "
                          f"side data.train_short_side[0]={short[0]}: the crop would not fit")
    if d.crop_size > d.eval_short_side:
        raise ConfigError(f"data.crop_size={d.crop_size} is larger than data.eval_short_side="
                          f"{d.eval_short_side}: validation and test crops would not fit; lower the crop "
                          "or raise the short side")
    for key in ("mean", "std"):
        values = list(d.get(key) or [])
        if len(values) != 3:
            raise ConfigError(f"data.{key}={values}: must be 3 numbers (R, G, B)")
    if not all(_number(v) for v in [*d.mean, *d.std]) or min(d.std) <= 0:
        raise ConfigError(f"data.mean={list(d.mean)} / data.std={list(d.std)}: numbers, every std > 0")


def _one_of(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value}: must be one of {', '.join(allowed)}")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_optim(o: DictConfig) -> None:
    if o.get("lr") is not None and not (_number(o.lr) and o.lr > 0):
        raise ConfigError(f"optim.lr={o.lr}: must be a number > 0 (or null to scale optim.base_lr)")
    if o.get("lr") is None and not (_number(o.get("base_lr")) and o.base_lr > 0):
        raise ConfigError(f"optim.base_lr={o.get('base_lr')}: must be a number > 0")
    _one_of("optim.schedule", o.get("schedule"), SCHEDULES)
    _at_least("optim.base_batch", o.get("base_batch"), 1)
    _at_least("optim.weight_decay", o.get("weight_decay"), 0)
    if o.get("norm_weight_decay") is not None:
        _at_least("optim.norm_weight_decay", o.norm_weight_decay, 0)
    momentum = o.get("momentum")
    if not _number(momentum) or not 0 <= momentum < 1:
        raise ConfigError(f"optim.momentum={momentum}: must be in [0, 1)")
    _at_least("optim.warmup_epochs", o.get("warmup_epochs", 0), 0)
    milestones = list(o.get("milestones") or [])
    if any(not _number(m) or not 0 < m < 1 for m in milestones):
        raise ConfigError(f"optim.milestones={milestones}: fractions of training, each in (0, 1)")


def _divisors(n: int) -> list[int]:
    return [g for g in range(1, n + 1) if n % g == 0]


def _check_network(cfg: DictConfig) -> torch.nn.Module:
    """Builds the network on the meta device (no memory, no files read) to check the norm against
    every width and the clip against the network's first conv."""
    model = {**OmegaConf.to_container(cfg.model, resolve=True), "pretrained_2d": None, "pretrained_3d": None}
    norm = OmegaConf.to_container(cfg.norm, resolve=True)
    _one_of("norm.kind", norm.get("kind"), NORM_KINDS)
    _one_of("norm.impl", norm.get("impl", GN_IMPLS[0]), GN_IMPLS)
    with torch.device("meta"):
        try:
            probe = build_network(model, {**norm, "kind": "bn", "impl": "torch"}, cfg.data.num_classes)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model: {e}") from None
    widths = sorted({m.num_features for m in probe.modules() if isinstance(m, torch.nn.BatchNorm3d)})
    common = reduce(math.gcd, widths)
    if norm.get("kind") == "gn":
        if norm.get("group_size") is not None and norm.get("num_groups") is not None:
            raise ConfigError(f"norm.num_groups={norm['num_groups']} and norm.group_size="
                              f"{norm['group_size']}: GN's groups are set one way, give one (G, or channels "
                              "per group)")
        if norm.get("num_groups") is None and norm.get("group_size") is None:
            norm = {**norm, "num_groups": model_gn_groups(model, cfg.data.num_classes)}  # the plan's G
        if norm.get("group_size") is not None:
            size = norm["group_size"]
            if not isinstance(size, int) or size < 1 or common % size:
                raise ConfigError(f"norm.group_size={size}: must divide every width of model.arch="
                                  f"{cfg.model.arch} ({', '.join(map(str, widths))}); allowed: "
                                  f"{', '.join(map(str, _divisors(common)))}")
        else:
            groups = norm.get("num_groups")
            if not isinstance(groups, int) or groups < 1 or common % groups:
                raise ConfigError(f"norm.num_groups={groups}: must divide every width of model.arch="
                                  f"{cfg.model.arch} ({', '.join(map(str, widths))}); allowed: "
                                  f"{', '.join(map(str, _divisors(common)))} (or set norm.group_size)")
        spec = NormSpec.from_config(norm)  # every width is divisible now: the groups of each layer
        layout = [NormLayer(name, "gn", m.num_features, spec.groups_for(m.num_features))
                  for name, m in probe.named_modules() if isinstance(m, torch.nn.BatchNorm3d)]
        warning = instance_norm_warning(layout, "gn")
        if warning:
            print(warning, file=sys.stderr)
    if norm.get("precise_bn_batches") is not None:
        batches = norm["precise_bn_batches"]
        if not isinstance(batches, int) or isinstance(batches, bool) or batches < 0:
            raise ConfigError(f"norm.precise_bn_batches={batches}: must be 0 (off) or a number of training "
                              "batches >= 1")
    if norm.get("eps") is not None and not (_number(norm["eps"]) and norm["eps"] > 0):
        raise ConfigError(f"norm.eps={norm['eps']}: must be > 0")
    first = next(m for m in probe.modules() if isinstance(m, torch.nn.Conv3d))
    if cfg.data.frames_per_clip < first.kernel_size[0]:
        raise ConfigError(f"data.frames_per_clip={cfg.data.frames_per_clip} is below the temporal kernel "
                          f"of model.arch={cfg.model.arch}'s first conv ({first.kernel_size[0]} frames)")
    clip = torch.empty(1, 3, cfg.data.frames_per_clip, cfg.data.crop_size, cfg.data.crop_size, device="meta")
    try:
        probe.eval()(clip)
    except RuntimeError as e:
        raise ConfigError(f"data.frames_per_clip={cfg.data.frames_per_clip} x data.crop_size="
                          f"{cfg.data.crop_size} is too small for model.arch={cfg.model.arch}: "
                          f"{str(e).splitlines()[0]}") from None
    return probe


def _check_multigrid(cfg: DictConfig) -> None:
    """The multigrid group's values."""
    m = cfg.get("multigrid")
    if m is None:
        return
    _one_of("multigrid.kind", m.get("kind"), MULTIGRID_KINDS)
    if m.kind == "off":
        return
    _one_of("multigrid.bn_statistics", m.get("bn_statistics"), BN_STATISTICS)
    if m.bn_statistics == "sub_batch" and cfg.norm.kind == "syncbn":
        raise ConfigError("multigrid.bn_statistics=sub_batch splits norm=bn's batches; norm=syncbn syncs "
                          "whole batches over the devices: use norm=bn, or "
                          "multigrid.bn_statistics=whole_batch")
    if not isinstance(m.get("cycles"), int) or m.cycles < 1:
        raise ConfigError(f"multigrid.cycles={m.get('cycles')}: must be a whole number >= 1")
    ft = m.get("finetune_fraction")
    if not _number(ft) or not 0 < ft < 1:
        raise ConfigError(f"multigrid.finetune_fraction={ft}: must be in (0, 1)")
    if not _number(m.get("epoch_factor")) or m.epoch_factor <= 0:
        raise ConfigError(f"multigrid.epoch_factor={m.get('epoch_factor')}: must be a number > 0")
    factors = [list(f) for f in m.get("long_cycle_factors") or []]
    if not factors or any(len(f) != 2 or not all(_number(v) and 0 < v <= 1 for v in f) for f in factors):
        raise ConfigError(f"multigrid.long_cycle_factors={factors}: [T factor, S factor] pairs, "
                          "each in (0, 1]")
    short = list(m.get("short_cycle_factors") or [])
    if not all(_number(v) and 0 < v <= 1 for v in short):
        raise ConfigError(f"multigrid.short_cycle_factors={short}: crop factors, each in (0, 1]")
    epochs = m.get("base_epochs")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ConfigError(f"multigrid.base_epochs={epochs} (trainer.max_epochs unless set): the base "
                          "schedule's epochs, must be a whole number >= 1")


def _check_multigrid_shapes(cfg: DictConfig, plan: RunPlan, probe: torch.nn.Module) -> None:
    """Every shape of the multigrid schedule through the (meta) network."""
    kind = plan.multigrid
    for phase in plan.schedule.phases:
        for it in phase.iterations:
            if it.frames < 1 or it.crop < 1:
                raise ConfigError(f"multigrid={kind}: epochs {phase.start_epoch}-{phase.end_epoch} "
                                  f"would read {it.frames} frames x {it.crop} px from data.frames_per_clip="
                                  f"{cfg.data.frames_per_clip}, data.crop_size={cfg.data.crop_size}")
            try:
                probe.eval()(torch.empty(1, 3, it.frames, it.crop, it.crop, device="meta"))
            except RuntimeError as e:
                raise ConfigError(f"multigrid={kind}: its {it.frames} frames x {it.crop} px clips (epochs "
                                  f"{phase.start_epoch}-{phase.end_epoch}) are too small for model.arch="
                                  f"{cfg.model.arch}: {str(e).splitlines()[0]}") from None
