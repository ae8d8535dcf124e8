"""``train(cfg)``: seed -> datamodule, module, callbacks, loggers, trainer -> fit -> multi-view test
-> ``<run dir>/results.json`` (and ``load_failures.csv``).

``train=false`` skips the fit and evaluates a checkpoint (``ckpt_path``, ours) or imported weights
(``model.pretrained_3d``) with the same multi-view test, writing the same files.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import hydra
import lightning as L
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from .checkpoint_io import AtomicCheckpointIO
from .config_check import check_config
from .data.manifest import read_classes
from .errors import ConfigError, MissingFileError, ResourceError
from .experiment_loggers import log_config, log_results
from .io import atomic_write_text
from .launch import ranks_run_this_job, remove_if_empty_run
from .lit_module import WALL_TIME_KEY, VideoClassifier
from .load_failures import LoadFailureLog, write_load_failures_csv
from .models.provenance import init_record, sha256_of
from .precise_bn import PreciseBatchNorm, batch_norm_layers
from .predictions import merge_rank_files, per_class_top1

log = logging.getLogger(__name__)


def _instantiate_all(group: DictConfig | None) -> list:
    return [hydra.utils.instantiate(c) for c in (group or {}).values() if c and "_target_" in c]


def resume_checkpoint(cfg: DictConfig, output_dir: Path) -> tuple[str | None, float]:
    """``ckpt_path`` if given, else the ``last.ckpt`` an interrupted run left in this run dir (or
    None); and the wall time the run had spent before it (so a resumed run reports its whole time)."""
    if cfg.get("ckpt_path"):
        if not Path(cfg.ckpt_path).is_file():
            raise MissingFileError(f"ckpt_path={cfg.ckpt_path} does not exist")
        path, named_by = Path(cfg.ckpt_path), "ckpt_path"
    else:
        path, named_by = output_dir / "checkpoints" / "last.ckpt", "the run folder's"
        if not path.is_file():
            return None, 0.0
    checkpoint = load_checkpoint(path, named_by)
    return str(path), float(checkpoint.get(WALL_TIME_KEY, 0.0))


def load_checkpoint(path: Path, named_by: str) -> dict:
    """The checkpoint at ``path`` (memory-mapped); a damaged one is a clear error *before* the run
    writes anything (it used to surface as an unpickling traceback after the loggers had started)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise ValueError("no state_dict in it")
    except Exception as e:
        raise ConfigError(
            f"{named_by} checkpoint {path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0]}); "
            "nothing was changed. Move it away to start this run over, or resume from another "
            "checkpoint with ckpt_path=PATH") from None
    return checkpoint


def build_module(cfg: DictConfig) -> VideoClassifier:
    return VideoClassifier(
        model=OmegaConf.to_container(cfg.model, resolve=True),
        norm=OmegaConf.to_container(cfg.norm, resolve=True),
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        num_classes=cfg.data.num_classes, batch_size_per_device=cfg.data.batch_size_per_device,
        mean=list(cfg.data.mean), std=list(cfg.data.std))


def module_to_evaluate(cfg: DictConfig) -> tuple[VideoClassifier, dict]:
    """``train=false``: the network of ``ckpt_path`` (built from the hyperparameters saved in it), or
    the configured network with ``model.pretrained_3d`` loaded; and its init record."""
    if cfg.get("ckpt_path"):
        path = Path(cfg.ckpt_path)
        if not path.is_file():
            raise MissingFileError(f"ckpt_path={cfg.ckpt_path} does not exist")
        checkpoint = load_checkpoint(path, "ckpt_path")
        saved = checkpoint.get("hyper_parameters", {})
        if saved.get("num_classes") != cfg.data.num_classes:
            raise ConfigError(f"ckpt_path={path} classifies {saved.get('num_classes')} classes but "
                             f"data.num_classes={cfg.data.num_classes}")
        # How its weights were trained (scratch or which file, seed, epochs), so the report compares
        # this evaluation with the runs trained the same way.
        init = {"kind": "checkpoint", "file": path.name, "sha256": sha256_of(path),
                "trained": checkpoint.get("training_record"), "role": checkpoint_role(checkpoint, path)}
        return VideoClassifier.from_checkpoint(checkpoint), init
    if not cfg.model.get("pretrained_3d"):
        raise ConfigError("train=false evaluates given weights: set ckpt_path=PATH (a checkpoint of "
                         "ours) or model.pretrained_3d=PATH (an imported I3D model)")
    return build_module(cfg), init_record(cfg.model)


# Words in Lightning's error that tell which trainer key it is about.
TRAINER_ERROR_KEYS = (("accelerator", ("accelerator", "gpu backend", "torch_xla", "cuda")),
                      ("precision", ("precision",)), ("strategy", ("strategy",)), ("devices", ("devices",)))


def build_trainer(cfg: DictConfig, callbacks: list, loggers) -> L.Trainer:
    """The configured ``lightning.Trainer``. A setting this machine or Lightning cannot honour (a GPU
    accelerator without CUDA, a precision or strategy name Lightning does not know, ``devices=0``) is
    one line naming the key, before anything is written."""
    try:
        return hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers,
                                       plugins=[AtomicCheckpointIO()])
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


