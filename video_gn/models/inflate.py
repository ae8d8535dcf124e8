"""Inflate a 2D ImageNet ResNet checkpoint (torchvision key layout, BN or GN) into a 3D ResNet.

Kernels are inflated by ``state_dict.fit_kernel``; norm parameters and statistics copy as they are.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsFileError
from .state_dict import match_state_dict, missing_keys, read_weights_file

_CONV_NORM = {"conv1": "conv_a", "conv2": "conv_b", "conv3": "conv_c",
              "bn1": "norm_a", "bn2": "norm_b", "bn3": "norm_c"}


def torchvision_key_to_3d(key: str) -> str:
    """``layer2.0.bn1.weight`` -> ``res3.0.norm_a.weight`` (see the naming in resnet3d.py)."""
    if key.startswith("conv1."):
        return "stem.conv." + key[len("conv1."):]
    if key.startswith("bn1."):
        return "stem.norm." + key[len("bn1."):]
    if key.startswith("fc."):
        return "head." + key
    m = re.fullmatch(r"layer(\d)\.(\d+)\.(\w+?)\.(.+)", key)
    if m is None:
        return key
    stage, block, part, rest = m.groups()
    prefix = f"res{int(stage) + 1}.{block}."
    if part == "downsample":
        index, _, param = rest.partition(".")
        return prefix + ("shortcut.conv." if index == "0" else "shortcut.norm.") + param
    return prefix + _CONV_NORM.get(part, part) + "." + rest


def load_2d_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A local checkpoint: a bare state dict, or one under ``state_dict``/``model``."""
    obj = read_weights_file(path)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    return {k.removeprefix("module."): v for k, v in obj.items()}


def inflate_state_dict(state_2d: dict[str, torch.Tensor], model: nn.Module,
                       include_head: bool = False) -> dict[str, torch.Tensor]:
    """Returns the 3D state dict for ``model``; raises listing every unmatched/mismatched key."""
    target = model.state_dict()
    match = match_state_dict(state_2d, target, torchvision_key_to_3d, inflate=True, include_head=include_head)
    match.missing = missing_keys(match.state, target, include_head)
    if not match.ok():
        raise WeightsFileError("\n".join(["2D checkpoint does not match the 3D network:", *match.lines()]))
    return match.state


def inflate_from_2d(model: nn.Module, path: str | Path, include_head: bool = False) -> list[str]:
    """Loads a local 2D checkpoint into ``model`` in place (strict apart from the head); returns
    the names of the tensors it filled."""
    state = inflate_state_dict(load_2d_state_dict(path), model, include_head)
    model.load_state_dict(state, strict=False)
    return sorted(state)
