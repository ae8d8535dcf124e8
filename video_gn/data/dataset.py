"""Map-style dataset of clips from a manifest, robust to bad files.

A sample is a dict: ``video`` (uint8 ``[C, T, H, W]``, or ``[V, C, T, H, W]`` in test mode),
``label``, ``index`` (of the manifest row), and ``load_errors``: one ``path<TAB>reason`` line per
video that failed before this sample was produced (a string, so it crosses worker processes and
the default collate). A video that fails to open or decode is logged with its path and reason and
replaced by another sample, so an epoch never stops for one bad file; the run keeps the distinct
failed paths (``record.load_failures.LoadFailureLog``) across workers, ranks and resumes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from . import sampling, transforms
from .decode import DecodeError, read_frames
from .manifest import ClipRecord, read_manifest

log = logging.getLogger(__name__)
MODES = ("train", "val", "test")


@dataclass(frozen=True, kw_only=True)
class ClipSettings:
    frames_per_clip: int
    frame_stride: int
    crop_size: int
    decoder: str  # no default here: the one default is data.decoder in conf/data/*.yaml
    train_short_side: tuple[int, int] = (256, 320)
    eval_short_side: int = 256
    num_test_clips: int = 10
    num_test_crops: int = 3
    flip: bool = True
    # Keep each video's decoded frames in memory after its first read (data.cache_videos): for a
    # dataset that fits in RAM, read by the same process every epoch (num_workers=0, or persistent
    # workers, each with its own copy). Samples are the same as without it; only decoding is saved.
    cache_videos: bool = False


@dataclass(frozen=True, kw_only=True)
class ClipShape:
    """A training clip's shape other than the base one (multigrid: ``data.shape_sampler``)."""

    frames_per_clip: int
    frame_stride: int
    crop_size: int
    train_short_side: tuple[int, int]


class VideoClipDataset(Dataset):
    """Clips of the videos listed in ``<root>/<split>.csv``.

    Args:
        root: the prepared dataset folder (manifest format: ``video_gn/data/manifest.py``).
        split: which manifest.
        mode: ``train`` (random window and crop), ``val`` (centre clip and crop) or ``test``
            (``num_test_clips`` x ``num_test_crops`` views in one sample).
        settings: sampling, crop and decoder settings.
        max_retries: replacement attempts for one sample before giving up (a dataset this broken is
            a configuration error, not bad luck).
    """

    def __init__(self, root: str | Path, split: str, mode: str, settings: ClipSettings,
                 max_retries: int = 10, records: list[ClipRecord] | None = None):
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not one of {', '.join(MODES)}")
        self.root = Path(root)
        # ``records``: the manifest's rows already checked by the datamodule (usable_records).
        self.records = read_manifest(root, split) if records is None else records
        if not self.records:
            raise ValueError(f"{self.root / (split + '.csv')} lists no clips")
        self.split, self.mode, self.settings, self.max_retries = split, mode, settings, max_retries
        self._decoded: dict[str, torch.Tensor] = {}  # path -> every frame, when settings.cache_videos

    def video_path(self, record: ClipRecord) -> str:
        return str(self.root / record.path)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int | tuple[int, ClipShape]) -> dict:
        """``index``, or ``(index, shape)``: a training clip cut at ``shape`` (multigrid)."""
        index, shape = index if isinstance(index, tuple) else (index, None)
        failures = []
        candidate = index
        for _ in range(self.max_retries + 1):
            try:
                sample = self._load(candidate, shape)
            except DecodeError as e:
                log.warning("skipping unreadable video %s (%s)", e.path, e.reason)
                failures.append(f"{e.path}\t{e.reason}")
                # Deterministic replacement, different for each attempt.
                candidate = int(np.random.default_rng([index, len(failures)]).integers(len(self)))
                continue
            sample["load_errors"] = "\n".join(failures)
            return sample
        raise RuntimeError(f"{len(failures)} videos in a row failed to load from {self.root} "
                           f"({self.split}); last errors:\n  "
                           + "\n  ".join(f.replace("\t", ": ") for f in failures[-3:]))

    def _load(self, index: int, shape: ClipShape | None = None) -> dict:
        record, s = self.records[index], self.settings
        if shape is not None:
            s = replace(s, frames_per_clip=shape.frames_per_clip, frame_stride=shape.frame_stride,
                        crop_size=shape.crop_size, train_short_side=shape.train_short_side)
        path = self.video_path(record)
        if self.mode == "train":
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
            indices = sampling.random_clip(record.num_frames, s.frames_per_clip, s.frame_stride, rng)
        elif self.mode == "val":
            indices = sampling.centre_clip(record.num_frames, s.frames_per_clip, s.frame_stride)
        else:
            indices = sampling.uniform_clips(record.num_frames, s.frames_per_clip, s.frame_stride,
                                             s.num_test_clips)
        frames = self._frames(path, record, indices.reshape(-1).tolist())  # [N, H, W, C]
        if self.mode == "test":
            video = transforms.test_views(frames, s.frames_per_clip, s.eval_short_side, s.num_test_crops)
        elif self.mode == "train":
            video = transforms.train_transform(frames.permute(0, 3, 1, 2), s.train_short_side, s.crop_size,
                                               s.flip)
        else:
            video = transforms.val_transform(frames.permute(0, 3, 1, 2), s.eval_short_side, s.crop_size)
        return {"video": video, "label": record.label, "index": index}

    def _frames(self, path: str, record: ClipRecord, indices: list[int]) -> torch.Tensor:
        if not self.settings.cache_videos:
            return read_frames(path, indices, self.settings.decoder)
        if path not in self._decoded:
            self._decoded[path] = read_frames(path, list(range(record.num_frames)), self.settings.decoder)
        return self._decoded[path][indices]
