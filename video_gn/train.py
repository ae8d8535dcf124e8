"""``train(cfg)``: fit and test, or (``train=false``) evaluate given weights; either way the same
trainer set-up and the same files: ``<run dir>/results.json``, ``predictions.csv``,
``load_failures.csv``.

Fit: seed -> datamodule, module -> trainer (``training.trainer``) -> fit (resuming ``last.ckpt``
or ``ckpt_path``) -> the multi-view test of the best checkpoint. Evaluate: a checkpoint of ours
(``ckpt_path``) or imported weights (``model.pretrained_3d``) -> the same multi-view test.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import hydra
import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from .config.checks import check_config
from .config.classes import settle_num_classes
from .data.manifest import read_manifest
from .errors import ConfigError
from .files import atomic_write_text
from .models.provenance import init_record, sha256_of, with_what_loaded
from .plan import RunPlan
from .record.checkpoints import (
    TRAINING_RECORD_KEY,
    TrainingRecord,
    checkpoint_role,
    history_in_last_checkpoint,
    last_checkpoint,
    read_checkpoint,
    resume_checkpoint,
)
from .record.history import ValidationHistory
from .record.load_failures import LoadFailureLog, write_load_failures_csv
from .record.loggers import log_results
from .record.predictions import PredictionWriter, prediction_results
from .record.results import RESULTS_FILE, as_float, results_summary
from .training.epoch_seed import EpochSeed
from .training.launch import ranks_run_this_job, remove_if_empty_run
from .training.lit_module import VideoClassifier
from .training.optim import global_batch, peak_lr_of
from .training.trainer import stopped_by_the_machine, trainer_for

log = logging.getLogger(__name__)


def train(cfg: DictConfig, overrides: list[str] | None = None) -> float | None:
    """Trains (unless ``train=false``) and tests one configuration; returns the test top-1 (for
    Hydra sweepers). ``overrides``: the command line's, kept in results.json. A run that fails
    before writing anything leaves no folder behind."""
    output_dir = Path(cfg.paths.output_dir)
    try:
        settle_num_classes(cfg)  # data.num_classes: null -> the prepared dataset's classes.txt
        # every value in range, before any work; then the plan (epochs, multigrid, BN's statistics),
        # decided once and handed to everything below
        plan = check_config(cfg)
        run = RunInputs(cfg, plan, output_dir, list(overrides or []))
        if plan.train:
            return fit_and_test(run)
        return evaluate(run)
    finally:
        if rank_zero_only.rank == 0:
            remove_if_empty_run(output_dir)


@dataclass(frozen=True)
class RunInputs:
    cfg: DictConfig
    plan: RunPlan
    output_dir: Path
    overrides: list[str]


def fit_and_test(run: RunInputs) -> float | None:
    cfg, plan, output_dir = run.cfg, run.plan, run.output_dir
    # A damaged checkpoint to resume is a clear error before any logger writes a byte.
    resume = resume_checkpoint(cfg.get("ckpt_path"), output_dir)
    ckpt_path, started = resume.ckpt_path, time.time() - resume.earlier_wall_time
    init = init_record(cfg.model)  # fails fast on an undecided init, before any work
    L.seed_everything(cfg.seed, workers=True)
    # partial first: Hydra would turn the schedule (a dataclass) into a config if given as a kwarg
    datamodule = hydra.utils.instantiate(cfg.data, _partial_=True)(
        seed=cfg.seed, first_epoch=resume.epoch, multigrid=plan.schedule)  # None unless multigrid is on
    module = build_module(cfg, plan)
    init = with_what_loaded(init, module.net)
    record = {"init": init, "seed": cfg.seed, "max_epochs": plan.epochs, "multigrid": plan.multigrid_record()}
    trainer = trainer_for(cfg, module, [TrainingRecord(record, started), EpochSeed(cfg.seed)],
                          multigrid=plan.schedule)
    network = compiled(module, cfg)
    test_metrics, tested = {}, {"checkpoint": None, "reason": None, "role": None}
    with running(output_dir):
        if ckpt_path:
            log.info("resuming from %s", ckpt_path)
        with stopped_by_the_machine(output_dir):
            trainer.fit(network, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        # Ranks started with spawn (trainer=ddp_cpu) kept the history in their own processes.
        history = validation_history(trainer) or history_in_last_checkpoint(output_dir)
        if cfg.get("test_after_fit"):
            ckpt, tested["checkpoint"], tested["reason"] = checkpoint_to_test(trainer, datamodule)
            final_test = {}
            if ckpt is not None:  # the final weights too, beside the best: no checkpoint selection
                final_test = multi_view_test(trainer, network, datamodule, final_weights(output_dir),
                                             write_predictions=False)
            test_metrics = multi_view_test(trainer, network, datamodule, ckpt)
            tested["final"] = final_test or test_metrics
    return write_results(run, trainer, module, datamodule, init, history, test_metrics, tested, started)


def evaluate(run: RunInputs) -> float | None:
    cfg, output_dir, started = run.cfg, run.output_dir, time.time()
    L.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data, seed=cfg.seed)
    module, init = module_to_evaluate(cfg, run.plan)
    trainer = trainer_for(cfg, module)
    network = compiled(module, cfg)
    with running(output_dir):
        test_metrics = multi_view_test(trainer, network, datamodule, None)
    tested = {"checkpoint": "given", "reason": "train=false evaluates the given weights",
              "role": init.get("role")}
    return write_results(run, trainer, module, datamodule, init, [], test_metrics, tested, started)


def build_module(cfg: DictConfig, plan: RunPlan) -> VideoClassifier:
    """The module of the configured network, with the plan's norm settings and multigrid kind."""
    # the runtime keys travel in the model mapping the module keeps (its hyperparameters, as always)
    model = {**OmegaConf.to_container(cfg.model, resolve=True), **runtime_of(cfg)}
    return VideoClassifier(
        model=model, norm=dict(plan.norm),
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        num_classes=cfg.data.num_classes, batch_size_per_device=cfg.data.batch_size_per_device,
        mean=list(cfg.data.mean), std=list(cfg.data.std), multigrid=plan.multigrid)


