"""Networks: ``build_network(model_cfg, norm_cfg, num_classes)`` turns config mappings into a model."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ConfigError
from .caffe2_import import caffe2_blobs_or_none, load_caffe2
from .inflate import inflate_from_2d
from .norm import NormSpec, is_norm
from .resnet3d import ResNet3d, build_model
from .zoo_import import load_zoo, zoo_state_or_none

# conf/model keys that are not architecture settings: how to initialise, load and run the network,
# and the GN group count that fits its widths (read by conf/norm/gn.yaml).
RUNTIME_KEYS = ("init", "pretrained_2d", "pretrained_3d", "channels_last_3d", "compile", "gn_groups")


def build_network(model_cfg: Mapping, norm_cfg: Mapping, num_classes: int) -> ResNet3d:
    """``conf/model/*`` + ``conf/norm/*`` -> network, with its starting weights if a file is given:
    ``pretrained_2d`` (a 2-D ImageNet ResNet, torchvision layout or Caffe2 pickle, inflated; the head
    stays random) or ``pretrained_3d`` (a whole 3-D network: the Non-local release's Caffe2 pickle,
    or a pytorchvideo / PySlowFast ``.pyth`` into ``model={i3d,slow,c2d}_r50_8x8``).
    """
    arch_kwargs = {k: v for k, v in model_cfg.items() if k not in RUNTIME_KEYS}
    if "blocks_per_stage" in arch_kwargs:  # a ListConfig from YAML
        arch_kwargs["blocks_per_stage"] = tuple(arch_kwargs["blocks_per_stage"])
    model = build_model(norm=NormSpec.from_config(norm_cfg), num_classes=num_classes, **arch_kwargs)
    for key in ("pretrained_2d", "pretrained_3d"):
        if model_cfg.get(key):
            try:
                _load(model, key, model_cfg[key], model_cfg.get("arch"), norm_cfg.get("kind", "bn"))
            except ValueError as e:  # a file that does not fit the network: one line naming the key
                raise ConfigError(f"model.{key}={model_cfg[key]}: {e}") from None
    return model


def _load(model: ResNet3d, key: str, path, arch: str, norm_kind: str) -> None:
    if key == "pretrained_2d":
        blobs = caffe2_blobs_or_none(path)
        if blobs is not None:
            load_caffe2(model, path, inflate=True, include_head=False, blobs=blobs)
        else:
            inflate_from_2d(model, path)
        return
    state = zoo_state_or_none(path)
    if state is not None:  # pytorchvideo's or PySlowFast's .pyth
        load_zoo(model, path, arch, state, norm_kind)
    else:
        load_caffe2(model, path, inflate=False, include_head=True)


__all__ = ["NormSpec", "ResNet3d", "build_model", "build_network", "inflate_from_2d", "is_norm"]
