"""Import the Kinetics models people download: pytorchvideo's model zoo and PySlowFast's ``.pyth``.

Two key layouts, one network family (``conf/model/{i3d,slow,c2d}_r50_8x8.yaml``):

- pytorchvideo (``I3D_8x8_R50.pyth`` etc.: ``{"model_state": ...}``): ``blocks.0.conv/norm`` (stem),
  ``blocks.S.res_blocks.J.branch1_conv/branch1_norm`` (shortcut) and ``.branch2.conv_{a,b,c}`` /
  ``.norm_{a,b,c}``, head ``blocks.H.proj``; the stages are the blocks with ``res_blocks`` in order
  (I3D and C2D: 1, 3, 4, 5 — block 2 is the parameter-free temporal pool —, head 6; Slow: 1-4, head 5).
- PySlowFast (``{"epoch", "model_state", "optimizer_state", "cfg"}``): ``s1.pathway0_stem.conv/bn``,
  ``sK.pathway0_resJ.branch1`` / ``branch1_bn`` and ``.branch2.{a,b,c}`` / ``.{a,b,c}_bn``, head
  ``head.projection``; ``sK`` is our ``resK`` (K = 2..5).

Ours: ``stem.conv/norm``, ``resK.J.conv_{a,b,c}/norm_{a,b,c}``, ``resK.J.shortcut.conv/norm``, ``head.fc``.
``module.`` / ``model.`` prefixes (DDP, Lightning) are stripped first. The architecture is read from
the weights (the stem's and res4's temporal kernels, res4's depth), so a file loaded into another
network is refused with the config to use. Their input: RGB / 255, mean 0.45, std 0.225 (our default).
"""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsFileError
from .state_dict import match_state_dict, missing_keys, read_weights_file

log = logging.getLogger(__name__)

# model.arch -> (what the file is, the config that builds it)
ZOO_MODELS = {"i3d_8x8": ("I3D 8x8 R50", "i3d_r50_8x8"), "slow_8x8": ("Slow 8x8 R50", "slow_r50_8x8"),
              "c2d_8x8": ("C2D 8x8 R50", "c2d_r50_8x8")}
_NORM_PARAMS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_PYSLOWFAST_BRANCH2 = {"a": "conv_a", "b": "conv_b", "c": "conv_c",
                       "a_bn": "norm_a", "b_bn": "norm_b", "c_bn": "norm_c"}


def zoo_state_or_none(path: str | Path) -> dict[str, torch.Tensor] | None:
    """The weights of a pytorchvideo or PySlowFast checkpoint (prefixes stripped), or None when the
    file is something else (a checkpoint of ours, a Caffe2 pickle)."""
    path = Path(path)
    return zoo_state_of(read_weights_file(path)) if zipfile.is_zipfile(path) else None


def zoo_state_of(checkpoint) -> dict[str, torch.Tensor] | None:
    """The same, of a ``torch.save`` file already read."""
    state = checkpoint.get("model_state") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        return None
    state = {_strip(k): v for k, v in state.items()}
    return state if layout_of(state) else None


def _strip(key: str) -> str:
    for prefix in ("module.", "model."):
        key = key.removeprefix(prefix)
    return key


def layout_of(state: dict) -> str | None:
    """``"pytorchvideo"``, ``"pyslowfast"`` or None."""
    if "blocks.0.conv.weight" in state:
        return "pytorchvideo"
    if "s1.pathway0_stem.conv.weight" in state:
        return "pyslowfast"
    return None


def zoo_key_map(state: dict) -> dict[str, str]:
    """The file's key -> ours, for every key of the stem, stages and head (others map to nothing)."""
    if layout_of(state) == "pyslowfast":
        return {k: ours for k in state if (ours := _pyslowfast_key(k)) is not None}
    stage_of = {b: f"res{i + 2}" for i, b in enumerate(_stage_blocks(state))}
    mapped = {}
    for key in state:
        if m := re.fullmatch(r"blocks\.0\.(conv|norm)\.(\w+)", key):
            mapped[key] = f"stem.{m[1]}.{m[2]}"
        elif m := re.fullmatch(r"blocks\.\d+\.proj\.(weight|bias)", key):
            mapped[key] = f"head.fc.{m[1]}"
        elif (m := re.fullmatch(r"blocks\.(\d+)\.res_blocks\.(\d+)\.(.+)", key)) and int(m[1]) in stage_of:
            part = m[3]
            part = re.sub(r"^branch1_(conv|norm)\.", r"shortcut.\1.", part)
            part = re.sub(r"^branch2\.((?:conv|norm)_[abc])\.", r"\1.", part)
            mapped[key] = f"{stage_of[int(m[1])]}.{m[2]}.{part}"
    return mapped


def _stage_blocks(state: dict) -> list[int]:
    """pytorchvideo: the indices of the blocks that are stages (they hold ``res_blocks``), in order."""
    return sorted({int(m[1]) for k in state if (m := re.match(r"blocks\.(\d+)\.res_blocks\.", k))})


def _pyslowfast_key(key: str) -> str | None:
    if m := re.fullmatch(r"s1\.pathway0_stem\.(conv|bn)\.(\w+)", key):
        return f"stem.{'conv' if m[1] == 'conv' else 'norm'}.{m[2]}"
    if m := re.fullmatch(r"head\.projection\.(weight|bias)", key):
        return f"head.fc.{m[1]}"
    if m := re.fullmatch(r"s(\d)\.pathway0_res(\d+)\.branch1(_bn)?\.(\w+)", key):
        return f"res{m[1]}.{m[2]}.shortcut.{'norm' if m[3] else 'conv'}.{m[4]}"
    if m := re.fullmatch(r"s(\d)\.pathway0_res(\d+)\.branch2\.(a|b|c|a_bn|b_bn|c_bn)\.(\w+)", key):
        return f"res{m[1]}.{m[2]}.{_PYSLOWFAST_BRANCH2[m[3]]}.{m[4]}"
    return None