def checkpoint_role(checkpoint: dict, path: Path) -> str:
    """Which checkpoint of its run a file is: ``best`` (by the monitored metric, as its own
    ModelCheckpoint state says), ``last``, or ``other``."""
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if key.startswith("ModelCheckpoint") and "'monitor': None" not in key and isinstance(state, dict):
            if Path(state.get("best_model_path") or "").name == path.name:
                return "best"
    return "last" if path.name == "last.ckpt" else "other"


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


def train(cfg: DictConfig) -> float | None:
    """Trains (unless ``train=false``) and tests one configuration; returns the test top-1 (for
    Hydra sweepers). A run that fails before writing anything leaves no folder behind."""
    output_dir = Path(cfg.paths.output_dir)
    try:
        return _run(cfg, output_dir)
    finally:
        if rank_zero_only.rank == 0:
            remove_if_empty_run(output_dir)


def _run(cfg: DictConfig, output_dir: Path) -> float | None:
    started = time.time()
    fitting = cfg.get("train", True)
    check_config(cfg)  # every value in range, before any work
    # A damaged checkpoint to resume is a clear error before any logger writes a byte.
    ckpt_path, earlier_wall_time = resume_checkpoint(cfg, output_dir) if fitting else (None, 0.0)
    started -= earlier_wall_time
    if fitting:
        init = init_record(cfg.model)  # fails fast on an undecided init, before any work
    L.seed_everything(cfg.seed, workers=True)

    datamodule = hydra.utils.instantiate(cfg.data)
    if fitting:
        module = build_module(cfg)
        module.training_record = {"init": init, "seed": cfg.seed, "max_epochs": cfg.trainer.max_epochs}
        module.run_started = started
    else:
        module, init = module_to_evaluate(cfg)
    precise_bn = int(cfg.norm.get("precise_bn_batches") or 0)
    if precise_bn and not batch_norm_layers(module):
        raise ConfigError(f"norm.precise_bn_batches={precise_bn}: the network has no BatchNorm layer "
                          f"whose statistics could be recomputed (its norm is {module.hparams.norm['kind']})")
    # logger=mlflow keeps a plain mlruns/ folder: MLflow's file store, which MLflow 3 only opens when
    # asked to (a tracking_uri=sqlite:///... or a server needs no such flag).
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    callbacks = _instantiate_all(cfg.get("callbacks"))
    if precise_bn:
        callbacks.append(PreciseBatchNorm(precise_bn))
    trainer = build_trainer(cfg, callbacks, _instantiate_all(cfg.get("logger")) or False)
    if trainer.is_global_zero:
        log_config(trainer.loggers, cfg)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    network = torch.compile(module) if cfg.model.get("compile") else module

    test_metrics = {}
    tested = {"checkpoint": "given", "reason": "train=false evaluates the given weights",
              "role": init.get("role") if not fitting else None}
    with ranks_run_this_job(output_dir), warnings.catch_warnings():
        # Normalising on the device in on_after_batch_transfer is deliberate.
        warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")
        if fitting:
            if ckpt_path:
                log.info("resuming from %s", ckpt_path)
            with stopped_by_the_machine(output_dir):
                trainer.fit(network, datamodule=datamodule, ckpt_path=ckpt_path)
        history = list(module.val_history)  # testing a checkpoint must not change the run's history
        if fitting and not history:
            history = _history_from_last_checkpoint(output_dir)
        if cfg.get("test_after_fit") or not fitting:
            ckpt, name, reason = checkpoint_to_test(trainer, datamodule) if fitting else (None, "given", "")
            tested = {**tested, "checkpoint": name, "reason": reason or tested["reason"]}
            results = trainer.test(network, datamodule=datamodule, ckpt_path=ckpt)
            test_metrics = results[0] if results else {}
    tested["split"], tested["val_split"] = datamodule.splits["test"], datamodule.splits["val"]

    if trainer.fast_dev_run:
        print("\ndebug run (fast_dev_run): nothing written")
        return _float(test_metrics.get("test/top1"))
    failure_log = next((c for c in trainer.callbacks if isinstance(c, LoadFailureLog)), None)
    failed = failure_log.failed() if failure_log else None
    summary = results_summary(cfg, trainer, module, init, history, test_metrics, tested, failed,
                              time.time() - started)
    if trainer.is_global_zero and test_metrics:
        summary.update(test_predictions(output_dir, datamodule))
    if trainer.is_global_zero:
        if failure_log:
            write_load_failures_csv(failed, output_dir / "load_failures.csv")
        atomic_write_text(output_dir / "results.json", json.dumps(summary, indent=1))
        log_results(trainer.loggers, output_dir / "results.json", summary)
        log.info("results: %s", output_dir / "results.json")
        print(f"\nTest top-1 {_percent(summary['test_top1'])}, top-5 {_percent(summary['test_top5'])}, "
              f"mean class top-1 {_percent(summary.get('mean_class_top1'))} ({summary['test_protocol']}); "
              f"outputs in {output_dir}")
    return summary["test_top1"]


