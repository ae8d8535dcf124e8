"""``VideoDataModule``: the ``data.*`` config -> train/val/test loaders over a prepared dataset.

Batch size is **per device**; under DDP Lightning swaps in its own DistributedSampler, so each
rank reads a different shard of the training set; validation and test give every video to exactly
one rank. Test loaders carry one video per batch (its views are many).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from .dataset import ClipSettings, VideoClipDataset
from .manifest import manifest_path, read_classes


class VideoDataModule(L.LightningDataModule):
    """Args mirror ``conf/data/*.yaml``.

    Args:
        root: prepared dataset folder (``<split>.csv`` manifests and ``classes.txt``).
        num_classes: expected number of classes; checked against ``classes.txt``.
        generate: called as ``generate(root=...)`` when the manifests are absent (the generated
            default dataset); ``None`` for prepared datasets.
        test_split: the manifest used for testing (Kinetics tests on ``val``).
    """

    def __init__(self, *, root: str, num_classes: int, frames_per_clip: int, frame_stride: int,
                 crop_size: int, batch_size_per_device: int, decoder: str,
                 train_short_side: Sequence[int] = (256, 320), eval_short_side: int = 256,
                 num_test_clips: int = 10, num_test_crops: int = 3, flip: bool = True,
                 mean: Sequence[float] = (0.45, 0.45, 0.45), std: Sequence[float] = (0.225, 0.225, 0.225),
                 num_workers: int = 4, max_retries: int = 10, generate: Callable | None = None,
                 train_split: str = "train", val_split: str = "val", test_split: str = "test",
                 name: str = ""):
        super().__init__()
        self.root, self.name = Path(root), name
        self.num_classes, self.generate = num_classes, generate
        self.batch_size_per_device, self.num_workers, self.max_retries = (batch_size_per_device,
                                                                          num_workers, max_retries)
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.mean, self.std = tuple(mean), tuple(std)
        self.settings = ClipSettings(
            frames_per_clip=frames_per_clip, frame_stride=frame_stride, crop_size=crop_size,
            train_short_side=tuple(train_short_side), eval_short_side=eval_short_side,
            num_test_clips=num_test_clips, num_test_crops=num_test_crops, flip=flip, decoder=decoder)

    def _ready(self) -> bool:
        return all(manifest_path(self.root, s).is_file() for s in set(self.splits.values()))

    def prepare_data(self) -> None:
        """Runs on one process: generates the default dataset on first use."""
        if not self._ready() and self.generate is not None:
            self.generate(root=self.root)

    def setup(self, stage: str | None = None) -> None:
        if not self._ready():
            missing = [str(manifest_path(self.root, s)) for s in set(self.splits.values())
                       if not manifest_path(self.root, s).is_file()]
            raise FileNotFoundError(f"data.root={self.root}: missing {', '.join(missing)}; prepare it "
                                    "with `python -m data_prep.kinetics` (see README)")
        self.classes = read_classes(self.root)
        if len(self.classes) != self.num_classes:
            raise ValueError(f"data.num_classes={self.num_classes} but {self.root / 'classes.txt'} "
                             f"lists {len(self.classes)} classes")

    def _dataset(self, which: str) -> VideoClipDataset:
        return VideoClipDataset(self.root, self.splits[which], which, self.settings, self.max_retries)

    def _loader(self, which: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = self._dataset(which)
        sampler = None
        if not shuffle and self.trainer is not None and self.trainer.world_size > 1:
            # Lightning's DistributedSampler pads the ranks to equal length, so some videos would be
            # evaluated twice; this one gives every video to exactly one rank (Lightning keeps it).
            sampler = UnrepeatedDistributedSampler(dataset, num_replicas=self.trainer.world_size,
                                                   rank=self.trainer.global_rank, shuffle=False)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None,
                          sampler=sampler, drop_last=shuffle, num_workers=self.num_workers,
                          pin_memory=torch.cuda.is_available(),
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size_per_device, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.batch_size_per_device, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", 1, shuffle=False)
