"""Import the paper's own Caffe2 / Detectron weights: pickles with numpy arrays under ``"blobs"``.

Two kinds of file, one name map (``caffe2_key_to_3d``):

- the 2-D ImageNet models the paper started from (Detectron's ``R-50-GN.pkl``: ``conv1_w``,
  ``conv1_gn_s/_b``, ``res2_0_branch2a_w``, ``res2_0_branch2a_gn_s/_b``, ``res2_0_branch1_*``;
  the BN ``R-50.pkl``: ``res_conv1_bn_s/_b`` and ``..._bn_s/_b``), inflated to I3D like
  ``inflate.py`` does for torchvision checkpoints (``model.pretrained_2d``);
- the 3-D I3D-R50 Kinetics models released with the Non-local code (``conv1_w`` of 5x7x7,
  ``res_conv1_bn_{s,b,rm,riv}``, ``resL_B_branch{1,2a,2b,2c}_{w,bn_s,bn_b,bn_rm,bn_riv}``,
  ``pred_w``, ``pred_b``), loaded as they are (``model.pretrained_3d``).

Input convention. Caffe2 models read **BGR** frames (OpenCV decoding): the importer reverses
``conv1_w`` along its input channels, so the imported network takes RGB like every other model
here. The Non-local models normalise 0–255 pixels with mean 114.75 and std 57.375, which is exactly
``data.mean=0.45 data.std=0.225`` on 0–1 pixels (our default). Detectron's ImageNet models were
trained on 0–255 BGR minus [102.98, 115.95, 122.77] with std 1; fine-tuning (the paper) works with
the default normalisation because a norm layer follows conv1 (GN and training-mode BN remove the
scale); a frozen-BN fine-tune would need the ImageNet convention: ``data.mean=[0.485,0.455,0.404]
data.std=[0.00392,0.00392,0.00392]`` (RGB order, 1/255).

``_bn_riv`` is the running variance (Caffe2's SpatialBN naming). BN models saved with the affine
folded in (``_bn_s/_b`` only, no statistics) get running mean 0 and running variance 1 − eps, so
eval-mode BN applies exactly ``s·x + b``.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import MissingFileError, WeightsFileError
from .safe_pickle import UnsafePickleError, load_weights_pickle
from .state_dict import match_state_dict, missing_keys

# Training state stored beside the weights: optimizer momentum per blob, and counters.
_IGNORED = re.compile(r".*_momentum$|^lr$|^model_iter$|^iter$")
_NORM_PARAM = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}


def caffe2_key_to_3d(key: str) -> str | None:
    """``res3_1_branch2a_gn_s`` -> ``res3.1.norm_a.weight``; ``None`` for a name outside the map."""
    if key == "conv1_w":
        return "stem.conv.weight"
    m = re.fullmatch(r"(?:res_conv1|conv1)_(?:bn|gn)_(s|b|rm|riv)", key)
    if m:
        return "stem.norm." + _NORM_PARAM[m[1]]
    m = re.fullmatch(r"(?:pred|fc1000)_(w|b)", key)
    if m:
        return "head.fc." + ("weight" if m[1] == "w" else "bias")
    m = re.fullmatch(r"res(\d)_(\d+)_branch(1|2a|2b|2c)_(w|(?:bn|gn)_(?:s|b|rm|riv))", key)
    if m is None:
        return None
    stage, block, branch, param = m.groups()
    prefix = f"res{stage}.{block}."
    if param == "w":
        module = "shortcut.conv" if branch == "1" else f"conv_{branch[1]}"
        return f"{prefix}{module}.weight"
    module = "shortcut.norm" if branch == "1" else f"norm_{branch[1]}"
    return f"{prefix}{module}.{_NORM_PARAM[param.split('_')[1]]}"


def caffe2_file_name(ours: str, *, gn: bool, release: bool) -> str | None:
    """Our key -> its blob name in a Caffe2 file (the inverse of ``caffe2_key_to_3d``; ``gn``: GN
    blobs ``_gn_s/_b``; ``release``: the Non-local release's classifier ``pred_*``, not ``fc1000_*``)."""
    norm = "gn" if gn else "bn"
    param = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}
    if ours == "stem.conv.weight":
        return "conv1_w"
    if m := re.fullmatch(r"stem\.norm\.(\w+)", ours):
        return f"{'conv1' if gn else 'res_conv1'}_{norm}_{param.get(m[1], m[1])}"
    if m := re.fullmatch(r"head\.fc\.(weight|bias)", ours):
        return f"{'pred' if release else 'fc1000'}_{'w' if m[1] == 'weight' else 'b'}"
    m = re.fullmatch(r"res(\d)\.(\d+)\.(shortcut\.conv|shortcut\.norm|conv_[abc]|norm_[abc])\.(\w+)", ours)
    if m is None:
        return None
    branch = "branch1" if m[3].startswith("shortcut") else f"branch2{m[3][-1]}"
    kind = "w" if m[3].endswith("conv") or m[3].startswith("conv") else f"{norm}_{param.get(m[4], m[4])}"
    return f"res{m[1]}_{m[2]}_{branch}_{kind}"


