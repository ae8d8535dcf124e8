"""What a weights file is, told by its content (never by its name): the one dispatcher for every
place that takes a file of weights (``model.pretrained_2d`` / ``pretrained_3d``, ``predict``).

- ``caffe2``: a Caffe2/Detectron pickle (the Non-local release, Detectron's ImageNet R-50), read
  through the restricted unpickler (``safe_pickle``: nothing named in the file runs);
- ``zoo``: a pytorchvideo or PySlowFast ``.pyth`` (``{"model_state": ...}``);
- ``ours``: a Lightning checkpoint of ours (``state_dict`` under ``net.``);
- ``torch``: any other ``torch.save`` file (a torchvision ImageNet state dict).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingFileError
from .caffe2_import import caffe2_blobs_or_none
from .ours import our_state_of
from .state_dict import read_weights_file
from .zoo_import import zoo_state_of


@dataclass
class WeightsFile:
    path: Path
    kind: str  # caffe2 | zoo | ours | torch
    content: dict | None  # the blobs / the zoo state / our network state, as read (None for torch)


def identify(path: str | Path) -> WeightsFile:
    """Reads ``path`` once to tell its kind; raises MissingFileError for a missing file and
    ``UnsafePickleError`` for a pickle that names code."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):  # torch.save writes zip archives; Caffe2 pickles are not
        blobs = caffe2_blobs_or_none(path)
        return WeightsFile(path, "caffe2" if blobs is not None else "torch", blobs)
    checkpoint = read_weights_file(path)  # once, for both questions
    if (state := zoo_state_of(checkpoint)) is not None:
        return WeightsFile(path, "zoo", state)
    if (state := our_state_of(checkpoint)) is not None:
        return WeightsFile(path, "ours", state)
    return WeightsFile(path, "torch", None)
