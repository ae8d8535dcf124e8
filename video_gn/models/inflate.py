"""Inflate a 2D ImageNet ResNet checkpoint (torchvision key layout, BN or GN) into a 3D ResNet.

A k x k kernel becomes t x k x k by repeating it t times in time and dividing by t, so a clip of
identical frames gives the 2D network's activations. Norm parameters and statistics copy as they are.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

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
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"2D checkpoint not found: {path}")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    return {k.removeprefix("module."): v for k, v in obj.items()}


def fit_kernel(value: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """A 2-D k x k kernel where the network has t x k x k: repeated t times in time, divided by t."""
    if value.dim() == 4 and len(shape) == 5:
        t = shape[2]
        value = value.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
    return value


def mismatch_lines(unexpected: list[str], mismatched: list[str], missing: list[str]) -> list[str]:
    """One line per kind of mismatch between a checkpoint and a network, naming the keys."""
    lines = []
    for title, keys in (("unexpected in checkpoint", unexpected), ("shape mismatch", mismatched),
                        ("missing from checkpoint", missing)):
        if keys:
            more = " ..." if len(keys) > 20 else ""
            lines.append(f"  {title} ({len(keys)}): " + ", ".join(keys[:20]) + more)
    return lines


def inflate_state_dict(state_2d: dict[str, torch.Tensor], model: nn.Module,
                       include_head: bool = False) -> dict[str, torch.Tensor]:
    """Returns the 3D state dict for ``model``; raises listing every unmatched/mismatched key."""
    target = model.state_dict()
    inflated, unexpected, mismatched = {}, [], []
    for key_2d, value in state_2d.items():
        key = torchvision_key_to_3d(key_2d)
        if key.startswith("head.") and not include_head:
            continue
        if key not in target:
            unexpected.append(key_2d)
            continue
        want = target[key].shape
        value = fit_kernel(value, want)
        if value.shape != want:
            mismatched.append(f"{key_2d} -> {key}: {tuple(value.shape)} vs {tuple(want)}")
            continue
        inflated[key] = value.to(target[key].dtype)
    missing = [k for k in target
               if k not in inflated and not (k.startswith("head.") and not include_head)
               and not k.endswith("num_batches_tracked")]
    if unexpected or mismatched or missing:
        lines = mismatch_lines(unexpected, mismatched, missing)
        raise ValueError("\n".join(["2D checkpoint does not match the 3D network:", *lines]))
    return inflated


def inflate_from_2d(model: nn.Module, path: str | Path, include_head: bool = False) -> nn.Module:
    """Loads a local 2D checkpoint into ``model`` in place (strict apart from the head)."""
    state = inflate_state_dict(load_2d_state_dict(path), model, include_head)
    model.load_state_dict(state, strict=False)
    return model
