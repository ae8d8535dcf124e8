"""Checkpoints: written atomically, read by one function (resume, evaluate, predict), and what they
carry besides the weights: ``InferenceEntry`` (class names and clip settings, for predict) and
``TrainingRecord`` (init, seed, epochs, wall time so far) as callbacks, which one of its run a
checkpoint is (best, last), and the validation history (``history.ValidationHistory`` writes it).

``AtomicCheckpointIO`` writes every checkpoint beside its final name and renames it when complete,
so a failed write (a full disk, a kill) leaves the previous ``last.ckpt`` and best checkpoint as
they were. Lightning's own local save stages the file in the system temp folder and *moves* it:
across filesystems that is a copy, and a disk that fills up during it left a truncated ``last.ckpt``.
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import pickle
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..errors import ConfigError, MissingFileError
from ..files import written_atomically

WALL_TIME_KEY = "run_wall_time_s"  # the run's wall time when the checkpoint was written, resumes included
HISTORY_KEY = "val_history"  # every validation of the run so far (a resumed run reports them all)
TRAINING_RECORD_KEY = "training_record"  # how the weights were trained: init, seed, max_epochs
INFERENCE_KEY = "inference"  # class names and clip settings: what video_gn.predict needs


def package_version() -> str:
    try:
        return importlib.metadata.version("video_gn")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class InferenceEntry(L.Callback):
    """Makes every checkpoint self-describing (``inference``): class names, clip settings, network,
    norm and versions, so that ``python -m video_gn.predict CKPT VIDEO`` needs nothing else."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "inference_settings"):
            checkpoint[INFERENCE_KEY] = {
                **datamodule.inference_settings(), "model": dict(pl_module.hparams.model),
                "norm": dict(pl_module.hparams.norm), "num_classes": pl_module.hparams.num_classes,
                "video_gn_version": package_version()}


class TrainingRecord(L.Callback):
    """How this run trains (init record, seed, max_epochs) and its wall time so far, in every
    checkpoint: an evaluation of one is reported beside the runs trained the same way, and a
    resumed run counts its earlier time too.

    Args:
        record: the ``training_record`` entry.
        started: ``time.time()`` the run began, earlier sessions of a resumed run included.
    """

    def __init__(self, record: dict, started: float):
        self.record, self.started = record, started

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[TRAINING_RECORD_KEY] = self.record
        checkpoint[WALL_TIME_KEY] = time.time() - self.started


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)  # serialised first: the zip writer would hide an ENOSPC
        try:
            with written_atomically(path) as tmp, tmp.open("wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())  # on disk before the rename makes it the checkpoint
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(path)) from e


def read_checkpoint(path: str | Path, named_by: str, what_now: str = "") -> dict:
    """A checkpoint of ours (memory-mapped), read before the run writes anything: a missing file
    is a :class:`MissingFileError` (``<named_by>=<path> does not exist``), a damaged one or one that
    is not ours a :class:`ConfigError` naming the file, with ``what_now`` as advice."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{named_by}={path} does not exist")
    try:
        # weights_only: tensors, containers, numbers and strings; nothing named in the file runs.
        # mmap needs torch.save's zip format: another file gets weights_only's own verdict instead.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise ValueError("no state_dict in it")
    # What torch.load raises for a file that is not a readable checkpoint: a refused or broken pickle,
    # a damaged zip ("PytorchStreamReader failed ..." is a RuntimeError), a file cut short, no state_dict.
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as e:
        refused = re.search(r"GLOBAL ([\w.]+)", str(e)) if isinstance(e, pickle.UnpicklingError) else None
        why = (f"refused to load {refused[1]}: a checkpoint holds tensors, numbers and strings, this file "
               "names code that would run when it is loaded (nothing was run)") if refused else \
            f"{type(e).__name__}: {str(e).splitlines()[0]}"
        raise ConfigError(f"{named_by} checkpoint {path} cannot be read ({why})"
                          f"{'; ' + what_now if what_now else ''}") from None
    return checkpoint


def last_checkpoint(run_dir: Path) -> Path:
    """Where a run keeps the checkpoint it resumes from (conf/callbacks: ``last_checkpoint``)."""
    return Path(run_dir) / "checkpoints" / "last.ckpt"


@dataclass(frozen=True)
class Resume:
    """Where a run continues: the checkpoint (None: a fresh start), the wall time spent before it (a
    resumed run reports its whole time) and the epoch training continues at."""

    ckpt_path: str | None = None
    earlier_wall_time: float = 0.0
    epoch: int = 0


def resume_checkpoint(ckpt_path: str | None, run_dir: Path) -> Resume:
    """``ckpt_path`` if given, else the ``last.ckpt`` an interrupted run left in this run dir (or
    a fresh start)."""
    if ckpt_path:
        path, named_by = Path(ckpt_path), "ckpt_path"
    else:
        path, named_by = last_checkpoint(run_dir), "the run folder's"
        if not path.is_file():
            return Resume()
    checkpoint = read_checkpoint(path, named_by, "nothing was changed. Move it away to start this run "
                                 "over, or resume from another checkpoint with ckpt_path=PATH")
    # the epochs Lightning's fit loop had processed: the one it continues at
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    return Resume(str(path), float(checkpoint.get(WALL_TIME_KEY, 0.0)), int(progress.get("processed", 0)))


def checkpoint_role(checkpoint: dict, path: Path) -> str:
    """Which checkpoint of its run a file is: ``best`` (by the monitored metric, as its own
    ModelCheckpoint state says), ``last``, or ``other``."""
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if key.startswith("ModelCheckpoint") and "'monitor': None" not in key and isinstance(state, dict):
            if Path(state.get("best_model_path") or "").name == path.name:
                return "best"
    return "last" if path.name == "last.ckpt" else "other"


def history_in_last_checkpoint(run_dir: Path) -> list[dict]:
    """The validation history rank 0 saved last: ranks started with spawn (``trainer=ddp_cpu``)
    keep theirs in their own processes."""
    last = last_checkpoint(run_dir)
    if not last.is_file():
        return []
    return list(read_checkpoint(last, "the run folder's").get(HISTORY_KEY, []))
