"""Networks: ``build_network(model_cfg, norm_cfg, num_classes)`` turns config mappings into a model."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

import torch

from ..errors import ConfigError, WeightsFileError
from .caffe2_import import load_caffe2
from .inflate import inflate_from_2d
from .norm import NormSpec, default_groups, is_norm
from .ours import load_ours
from .resnet3d import ResNet3d, build_model
from .weights_file import identify
from .zoo_import import load_zoo

log = logging.getLogger(__name__)

# conf/model keys that are not architecture settings: how to initialise, load and run the network
# (and gn_groups, which configs and checkpoints written before norm.num_groups: null still carry).
RUNTIME_KEYS = ("init", "pretrained_2d", "pretrained_3d", "channels_last_3d", "compile", "gn_groups")


def architecture_of(model_cfg: Mapping) -> dict:
    """The ``build_model`` settings of a ``conf/model`` mapping."""
    arch_kwargs = {k: v for k, v in model_cfg.items() if k not in RUNTIME_KEYS}
    if "blocks_per_stage" in arch_kwargs:  # a ListConfig from YAML
        arch_kwargs["blocks_per_stage"] = tuple(arch_kwargs["blocks_per_stage"])
    return arch_kwargs


def model_gn_groups(model_cfg: Mapping, num_classes: int) -> int:
    """GN's G for ``norm.num_groups: null``: ``norm.default_groups`` of the model's narrowest norm
    layer (found on a weightless copy of the network)."""
    with torch.device("meta"):
        probe = build_model(norm=NormSpec("bn"), num_classes=num_classes, **architecture_of(model_cfg))
    return default_groups(min(m.num_features for m in probe.modules() if isinstance(m, torch.nn.BatchNorm3d)))


def build_network(model_cfg: Mapping, norm_cfg: Mapping, num_classes: int) -> ResNet3d:
    """``conf/model/*`` + ``conf/norm/*`` -> network, with its starting weights if a file is given:
    ``pretrained_2d`` (a 2-D ImageNet ResNet, torchvision layout or Caffe2 pickle, inflated; the head
    stays random) or ``pretrained_3d`` (a whole 3-D network: a checkpoint of ours, the Non-local
    release's Caffe2 pickle, or a pytorchvideo / PySlowFast ``.pyth`` into ``model={i3d,slow,c2d}_r50_8x8``).
    A 3-D network trained for another class count fine-tunes: its classifier is replaced (logged with
    both counts), everything else loads. ``model.init_loaded`` says what was loaded (results.json's
    init record).
    """
    spec = NormSpec.from_config(norm_cfg)
    if spec.kind == "gn" and spec.num_groups is None and spec.group_size is None:
        spec = dataclasses.replace(spec, num_groups=model_gn_groups(model_cfg, num_classes))
    model = build_model(norm=spec, num_classes=num_classes, **architecture_of(model_cfg))
    for key in ("pretrained_2d", "pretrained_3d"):
        if model_cfg.get(key):
            target = list(model.state_dict())
            try:
                loaded = _load(model, key, model_cfg[key], model_cfg.get("arch"), norm_cfg.get("kind", "bn"))
            except WeightsFileError as e:  # a file that does not fit the network: name the key too
                raise ConfigError(f"model.{key}={model_cfg[key]}: {e}") from None
            model.init_loaded = load_record(model, target, loaded)
    return model


def load_record(model: ResNet3d, target: list[str], loaded: list[str]) -> dict:
    """What a weights file gave the network: how many of its tensors, which stayed as initialised
    (a replaced classifier, fresh norms), and the classifier's fate."""
    loaded = set(loaded)
    left = [k for k in target if k not in loaded]
    head = "loaded" if "head.fc.weight" in loaded else \
        f"new ({model.head.fc.out_features} classes; the file's does not fit or is not used)"
    return {"tensors_loaded": len(target) - len(left), "tensors_total": len(target),
            "not_loaded": left, "classifier": head}


def _load(model: ResNet3d, key: str, path, arch: str, norm_kind: str) -> list[str]:
    """Loads the file into ``model`` in place; returns the names of the tensors it filled."""
    weights = identify(path)
    if key == "pretrained_2d":
        if weights.kind == "caffe2":
            return load_caffe2(model, path, inflate=True, include_head=False, blobs=weights.content)
        return inflate_from_2d(model, path)
    if weights.kind == "zoo":  # pytorchvideo's or PySlowFast's .pyth
        return load_zoo(model, path, arch, weights.content, norm_kind)
    if weights.kind == "ours":  # a checkpoint of ours (.ckpt)
        return load_ours(model, path, weights.content)
    if weights.kind != "caffe2":
        raise WeightsFileError(f"{path} is none of the 3-D networks this takes: a checkpoint of ours "
                               "(.ckpt), a pytorchvideo / PySlowFast .pyth, or the Non-local release's "
                               "Caffe2 .pkl")
    blobs = weights.content  # the Non-local release's Caffe2 pickle
    classes = blobs["pred_w"].shape[0] if "pred_w" in blobs else None
    head = classes == model.head.fc.out_features
    if classes is not None and not head:
        log.warning("%s: its classifier (%d classes) is replaced by a new one for this network's %d "
                    "classes", path, classes, model.head.fc.out_features)
    return load_caffe2(model, path, inflate=False, include_head=head, blobs=blobs)


__all__ = ["NormSpec", "ResNet3d", "build_model", "build_network", "inflate_from_2d", "is_norm"]
