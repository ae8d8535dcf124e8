"""``EpochSeed``: the process's random state at the start of every training epoch, from (seed, epoch,
rank) alone.

What a training step draws from it (dropout) then depends on the epoch, not on what ran before in
this process: a run resumed from ``last.ckpt`` draws what the uninterrupted run drew, and so ends
with the same weights. The clips' own randomness is keyed the same way (``data.train_sampler``).
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch


class EpochSeed(L.Callback):
    """Args:
        seed: the run's seed.
    """

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        entropy = np.random.SeedSequence([self.seed, trainer.current_epoch, trainer.global_rank])
        torch.manual_seed(int(entropy.generate_state(1, np.uint64)[0] >> 1))
