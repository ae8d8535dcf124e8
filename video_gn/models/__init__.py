"""Networks: ``build_network(model_cfg, norm_cfg, num_classes)`` turns config mappings into a model."""

from __future__ import annotations

from collections.abc import Mapping

from .inflate import inflate_from_2d
from .norm import NormSpec, is_norm
from .resnet3d import ResNet3d, build_model

# conf/model keys that are not architecture settings: how to load and run the network.
RUNTIME_KEYS = ("pretrained_2d", "channels_last_3d", "compile")


def build_network(model_cfg: Mapping, norm_cfg: Mapping, num_classes: int) -> ResNet3d:
    """``conf/model/*`` + ``conf/norm/*`` -> network, inflated from a 2D checkpoint if one is given."""
    arch_kwargs = {k: v for k, v in model_cfg.items() if k not in RUNTIME_KEYS}
    if "blocks_per_stage" in arch_kwargs:  # a ListConfig from YAML
        arch_kwargs["blocks_per_stage"] = tuple(arch_kwargs["blocks_per_stage"])
    model = build_model(norm=NormSpec.from_config(norm_cfg), num_classes=num_classes, **arch_kwargs)
    if model_cfg.get("pretrained_2d"):
        inflate_from_2d(model, model_cfg["pretrained_2d"])
    return model


__all__ = ["NormSpec", "ResNet3d", "build_model", "build_network", "inflate_from_2d", "is_norm"]