@contextmanager
def stopped_by_the_machine(output_dir: Path):
    """A write that fails for a reason of the machine (disk full, permissions) ends the run with
    one clear line: checkpoints are written atomically, so the earlier ones are intact."""
    try:
        yield
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        last = output_dir / "checkpoints" / "last.ckpt"
        raise ResourceError(
            f"cannot write {e.filename or 'to ' + str(output_dir)}: {e.strerror}. The checkpoints "
            f"written before are intact{' (' + str(last) + ')' if last.is_file() else ''}; fix this and run "
            "the same command again: it resumes from last.ckpt") from None


def test_predictions(output_dir: Path, datamodule) -> dict:
    """Merges the ranks' per-video rows into ``predictions.csv``; per-class top-1 and the mean class
    accuracy (what Kinetics papers also report) for results.json."""
    records = datamodule.records.get("test") or datamodule.usable_records("test")
    classes = getattr(datamodule, "classes", None) or read_classes(datamodule.root)
    rows = merge_rank_files(output_dir, [r.path for r in records], classes)
    per_class = per_class_top1(rows, classes) if rows else {}
    return {"predictions_file": "predictions.csv" if rows else None,
            "per_class_top1": per_class,
            "mean_class_top1": float(np.mean(list(per_class.values()))) if per_class else None}


def _history_from_last_checkpoint(output_dir: Path) -> list[dict]:
    """Ranks started with spawn (``trainer=ddp_cpu``) keep their history in their own processes;
    the last checkpoint rank 0 wrote holds it."""
    last = output_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return []
    return list(torch.load(last, map_location="cpu", weights_only=False).get("val_history", []))


def evaluation_protocol(cfg: DictConfig, tested: dict) -> str:
    """E.g. "10 clips x 3 crops, split 'val', last checkpoint, short side 256": what the report groups
    by. A given checkpoint of ours is named by its role in its run (best, last), so a re-evaluation of
    a run's best checkpoint (e.g. with precise BN) shares that run's protocol."""
    d = cfg.data
    which = tested.get("role") if tested.get("role") in ("best", "last") else tested["checkpoint"]
    # The views' size: GN's per-sample statistics depend on the field of view, BN's running ones do
    # not, so runs tested at another short side are another protocol (docs/results/small_batch_grid).
    return (f"{d.num_test_clips} clips x {d.num_test_crops} crops, split '{tested['split']}', "
            f"{which} checkpoint, short side {d.eval_short_side}")


def results_summary(cfg: DictConfig, trainer: L.Trainer, module: VideoClassifier, init: dict,
                    history: list[dict], test: dict, tested: dict, failed: dict[str, str] | None,
                    wall_time_s: float) -> dict:
    """What the report reads: every setting that changes the number, the validation history and
    the multi-view test with its protocol."""
    best = max(history, key=lambda h: h["top1"]) if history else {}
    devices = trainer.world_size
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # called outside a Hydra app (tests composing the config)
        overrides = []
    d = cfg.data
    has_test = test.get("test/top1") is not None
    return {
        "overrides": overrides,
        "dataset": d.get("name", ""),
        "arch": cfg.model.arch,
        "init": init,
        # The network's own norm (a checkpoint evaluated with train=false keeps the one it was trained
        # with), with its settings (GN groups) and whether BN statistics were recomputed (precise BN).
        "norm": module.hparams.norm["kind"],
        "norm_settings": dict(module.hparams.norm),
        "precise_bn_batches": int(cfg.norm.get("precise_bn_batches") or 0) or None,
        "seed": cfg.seed,
        "frames_per_clip": d.frames_per_clip,
        "frame_stride": d.frame_stride,
        "crop_size": d.crop_size,
        "batch_size_per_device": d.batch_size_per_device,
        "devices": devices,
        "global_batch": d.batch_size_per_device * devices * trainer.accumulate_grad_batches,
        "max_epochs": cfg.trainer.max_epochs if cfg.get("train", True) else None,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "val_split": tested["val_split"],
        "best_val_top1": best.get("top1"),
        "best_val_top5": best.get("top5"),
        "best_val_epoch": best.get("epoch"),
        "val_history": history,
        "test_split": tested["split"] if has_test else None,
        "test_views": f"{d.num_test_clips}x{d.num_test_crops}" if has_test else None,
        "test_checkpoint": tested["checkpoint"] if has_test else None,
        "test_checkpoint_reason": tested["reason"] if has_test else None,
        "test_protocol": evaluation_protocol(cfg, tested) if has_test else None,
        "test_videos": int(test["test/videos"]) if "test/videos" in test else None,
        "test_top1": _float(test.get("test/top1")),
        "test_top5": _float(test.get("test/top5")),
        "wall_time_s": round(wall_time_s, 1),
        "peak_gpu_memory_gib": (torch.cuda.max_memory_allocated() / 2**30
                                if torch.cuda.is_available() else None),
        # Distinct videos that failed to load (train, val and test; every rank; across resumes).
        "load_failures": None if failed is None else len(failed),
        "load_failures_file": None if failed is None else "load_failures.csv",
    }


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _float(value):
    return None if value is None else float(value)
