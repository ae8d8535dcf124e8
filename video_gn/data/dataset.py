"""Map-style dataset of clips from a manifest, robust to bad files.

A sample is a dict: ``video`` (uint8 ``[C, T, H, W]``, or ``[V, C, T, H, W]`` in test mode),
``label``, ``index`` (of the manifest row), ``scored`` (False: a val/test video that could not be
read, left out of the metrics), and ``load_errors``: one ``path<TAB>reason`` line per video that
failed before this sample was produced (a string, so it crosses worker processes and the default
collate).

A video the configured decoder cannot read is read with the other one (decord <-> PyAV; decord
refuses some frame sizes PyAV decodes). One that neither reads is logged with its path and reasons,
and then: in training replaced by another sample, so an epoch never stops for one bad file; in
validation and test *not* replaced — a replacement would score one video twice and another never —
but returned unscored, so every metric counts each readable video exactly once. The run keeps the
distinct failed paths (``record.load_failures.LoadFailureLog``) across workers, ranks and resumes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from . import sampling, transforms
from .decode import DECODERS, DecodeError, read_frames
from .manifest import ClipRecord, read_manifest
from .train_sampler import TrainSample

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
        max_retries: replacement attempts for one training sample before giving up (a dataset this
            broken is a configuration error, not bad luck).
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
        self._other_decoder: set[str] = set()  # videos read with the other decoder (logged once each)

    def video_path(self, record: ClipRecord) -> str:
        return str(self.root / record.path)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | TrainSample) -> dict:
        """``key``: a row index, or a training clip's :class:`TrainSample` (its random choices, and
        under multigrid its shape, come from the key)."""
        failures = []
        candidate = key
        for _ in range(self.max_retries + 1):
            try:
                sample = self._load(candidate)
            except DecodeError as e:
                log.warning("skipping unreadable video %s (%s)", e.path, e.reason)
                failures.append(f"{e.path}\t{e.reason}")
                if self.mode != "train":
                    sample = self._unscored(int(key))
                    break
                candidate = self._replacement(key, len(failures))
                continue
            break
        else:
            raise RuntimeError(f"{len(failures)} videos in a row failed to load from {self.root} "
                               f"({self.split}); last errors:\n  "
                               + "\n  ".join(f.replace("\t", ": ") for f in failures[-3:]))
        sample["load_errors"] = "\n".join(failures)
        return sample

    def _replacement(self, key: int | TrainSample, attempt: int) -> int | TrainSample:
        """Another training video for a failed one: deterministic, different for each attempt."""
        index = key.index if isinstance(key, TrainSample) else key
        other = int(np.random.default_rng([index, attempt]).integers(len(self)))
        return key._replace(index=other) if isinstance(key, TrainSample) else other

    def _unscored(self, index: int) -> dict:
        """A val/test video that could not be read: zeros of the sample's shape, left out of every
        metric (``scored`` False) and of predictions.csv."""
        s = self.settings
        if self.mode == "test":  # test views are squares of the eval short side
            shape = (s.num_test_clips * s.num_test_crops, 3, s.frames_per_clip, s.eval_short_side,
                     s.eval_short_side)
        else:
            shape = (3, s.frames_per_clip, s.crop_size, s.crop_size)
        return {"video": torch.zeros(shape, dtype=torch.uint8), "label": self.records[index].label,
                "index": index, "scored": False}

    def _load(self, key: int | TrainSample) -> dict:
        index = int(key.index if isinstance(key, TrainSample) else key)
        record, s = self.records[index], self.settings
        shape = key.shape if isinstance(key, TrainSample) else None
        if shape is not None:
            s = replace(s, frames_per_clip=shape.frames_per_clip, frame_stride=shape.frame_stride,
                        crop_size=shape.crop_size, train_short_side=shape.train_short_side)
        path = self.video_path(record)
        if self.mode == "train":
            if isinstance(key, TrainSample):
                rng, generator = key.generators()
            else:  # a bare index (e.g. dataset[i] by hand): the process's random state
                rng, generator = np.random.default_rng(int(torch.randint(0, 2**62, ()))), None
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
                                               s.flip, generator)
        else:
            video = transforms.val_transform(frames.permute(0, 3, 1, 2), s.eval_short_side, s.crop_size)
        return {"video": video, "label": record.label, "index": index, "scored": True}

    def _frames(self, path: str, record: ClipRecord, indices: list[int]) -> torch.Tensor:
        if not self.settings.cache_videos:
            return self._read(path, indices)
        if path not in self._decoded:
            self._decoded[path] = self._read(path, list(range(record.num_frames)))
        return self._decoded[path][indices]

    def _read(self, path: str, indices: list[int]) -> torch.Tensor:
        """The frames, with the configured decoder or else the other one (both reasons if neither)."""
        first = self.settings.decoder
        try:
            return read_frames(path, indices, first)
        except DecodeError as e:
            failed = e
        other = next(d for d in DECODERS if d != first)
        try:
            frames = read_frames(path, indices, other)
        except DecodeError as e:
            raise DecodeError(path, f"{first}: {failed.reason}; {other}: {e.reason}") from None
        if path not in self._other_decoder:
            self._other_decoder.add(path)
            log.warning("%s: read with %s (%s could not: %s)", path, other, first, failed.reason)
        return frames
