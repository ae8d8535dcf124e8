"""``AtomicCheckpointIO``: every checkpoint is written beside its final name and renamed when
complete, so a failed write (a full disk, a kill) leaves the previous ``last.ckpt`` and best
checkpoint as they were.

Lightning's own local save stages the file in the system temp folder and *moves* it: across
filesystems that is a copy, and a disk that fills up during it left a truncated ``last.ckpt``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .io import written_atomically


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