def runtime_of(cfg: DictConfig) -> dict:
    """``runtime``: how this machine computes the network (``channels_last_3d``, ``compile``)."""
    return {"channels_last_3d": bool(cfg.runtime.channels_last_3d), "compile": bool(cfg.runtime.compile)}


def compiled(module: VideoClassifier, cfg: DictConfig):
    return torch.compile(module) if cfg.runtime.compile else module


def module_to_evaluate(cfg: DictConfig, plan: RunPlan) -> tuple[VideoClassifier, dict]:
    """``train=false``: the network of ``ckpt_path`` (built from the hyperparameters saved in it), or
    the configured network with ``model.pretrained_3d`` loaded; and its init record."""
    if cfg.get("ckpt_path"):
        path = Path(cfg.ckpt_path)
        checkpoint = read_checkpoint(path, "ckpt_path")
        saved = checkpoint.get("hyper_parameters", {})
        if saved.get("num_classes") != cfg.data.num_classes:
            raise ConfigError(f"ckpt_path={path} classifies {saved.get('num_classes')} classes but "
                             f"data.num_classes={cfg.data.num_classes}")
        # How its weights were trained (scratch or which file, seed, epochs), so the report compares
        # this evaluation with the runs trained the same way.
        init = {"kind": "checkpoint", "file": path.name, "sha256": sha256_of(path),
                "trained": checkpoint.get(TRAINING_RECORD_KEY), "role": checkpoint_role(checkpoint, path)}
        # this run's way of computing the network, not the training run's (see from_checkpoint)
        runtime = {"impl": cfg.norm.get("impl", "torch"), **runtime_of(cfg)}
        return VideoClassifier.from_checkpoint(checkpoint, runtime), init
    if not cfg.model.get("pretrained_3d"):
        raise ConfigError("train=false evaluates given weights: set ckpt_path=PATH (a checkpoint of "
                         "ours) or model.pretrained_3d=PATH (an imported I3D model)")
    module = build_module(cfg, plan)
    return module, with_what_loaded(init_record(cfg.model), module.net)


@contextmanager
def running(output_dir: Path) -> Iterator[None]:
    """Where fit and test run: every rank of a launched job in this folder (``training.launch``)."""
    with ranks_run_this_job(output_dir), warnings.catch_warnings():
        # Normalising on the device in on_after_batch_transfer is deliberate.
        warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")
        yield


