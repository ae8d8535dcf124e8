"""The ``lightning.Trainer`` of a run: its callbacks and loggers from the config, atomic checkpoint
writes, and the two ways the machine (not the config) can stop it, each one clear line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from ..errors import MACHINE_ERRNOS, ConfigError, ResourceError
from ..record.checkpoints import AtomicCheckpointIO, last_checkpoint
from ..record.loggers import log_config
from .multigrid import MultigridLR, MultigridSchedule
from .precise_bn import PreciseBatchNorm, batch_norm_layers

# Words in Lightning's error that tell which trainer key it is about.
TRAINER_ERROR_KEYS = (("accelerator", ("accelerator", "gpu backend", "torch_xla", "cuda")),
                      ("precision", ("precision",)), ("strategy", ("strategy",)), ("devices", ("devices",)))


def instantiate_group(group: DictConfig | None) -> list:
    """Every entry of a config group that names a ``_target_`` (``conf/callbacks``, ``conf/logger``)."""
    return [hydra.utils.instantiate(c) for c in (group or {}).values() if c and "_target_" in c]


def trainer_for(cfg: DictConfig, module: L.LightningModule, extra_callbacks: list = (),
                multigrid: MultigridSchedule | None = None) -> L.Trainer:
    """The configured trainer for ``module``: ``conf/callbacks`` plus ``extra_callbacks`` (and precise
    BN when ``norm.precise_bn_batches`` asks for it), ``conf/logger``, which get the config at once.
    ``multigrid``: the run's epochs are the schedule's, its LR the schedule's (``MultigridLR``), and the
    training loader is asked for every epoch (its length follows the shape)."""
    precise_bn = int(cfg.norm.get("precise_bn_batches") or 0)
    if precise_bn and not batch_norm_layers(module):
        raise ConfigError(f"norm.precise_bn_batches={precise_bn}: the network has no BatchNorm layer "
                          f"whose statistics could be recomputed (its norm is {module.hparams.norm['kind']})")
    callbacks = [*instantiate_group(cfg.get("callbacks")), *extra_callbacks]
    if precise_bn:
        callbacks.append(PreciseBatchNorm(precise_bn))
    overrides = {}
    if multigrid is not None:
        callbacks.append(MultigridLR(multigrid, module.hparams.optim))
        # the batch sampler shards the training set itself (ShapeBatchSampler), Lightning must not
        overrides = {"max_epochs": multigrid.epochs, "reload_dataloaders_every_n_epochs": 1,
                     "use_distributed_sampler": False}
    if any("MLFlowLogger" in str(c.get("_target_", "")) for c in (cfg.get("logger") or {}).values() if c):
        # logger=mlflow keeps a plain mlruns/ folder: MLflow's file store, which MLflow 3 only opens
        # when asked to, by this variable, read from the environment (a tracking_uri=sqlite:///... or
        # a server needs no such flag); set for runs that log to MLflow only
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    trainer = build_trainer(cfg, callbacks, instantiate_group(cfg.get("logger")) or False, **overrides)
    if trainer.is_global_zero:
        log_config(trainer.loggers, cfg)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    return trainer


def build_trainer(cfg: DictConfig, callbacks: list, loggers, **overrides) -> L.Trainer:
    """The configured ``lightning.Trainer``. A setting this machine or Lightning cannot honour (a GPU
    accelerator without CUDA, a precision or strategy name Lightning does not know, ``devices=0``) is
    one line naming the key, before anything is written."""
    try:
        return hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers,
                                       plugins=[AtomicCheckpointIO()], **overrides)
    except InstantiationException as e:
        cause = e.__cause__ or e
        why = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        key = next((k for k, words in TRAINER_ERROR_KEYS if any(w in why.lower() for w in words)), None)
        if key is None:
            raise ConfigError(f"trainer: {why}") from None
        message = f"trainer.{key}={cfg.trainer.get(key)}: {why}"
        if key == "accelerator" and not torch.cuda.is_available():
            message += ("; this machine has no CUDA GPU: run on the CPU with trainer=cpu (one process) or "
                        "trainer=ddp_cpu (DDP over CPU processes)")
        raise ConfigError(message) from None


@contextmanager
def stopped_by_the_machine(output_dir: Path) -> Iterator[None]:
    """A write that fails for a reason of the machine (disk full, permissions) ends the run with
    one clear line: checkpoints are written atomically, so the earlier ones are intact."""
    try:
        yield
    except OSError as e:
        if e.errno not in MACHINE_ERRNOS:
            raise
        last = last_checkpoint(output_dir)
        raise ResourceError(
            f"cannot write {e.filename or 'to ' + str(output_dir)}: {e.strerror}. The checkpoints "
            f"written before are intact{' (' + str(last) + ')' if last.is_file() else ''}; fix this and run "
            "the same command again: it resumes from last.ckpt") from None