def zoo_architecture(state: dict) -> str:
    """Which of ``ZOO_MODELS`` the weights are, from their shapes."""
    ours = {v: state[k] for k, v in zoo_key_map(state).items()}
    stem_t = ours["stem.conv.weight"].shape[2]
    res4_t = ours["res4.0.conv_a.weight"].shape[2]
    if stem_t == 5:
        return "i3d_8x8"
    return "slow_8x8" if res4_t == 3 else "c2d_8x8"


def load_zoo(model: nn.Module, path: str | Path, arch: str, state: dict[str, torch.Tensor] | None = None,
             norm_kind: str = "bn") -> list[str]:
    """Loads a pytorchvideo / PySlowFast checkpoint into ``model`` (``model.arch=arch``) in place;
    returns the names of the tensors it filled.

    The classifier is loaded when its shape fits (Kinetics-400 into 400 classes), else left random
    (said in the log). With a norm that is not BN (``norm=gn``, ``ln``, ``in``) the file's BN layers
    have nowhere to go: the convolutions and the classifier load, the norms start fresh (said in the
    log). Anything else that does not fit is an error listing the keys in the file's naming and ours.
    """
    path = Path(path)
    state = zoo_state_or_none(path) if state is None else state
    if state is None:
        raise WeightsFileError(f"{path}: not a pytorchvideo or PySlowFast checkpoint (no model_state with "
                               "blocks.0.conv.weight or s1.pathway0_stem.conv.weight)")
    found = zoo_architecture(state)
    if arch != found:
        what, config = ZOO_MODELS[found]
        raise WeightsFileError(f"{path} holds a {layout_of(state)} {what}, which model.arch={arch} "
                               f"cannot take: use model={config}")
    mapping = zoo_key_map(state)
    target = model.state_dict()
    fresh_norms = norm_kind not in ("bn", "syncbn", "frozen_bn")

    def left_out(key: str) -> bool:
        ours = mapping.get(key)
        if ours is None:
            return False
        if fresh_norms and _is_norm_key(ours):
            return True
        return ours.endswith("num_batches_tracked") and ours not in target  # frozen BN keeps no counter

    file_head = state[_key_of(mapping, "head.fc.weight")]
    head = target["head.fc.weight"].shape == file_head.shape
    kept = {k: v for k, v in state.items() if not left_out(k)}
    match = match_state_dict(kept, target, mapping.get, inflate=False, include_head=head)
    match.missing = [k for k in missing_keys(match.state, target, head)
                     if not (fresh_norms and _is_norm_key(k))]
    if not match.ok():
        raise WeightsFileError("\n".join([f"{path} does not match the network:",
                                          *match.lines(lambda ours: zoo_file_name(ours, state))]))
    model.load_state_dict(match.state, strict=False)
    if not head:
        log.warning("%s: its classifier (%d classes) is replaced by a new one for this network's %d "
                    "classes", path, file_head.shape[0],
                    target["head.fc.weight"].shape[0])
    if fresh_norms:
        log.warning("%s: norm=%s: the file's BatchNorm layers are not loaded (the convolutions and the "
                    "classifier are); the %s layers start as initialised", path, norm_kind, norm_kind.upper())
    return sorted(match.state)


def _is_norm_key(ours: str) -> bool:
    return bool(re.search(r"(^|\.)(norm(_[abc])?)\.(" + "|".join(_NORM_PARAMS) + ")$", ours))


def _key_of(mapping: dict[str, str], ours: str) -> str:
    return next(k for k, v in mapping.items() if v == ours)


def zoo_file_name(ours: str, state: dict) -> str | None:
    """Our key -> the name it has in a file of ``state``'s layout (for messages about keys the file
    lacks)."""
    m = re.fullmatch(r"(stem|head)\.(conv|norm|fc)\.(\w+)|res(\d)\.(\d+)\.(shortcut\.conv|shortcut\.norm|"
                     r"conv_[abc]|norm_[abc])\.(\w+)", ours)
    if m is None:
        return None
    pyslowfast = layout_of(state) == "pyslowfast"
    if m[1]:
        if pyslowfast:
            return {"conv": "s1.pathway0_stem.conv", "norm": "s1.pathway0_stem.bn",
                    "fc": "head.projection"}[m[2]] + f".{m[3]}"
        if m[1] == "head":
            return f"blocks.{_stage_blocks(state)[-1] + 1}.proj.{m[3]}"
        return f"blocks.0.{m[2]}.{m[3]}"
    stage, block, part, param = int(m[4]), m[5], m[6], m[7]
    if pyslowfast:
        name = {"shortcut.conv": "branch1", "shortcut.norm": "branch1_bn"}.get(part) or \
            "branch2." + {v: k for k, v in _PYSLOWFAST_BRANCH2.items()}[part]
        return f"s{stage}.pathway0_res{block}.{name}.{param}"
    name = {"shortcut.conv": "branch1_conv", "shortcut.norm": "branch1_norm"}.get(part) or f"branch2.{part}"
    return f"blocks.{_stage_blocks(state)[stage - 2]}.res_blocks.{block}.{name}.{param}"
