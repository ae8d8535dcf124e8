"""One matcher from a foreign checkpoint's names to our network's: the torchvision inflater
(``inflate``) and the Caffe2/Detectron importer (``caffe2_import``) differ only in their name map.

Every key of the file is renamed, skipped (the classifier, when not loaded), inflated (a 2-D k x k
kernel becomes t x k x k: repeated t times in time, divided by t, so a clip of identical frames gives
the 2-D network's activations) and checked against the network's shape; what does not fit is
listed, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import MissingFileError


def read_weights_file(path: str | Path) -> dict:
    """A foreign ``torch.save`` file (torchvision, pytorchvideo, PySlowFast): tensors, numbers and
    strings only (``weights_only``: no code from the file runs). Ours are read by
    ``record.checkpoints.read_checkpoint``."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint not found: {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def fit_kernel(value: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """A 2-D k x k kernel where the network has t x k x k: repeated t times in time, divided by t."""
    if value.dim() == 4 and len(shape) == 5:
        t = shape[2]
        value = value.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
    return value


@dataclass
class Match:
    """Our state dict built from a file, and what of the file did not fit."""

    state: dict[str, torch.Tensor] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)  # the file's names that map to nothing of ours
    mismatched: list[str] = field(default_factory=list)  # "file name -> our name: shape vs shape"
    missing: list[str] = field(default_factory=list)  # our names the file does not fill

    def lines(self, file_name: Callable[[str], str | None] | None = None) -> list[str]:
        """One line per kind of mismatch, naming the keys; a missing key also by the name the file
        would have it under (``file_name``: ours -> the file's naming), which is what a user
        searching the file looks for."""
        lines = []
        missing = self.missing if file_name is None else [
            f"{file_name(k) or '?'} (ours: {k})" for k in self.missing]
        kinds = (("unexpected in checkpoint", self.unexpected), ("shape mismatch", self.mismatched),
                 ("missing from checkpoint", missing))
        for title, keys in kinds:
            if keys:
                more = " ..." if len(keys) > 20 else ""
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(keys[:20]) + more)
        return lines

    def ok(self) -> bool:
        return not (self.unexpected or self.mismatched or self.missing)


def match_state_dict(source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor],
                     rename: Callable[[str], str | None], *, inflate: bool, include_head: bool) -> Match:
    """``source`` (the file's tensors by its names) -> a :class:`Match` against ``target`` (the
    network's ``state_dict()``); ``rename`` maps a file name to ours (None: not ours)."""
    match = Match()
    for key, value in source.items():
        name = rename(key)
        if name is not None and name.startswith("head.") and not include_head:
            continue
        if name is None or name not in target:
            match.unexpected.append(key)
            continue
        want = target[name].shape
        if inflate:
            value = fit_kernel(value, want)
        if value.shape != want:
            match.mismatched.append(f"{key} -> {name}: {tuple(value.shape)} vs {tuple(want)}")
            continue
        match.state[name] = value.to(target[name].dtype)
    return match


def missing_keys(state: Mapping, target: Mapping, include_head: bool) -> list[str]:
    """The network's entries ``state`` leaves unfilled (BN's batch counter aside)."""
    return [k for k in target if k not in state and not k.endswith("num_batches_tracked")
            and not (k.startswith("head.") and not include_head)]
