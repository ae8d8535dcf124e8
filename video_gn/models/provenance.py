"""Where a network's starting weights come from, checked and recorded (``results.json`` "init").

``model.init: scratch`` trains from random weights; ``model.pretrained_2d`` / ``model.pretrained_3d``
name a file. An experiment that must not default silently (the Kinetics cells: the paper starts from
ImageNet) leaves ``model.init`` null, and then one of the two has to be given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError, MissingFileError


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def init_record(model_cfg: Mapping) -> dict:
    """``{"kind": "scratch"}`` or ``{"kind": "pretrained_2d"|"pretrained_3d", "file", "sha256"}``.

    Raises ``ConfigError`` naming the keys to set when the config leaves the init undecided, and
    ``MissingFileError`` naming the key when its file is missing.
    """
    given = [k for k in ("pretrained_2d", "pretrained_3d") if model_cfg.get(k)]
    if len(given) > 1:
        raise ConfigError("model.pretrained_2d and model.pretrained_3d are both set: give one")
    if given:
        key = given[0]
        path = Path(str(model_cfg[key])).expanduser()
        if not path.is_file():
            raise MissingFileError(f"model.{key}={model_cfg[key]}: no such file")
        return {"kind": key, "file": path.name, "sha256": sha256_of(path)}
    if model_cfg.get("init") == "scratch":
        return {"kind": "scratch"}
    if model_cfg.get("init") is None:
        raise ConfigError(
            "model.init is not set: give model.pretrained_2d=PATH (ImageNet weights inflated, as the "
            "paper did; torchvision .pth or Detectron .pkl), model.pretrained_3d=PATH (a released "
            "I3D model), or model.init=scratch to train from random weights")
    raise ConfigError(f"model.init={model_cfg.get('init')!r}: the only value is 'scratch' "
                     "(pretrained weights are given as model.pretrained_2d / model.pretrained_3d)")


def with_what_loaded(init: dict, net) -> dict:
    """The init record plus what the file gave the network (``build_network``'s ``init_loaded``:
    tensors loaded, those left as initialised, the classifier loaded or new)."""
    loaded = getattr(net, "init_loaded", None)
    return {**init, "loaded": loaded} if loaded is not None else init
