"""A checkpoint of ours (``<run dir>/checkpoints/*.ckpt``) as the start of another training: the
network's weights (``state_dict`` entries under ``net.``), with a new classifier when the class
count differs (fine-tuning onto one's own classes).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsFileError

log = logging.getLogger(__name__)
PREFIX = "net."  # VideoClassifier.net
HEAD = ("head.fc.weight", "head.fc.bias")


def our_state_of(checkpoint) -> dict[str, torch.Tensor] | None:
    """The network weights of a Lightning checkpoint of ours (a ``torch.save`` file already read,
    ``weights_file.identify``), or None for any other file's content."""
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not any(k.startswith(PREFIX) for k in state):
        return None
    return {k.removeprefix(PREFIX): v for k, v in state.items() if k.startswith(PREFIX)}


def load_ours(model: nn.Module, path: str | Path, state: dict[str, torch.Tensor]) -> list[str]:
    """Loads ``state`` into ``model`` in place; returns the names of the tensors it filled. Every
    tensor must fit but the classifier, which is replaced (logged with both class counts) when the
    file was trained for another number of classes."""
    target = model.state_dict()
    head = all(k in state and state[k].shape == target[k].shape for k in HEAD)
    if not head and HEAD[0] in state:
        log.warning("%s: its classifier (%d classes) is replaced by a new one for this network's %d "
                    "classes", path, state[HEAD[0]].shape[0], target[HEAD[0]].shape[0])
    kept = {k: v for k, v in state.items() if head or k not in HEAD}
    unexpected = sorted(set(kept) - set(target))
    missing = sorted(set(target) - set(kept) - (set() if head else set(HEAD)))
    mismatched = [f"{k}: {tuple(v.shape)} vs {tuple(target[k].shape)}" for k, v in kept.items()
                  if k in target and v.shape != target[k].shape]
    if unexpected or missing or mismatched:
        lines = [f"{path} (a checkpoint of ours) does not match the network (another model or norm?):"]
        for title, keys in (("unexpected", unexpected), ("missing", missing), ("shape mismatch", mismatched)):
            if keys:
                more = " ..." if len(keys) > 10 else ""
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(keys[:10]) + more)
        raise WeightsFileError("\n".join(lines))
    model.load_state_dict(kept, strict=False)
    return sorted(kept)