def caffe2_blobs_or_none(path: str | Path) -> dict[str, np.ndarray] | None:
    """The blobs of a Caffe2/Detectron pickle, or None for a ``torch.save`` file (read once)."""
    path = Path(path)
    if zipfile.is_zipfile(path):  # torch.save writes zip archives
        return None
    try:
        blobs = load_caffe2_blobs(path)
    except UnsafePickleError:
        raise  # never mistaken for "not a pickle": the file is refused, naming what it holds
    except (pickle.UnpicklingError, EOFError, ValueError, WeightsFileError):  # not a pickle, cut short,
        return None  # not a dict of arrays (the restricted unpickler resolves no class: nothing else)
    return blobs if "conv1_w" in blobs else None


def load_caffe2_blobs(path: str | Path) -> dict[str, np.ndarray]:
    """The weight arrays of a Caffe2 pickle, training state (momentum, iteration) left out."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint not found: {path}")
    obj = load_weights_pickle(path)  # nothing named in the file runs (safe_pickle)
    if not isinstance(obj, dict):
        raise WeightsFileError(f"{path}: not a Caffe2 weights pickle (a {type(obj).__name__}, not a dict)")
    blobs = obj.get("blobs", obj)
    return {k: np.asarray(v) for k, v in blobs.items() if not _IGNORED.fullmatch(k)}


def caffe2_state_dict(blobs: dict[str, np.ndarray], model: nn.Module, *, inflate: bool,
                      include_head: bool, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Caffe2 blobs -> ``model``'s state dict; raises listing every unmatched or mismatched key.

    Args:
        inflate: 2-D kernels (k x k) become t x k x k, repeated in time and divided by t.
        include_head: also load ``pred_*`` / ``fc1000_*`` into the classifier (same classes only).
    """
    check_norm_matches(blobs, model, source)
    target = model.state_dict()
    tensors = {k: torch.from_numpy(np.ascontiguousarray(a)) for k, a in blobs.items()}
    match = match_state_dict(tensors, target, caffe2_key_to_3d, inflate=inflate, include_head=include_head)
    state = match.state
    if "stem.conv.weight" in state:  # BGR -> RGB (see the module docstring)
        state["stem.conv.weight"] = state["stem.conv.weight"].flip(1)
    if not any("_gn_" in k for k in blobs):
        _fold_missing_bn_statistics(state, target, model)
    match.missing = missing_keys(state, target, include_head)
    if not match.ok():
        gn, release = any("_gn_" in k for k in blobs), "pred_w" in blobs
        lines = [f"{source} does not match the network:",
                 *match.lines(lambda ours: caffe2_file_name(ours, gn=gn, release=release))]
        raise WeightsFileError("\n".join(lines))
    return state


def check_norm_matches(blobs: dict[str, np.ndarray], model: nn.Module, source: str) -> None:
    """A file's norm blobs must be the network's kind: a BN scale/shift (often with the statistics
    folded in) is not a GN γ/β, and the reverse; both have the same shapes, so a load would succeed
    silently and start from the wrong function."""
    file_kind = "GroupNorm" if any("_gn_" in k for k in blobs) else \
        "BatchNorm" if any("_bn_" in k for k in blobs) else None
    group_norm = any(isinstance(m, nn.GroupNorm) for m in model.modules())
    batch_norm = any(hasattr(m, "running_var") for m in model.modules())
    net_kind = "GroupNorm" if group_norm else "BatchNorm" if batch_norm else None
    if file_kind is None or net_kind is None or file_kind == net_kind:
        return
    example = next(k for k in blobs if ("_gn_" if file_kind == "GroupNorm" else "_bn_") in k)
    use = "norm=gn (or a BN file such as R-50.pkl for norm=bn)" if file_kind == "GroupNorm" else \
        "norm=bn or norm=frozen_bn (or a GN file such as R-50-GN.pkl for norm=gn)"
    raise WeightsFileError(f"{source} holds {file_kind} parameters (e.g. {example}) but the network's "
                           f"norm is {net_kind} (norm=gn/ln/in build GroupNorm layers): their scale and "
                           f"shift are not interchangeable; use {use}")


def _fold_missing_bn_statistics(state: dict, target: dict, model: nn.Module) -> None:
    """BN saved as a folded affine (scale and bias, no statistics): mean 0, variance 1 − eps."""
    eps = {f"{name}.": m.eps for name, m in model.named_modules() if hasattr(m, "running_var")}
    for prefix, e in eps.items():
        if prefix + "weight" in state and prefix + "running_mean" not in state:
            state[prefix + "running_mean"] = torch.zeros_like(target[prefix + "running_mean"])
            state[prefix + "running_var"] = torch.full_like(target[prefix + "running_var"], 1 - e)


def load_caffe2(model: nn.Module, path: str | Path, *, inflate: bool, include_head: bool,
                blobs: dict[str, np.ndarray] | None = None) -> list[str]:
    """Loads a Caffe2 pickle (``blobs`` if already read) into ``model`` in place (strict, apart from
    the head when excluded); returns the names of the tensors it filled."""
    blobs = load_caffe2_blobs(path) if blobs is None else blobs
    state = caffe2_state_dict(blobs, model, inflate=inflate, include_head=include_head, source=str(path))
    model.load_state_dict(state, strict=False)
    return sorted(state)