def validation_history(trainer: L.Trainer) -> list[dict]:
    recorder = next((c for c in trainer.callbacks if isinstance(c, ValidationHistory)), None)
    return list(recorder.history) if recorder else []


def checkpoint_to_test(trainer: L.Trainer, datamodule) -> tuple[str | None, str, str]:
    """Which weights the test after fit uses: (ckpt path or None for the final weights, name, why).

    The best checkpoint is picked on the val split; testing it on that same split would report a
    number selected on its own data, so then the last checkpoint is tested instead.
    """
    val, test = datamodule.splits["val"], datamodule.splits["test"]
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if test == val:
        return None, "last", f"the test split '{test}' is the split that picks the best checkpoint"
    if not best:
        return None, "last", "no best checkpoint was saved"
    return best, "best", f"best val/top1 on split '{val}', tested on the separate split '{test}'"


def final_weights(output_dir: Path) -> str | None:
    """The checkpoint of the final weights (``last.ckpt``, written after every epoch); None: the
    weights in memory, which are the final ones as long as no other checkpoint was loaded since."""
    last = last_checkpoint(output_dir)
    return str(last) if last.is_file() else None


def multi_view_test(trainer: L.Trainer, network, datamodule, ckpt_path: str | None,
                    write_predictions: bool = True) -> dict:
    """``trainer.test`` of ``ckpt_path`` (None: the weights in memory); its per-video rows go to
    predictions.csv unless ``write_predictions`` is False."""
    writer = next((c for c in trainer.callbacks if isinstance(c, PredictionWriter)), None)
    if writer is not None:
        writer.enabled = write_predictions
    try:
        results = trainer.test(network, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    finally:
        if writer is not None:
            writer.enabled = True
    return results[0] if results else {}


def write_results(run: RunInputs, trainer: L.Trainer, module: VideoClassifier, datamodule, init: dict,
                  history: list[dict], test_metrics: dict, tested: dict, started: float) -> float | None:
    """results.json (with predictions.csv and load_failures.csv beside it), the loggers' copy and the
    one-line summary; returns the test top-1."""
    cfg, output_dir = run.cfg, run.output_dir
    tested = {**tested, "split": datamodule.splits["test"], "val_split": datamodule.splits["val"]}
    if trainer.fast_dev_run:
        print("\ndebug run (fast_dev_run): nothing written")
        return as_float(test_metrics.get("test/top1"))
    failure_log = next((c for c in trainer.callbacks if isinstance(c, LoadFailureLog)), None)
    failed = failure_log.failed() if failure_log else None
    # the main process's trainer: spawned DDP ranks (trainer=ddp_cpu) leave `module` unattached here
    batch = global_batch(module.hparams.batch_size_per_device, trainer)
    training = {"global_batch": batch, "epochs": run.plan.epochs,
                "peak_lr": peak_lr_of(module.hparams.optim, batch) if run.plan.train else None,
                "multigrid": run.plan.multigrid_record()}
    summary = results_summary(cfg, run.overrides, training, trainer, module, init, history, test_metrics,
                              tested, failed, time.time() - started, final_test=tested.get("final"))
    if not trainer.is_global_zero:
        return summary["test_top1"]
    if test_metrics:
        summary.update(prediction_results(output_dir, datamodule))
        summary["test_videos_left_out"] = len(set(failed or {}) & test_video_paths(datamodule))
    if failure_log:
        write_load_failures_csv(failed, output_dir / "load_failures.csv")
    atomic_write_text(output_dir / RESULTS_FILE, json.dumps(summary, indent=1))
    log_results(trainer.loggers, output_dir / RESULTS_FILE, summary)
    log.info("results: %s", output_dir / RESULTS_FILE)
    print(f"\nTest top-1 {_percent(summary['test_top1'])}, top-5 {_percent(summary['test_top5'])}, "
          f"mean class top-1 {_percent(summary.get('mean_class_top1'))} ({summary['test_protocol']}); "
          f"outputs in {output_dir}")
    return summary["test_top1"]


def test_video_paths(datamodule) -> set[str]:
    """Every video the test manifest lists (paths as the dataset and load_failures name them)."""
    return {str(datamodule.root / r.path) for r in read_manifest(datamodule.root, datamodule.splits["test"])}


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
