"""``VideoDataModule``: the ``data.*`` config -> train/val/test loaders over a prepared dataset.

Batch size is **per device**; under DDP Lightning swaps in its own DistributedSampler, so each
rank reads a different shard of the training set; validation and test give every video to exactly
one rank. Test loaders carry one video per batch (its views are many).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from ..errors import ConfigError, MissingFileError
from .dataset import ClipSettings, VideoClipDataset
from .manifest import ClipRecord, manifest_path, read_classes, read_manifest
from .sampling import clip_span
from .shape_sampler import ShapeBatchSampler
from .train_sampler import PRECISE_BN, TrainSampler

log = logging.getLogger(__name__)
# What to do with a video shorter than one clip: leave it out (reported), or loop its frames.
SHORT_VIDEOS = ("skip", "loop")


class VideoDataModule(L.LightningDataModule):
    """Args mirror ``conf/data/*.yaml``.

    Args:
        root: prepared dataset folder (``<split>.csv`` manifests and ``classes.txt``).
        num_classes: expected number of classes; checked against ``classes.txt``.
        generate: called as ``generate(root=...)`` when the manifests are absent (the generated
            default dataset); ``None`` for prepared datasets.
        test_split: the manifest used for testing (Kinetics tests on ``val``).
        seed: the run's seed: the training order and every training clip's random choices derive
            from it (``train_sampler``), whatever the workers.
        first_epoch: the epoch training starts at (a resumed run's: ``record.checkpoints.Resume``).
        multigrid: the run plan's multigrid schedule (``training.multigrid``): training batches of
            epoch ``e`` take its shapes, drawn from ``seed + e``; val and test keep the base shape.
            None: the base shape throughout.
    """

    def __init__(self, *, root: str, num_classes: int, frames_per_clip: int, frame_stride: int,
                 crop_size: int, batch_size_per_device: int, decoder: str,
                 train_short_side: Sequence[int] = (256, 320), eval_short_side: int = 256,
                 num_test_clips: int = 10, num_test_crops: int = 3, flip: bool = True,
                 mean: Sequence[float] = (0.45, 0.45, 0.45), std: Sequence[float] = (0.225, 0.225, 0.225),
                 num_workers: int = 4, max_retries: int = 10, generate: Callable | None = None,
                 train_split: str = "train", val_split: str = "val", test_split: str = "test",
                 short_videos: str = "skip", cache_videos: bool = False, name: str = "", seed: int = 0,
                 first_epoch: int = 0, multigrid=None):
        super().__init__()
        self.seed, self.first_epoch = seed, first_epoch
        self.root, self.name = Path(root), name
        self.num_classes, self.generate = num_classes, generate
        self.batch_size_per_device, self.num_workers, self.max_retries = (batch_size_per_device,
                                                                          num_workers, max_retries)
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.short_videos = short_videos
        self.records: dict[str, list[ClipRecord]] = {}
        # path -> why, for manifest rows left out before the first step (LoadFailureLog counts them)
        self.unusable_videos: dict[str, str] = {}
        self.mean, self.std = tuple(mean), tuple(std)
        self.multigrid = multigrid  # a training.multigrid.MultigridSchedule, or None
        self.classes: list[str] = []  # <root>/classes.txt, read in setup
        self._multigrid_loader: DataLoader | None = None
        self.settings = ClipSettings(
            frames_per_clip=frames_per_clip, frame_stride=frame_stride, crop_size=crop_size,
            train_short_side=tuple(train_short_side), eval_short_side=eval_short_side,
            num_test_clips=num_test_clips, num_test_crops=num_test_crops, flip=flip, decoder=decoder,
            cache_videos=cache_videos)

    def _ready(self) -> bool:
        return all(manifest_path(self.root, s).is_file() for s in set(self.splits.values()))

    def prepare_data(self) -> None:
        """Runs on one process: generates the default dataset on first use. The jobs of a sweep that
        run at once (a SLURM array) share the folder: one generates it, the others wait for it."""
        if self._ready() or self.generate is None:
            return
        lock = self.root.with_name(self.root.name + ".lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
            if not self._ready():
                self.generate(root=self.root)

    def setup(self, stage: str | None = None) -> None:
        if not self._ready():
            missing = [str(manifest_path(self.root, s)) for s in set(self.splits.values())
                       if not manifest_path(self.root, s).is_file()]
            raise MissingFileError(f"data.root={self.root}: missing {', '.join(missing)}; prepare it "
                                   "with `python -m data_prep.kinetics` (see README)")
        try:
            self.classes = read_classes(self.root)
        except FileNotFoundError as e:
            raise MissingFileError(f"data.root={self.root}: {e}") from None
        if len(self.classes) != self.num_classes:
            fix = (f"the dataset there was generated with {len(self.classes)}: delete {self.root} to "
                   "generate it again, or give another data.root" if self.generate is not None else
                   "leave data.num_classes out with data=folder (it reads the file), or fix data.root")
            raise ConfigError(f"data.num_classes={self.num_classes} but {self.root / 'classes.txt'} "
                              f"lists {len(self.classes)} classes: {fix}")
        stages = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage, self.splits)
        for which in stages:
            self.records.setdefault(which, self.usable_records(which))
        if "train" in stages:
            ranks = self.trainer.world_size if self.trainer is not None else 1
            per_rank = len(self.records["train"]) // ranks
            if per_rank < self.batch_size_per_device:  # drop_last: not one training step would run
                raise ConfigError(
                    f"data.batch_size_per_device={self.batch_size_per_device} is larger than the "
                    f"{per_rank} usable training videos per device ({len(self.records['train'])} in "
                    f"{manifest_path(self.root, self.splits['train'])} over {ranks} device(s)): no training "
                    "step would run; lower the batch size")
            if self.multigrid is not None and per_rank < self.multigrid.largest_batch():
                raise ConfigError(
                    f"multigrid={self.multigrid.kind}: its largest batch is {self.multigrid.largest_batch()} "
                    f"clips per device ({self.multigrid.largest_batch() // self.batch_size_per_device} x "
                    f"data.batch_size_per_device={self.batch_size_per_device}) but there are {per_rank} "
                    "usable training videos per device: lower data.batch_size_per_device or use "
                    "multigrid=long")

    def inference_settings(self) -> dict:
        """What ``video_gn.predict`` needs to classify a video like the test does (saved in every
        checkpoint): class names and the test's clip, crop and normalisation settings."""
        s = self.settings
        return {"dataset": self.name, "classes": list(self.classes),
                "frames_per_clip": s.frames_per_clip, "frame_stride": s.frame_stride,
                "crop_size": s.crop_size, "eval_short_side": s.eval_short_side,
                "num_test_clips": s.num_test_clips, "num_test_crops": s.num_test_crops,
                "mean": list(self.mean), "std": list(self.std), "decoder": s.decoder}

    def usable_records(self, which: str) -> list[ClipRecord]:
        """The rows of ``which``'s manifest a run can use, checked before the first step: a label
        outside ``[0, num_classes)`` is an error naming the manifest and line; a missing file, or a
        video shorter than one clip (unless ``short_videos=loop``), is left out and recorded in
        ``unusable_videos`` (results.json ``load_failures``, with its reason)."""
        split = self.splits[which]
        path = manifest_path(self.root, split)
        try:
            records = read_manifest(self.root, split)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        span = clip_span(self.settings.frames_per_clip, self.settings.frame_stride)
        usable = []
        for line, record in enumerate(records, start=2):
            if not 0 <= record.label < self.num_classes:
                raise ConfigError(
                    f"{path}:{line}: label {record.label} is outside [0, data.num_classes={self.num_classes})"
                    + (" (an unlabelled row: this split cannot be trained or tested on)" if record.label == -1
                       else ""))
            video = str(self.root / record.path)
            if not os.path.isfile(video):
                self.unusable_videos[video] = "missing: listed in the manifest but not on disk"
            elif record.num_frames < span and self.short_videos == "skip":
                self.unusable_videos[video] = (
                    f"too_short: {record.num_frames} frames, a clip needs {span} (data.frames_per_clip="
                    f"{self.settings.frames_per_clip}, data.frame_stride={self.settings.frame_stride}); "
                    "data.short_videos=loop loops such videos instead")
            else:
                usable.append(record)
        left_out = len(records) - len(usable)
        if left_out:
            log.warning("%s: %d of %d videos left out before training (missing or too short); "
                        "listed in load_failures.csv", path, left_out, len(records))
        if not usable:
            raise ConfigError(f"{path}: none of its {len(records)} videos is usable (missing files or "
                              f"all shorter than {span} frames)")
        return usable

    def _dataset(self, which: str) -> VideoClipDataset:
        if which not in self.records:
            self.records[which] = self.usable_records(which)
        return VideoClipDataset(self.root, self.splits[which], which, self.settings, self.max_retries,
                                records=self.records[which])

    def _eval_loader(self, which: str, batch_size: int) -> DataLoader:
        dataset = self._dataset(which)
        sampler = None
        if self.trainer is not None and self.trainer.world_size > 1:
            # Lightning's DistributedSampler pads the ranks to equal length, so some videos would be
            # evaluated twice; this one gives every video to exactly one rank (Lightning keeps it).
            sampler = UnrepeatedDistributedSampler(dataset, num_replicas=self.trainer.world_size,
                                                   rank=self.trainer.global_rank, shuffle=False)
        return self._data_loader(dataset, batch_size=batch_size, sampler=sampler,
                                 num_workers=self.num_workers, pin_memory=torch.cuda.is_available(),
                                 persistent_workers=self.num_workers > 0)

    def _data_loader(self, dataset, **kwargs) -> DataLoader:
        """A DataLoader with a random generator of its own: it draws its workers' base seed from it,
        not from the process's, so the number of workers (or a resume) leaves the random stream of
        the training step (dropout) as it is; every training clip's randomness comes from its key."""
        return DataLoader(dataset, generator=torch.Generator().manual_seed(self.seed), **kwargs)

    def _epoch_starting(self) -> int:
        """The epoch the training loader is asked for. Lightning builds and iterates it the first time
        (for ``configure_optimizers``' step count) before it restores a resumed run's progress, and
        does not iterate it again for that epoch: the resumed epoch comes from ``first_epoch`` then;
        later, the epochs the fit loop has processed (what it passes to ``set_epoch``)."""
        if self.trainer is None:
            return self.first_epoch
        return max(self.first_epoch, self.trainer.fit_loop.epoch_progress.current.processed)

    def _ranks(self) -> tuple[int, int]:
        return (self.trainer.world_size, self.trainer.global_rank) if self.trainer is not None else (1, 0)

    def train_dataloader(self) -> DataLoader:
        if self.multigrid is not None:
            return self._shaped_train_loader()
        dataset = self._dataset("train")
        world_size, rank = self._ranks()
        # a DistributedSampler (Lightning keeps it, and sets its epoch), also with one process
        sampler = TrainSampler(len(dataset), self.seed, world_size, rank)
        sampler.set_epoch(self._epoch_starting())
        return self._data_loader(dataset, batch_size=self.batch_size_per_device, sampler=sampler,
                                 drop_last=True, num_workers=self.num_workers,
                                 pin_memory=torch.cuda.is_available(),
                                 persistent_workers=self.num_workers > 0)

    def _shaped_train_loader(self) -> DataLoader:
        """Multigrid: one loader for the whole run (its workers persist), asked for again every epoch
        (``reload_dataloaders_every_n_epochs=1``) so Lightning takes the epoch's length after the
        sampler has moved to the epoch's shape."""
        if self._multigrid_loader is None:
            dataset = self._dataset("train")
            trainer = self.trainer
            sampler = ShapeBatchSampler(
                len(dataset), self.multigrid, self.settings, seed=self.seed,
                world_size=trainer.world_size if trainer else 1, rank=trainer.global_rank if trainer else 0)
            self._multigrid_loader = self._data_loader(
                dataset, batch_sampler=sampler, num_workers=self.num_workers,
                pin_memory=torch.cuda.is_available(), persistent_workers=self.num_workers > 0)
        self._multigrid_loader.batch_sampler.set_epoch(self._epoch_starting())
        return self._multigrid_loader

    def training_batches_loader(self, world_size: int = 1, rank: int = 0, epoch: int = 0) -> DataLoader:
        """Training batches outside the fit loop (precise BN statistics): the train split with its
        training transform, each rank its own shard, as in training; epoch ``epoch``'s order and clips
        of a stream of their own (not the clips the epoch trained on)."""
        dataset = self._dataset("train")
        sampler = TrainSampler(len(dataset), self.seed, world_size, rank, stream=PRECISE_BN)
        sampler.set_epoch(epoch)
        return self._data_loader(dataset, batch_size=self.batch_size_per_device, sampler=sampler,
                                 drop_last=True, num_workers=self.num_workers,
                                 pin_memory=torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val", self.batch_size_per_device)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test", 1)
