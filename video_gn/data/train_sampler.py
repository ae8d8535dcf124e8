"""Training samples named by what their randomness comes from: ``TrainSample(index, seed, epoch)``.

A training clip's random window, short side, crop and flip are drawn from a generator seeded by
(run seed, epoch, video index, stream), not from the loader worker's random state. So the clips of
a run are the same whatever ``data.num_workers`` is, whichever worker reads them, and after a resume
(a resumed run's workers start afresh; an uninterrupted run's had drawn for every earlier epoch):
the same command gives the same weights. ``TrainSampler`` is a ``DistributedSampler`` (one
permutation per epoch from ``seed + epoch``, each rank its shard; Lightning keeps it and calls
``set_epoch``) that hands the dataset these keys instead of bare indices.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DistributedSampler

TRAINING, PRECISE_BN = 0, 1  # streams: the clips a run trains on, the clips precise BN reads


class TrainSample(NamedTuple):
    """The key of one training clip: the manifest row, and the seed, epoch and stream its random
    choices derive from; ``shape``: a multigrid clip shape (``dataset.ClipShape``), None for the base."""

    index: int
    seed: int
    epoch: int
    stream: int = TRAINING
    shape: Any = None

    def generators(self) -> tuple[np.random.Generator, torch.Generator]:
        """(numpy, torch) generators of this clip, the same for the same key in any process."""
        rng = np.random.default_rng([self.seed, self.epoch, self.stream, self.index])
        return rng, torch.Generator().manual_seed(int(rng.integers(2**62)))


class TrainSampler(DistributedSampler):
    """``DistributedSampler`` (shuffled, padded to equal shards) yielding :class:`TrainSample` keys.

    Args:
        num_samples: training videos (all ranks).
        seed: the run's seed; epoch ``e``'s order is drawn from ``seed + e``, its clips from the keys.
        world_size, rank: this rank's shard (1, 0 without DDP).
        stream: ``TRAINING`` or ``PRECISE_BN`` (precise BN's batches are not the training clips).
    """

    def __init__(self, num_samples: int, seed: int, world_size: int = 1, rank: int = 0,
                 stream: int = TRAINING):
        super().__init__(range(num_samples), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        self.stream = stream

    def __iter__(self) -> Iterator[TrainSample]:
        for index in super().__iter__():
            yield TrainSample(index, self.seed, self.epoch, self.stream)
