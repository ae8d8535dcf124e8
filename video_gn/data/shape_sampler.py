"""``ShapeBatchSampler``: training batches whose size and clip shape follow a multigrid schedule.

Each batch is a list of ``TrainSample`` keys carrying a ``ClipShape``; the dataset cuts every clip
at the shape in its key (its random choices from the key too, as ``train_sampler``), so one
``DataLoader`` (and its workers) serves every shape: nothing is rebuilt when the shape
changes. The epoch (``set_epoch``, called by the datamodule before Lightning takes the epoch's length)
picks the long-cycle shape; within an epoch the batches cycle through its short-cycle shapes. Each
rank reads its own shard of one permutation per epoch (``seed`` + epoch), as ``DistributedSampler``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch.utils.data import Sampler

from .dataset import ClipSettings, ClipShape
from .train_sampler import TrainSample

if TYPE_CHECKING:
    from ..training.multigrid import MultigridSchedule


class ShapeBatchSampler(Sampler[list[TrainSample]]):
    """Args:
        num_samples: training videos (all ranks).
        schedule: the multigrid schedule (its base shape is ``settings``').
        settings: the base clip settings; the training short sides scale with the crop, as PySlowFast.
        seed: the permutation of epoch ``e`` is drawn from ``seed + e``.
        world_size, rank: this rank's shard.
    """

    def __init__(self, num_samples: int, schedule: MultigridSchedule, settings: ClipSettings, seed: int = 0,
                 world_size: int = 1, rank: int = 0):
        self.num_samples, self.schedule, self.settings = num_samples, schedule, settings
        self.seed, self.world_size, self.rank = seed, world_size, rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shapes(self) -> list[tuple[int, ClipShape]]:
        """This epoch's iterations: (clips per device, clip shape), cycled through in order."""
        base = self.settings
        out = []
        for it in self.schedule.phase_at(self.epoch).iterations:
            scale = it.crop / base.crop_size
            short_side = tuple(round(s * scale) for s in base.train_short_side)
            out.append((it.clips, ClipShape(frames_per_clip=it.frames, frame_stride=it.stride,
                                            crop_size=it.crop, train_short_side=short_side)))
        return out

    def _shard(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_samples, generator=generator)
        per_rank = self.num_samples // self.world_size  # equal shards: every rank runs the same steps
        return order[self.rank * per_rank:(self.rank + 1) * per_rank].tolist()

    def batches(self) -> list[list[TrainSample]]:
        """Every batch of this epoch; an incomplete last batch is dropped (as training's drop_last)."""
        shard, shapes, out, i = self._shard(), self.shapes(), [], 0
        while True:
            clips, shape = shapes[len(out) % len(shapes)]
            if i + clips > len(shard):
                return out
            out.append([TrainSample(index, self.seed, self.epoch, shape=shape)
                        for index in shard[i:i + clips]])
            i += clips

    def __iter__(self) -> Iterator[list[TrainSample]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())
