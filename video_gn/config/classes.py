"""The class count of a prepared dataset comes from its ``classes.txt``: ``data.num_classes: null``
(``data=folder``) takes it from there. A count given that disagrees with the file is an error naming
both (``VideoDataModule.setup``, where the file is read) — not a classifier with the wrong outputs."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from ..errors import ConfigError


def settle_num_classes(cfg: DictConfig) -> None:
    """Sets ``data.num_classes`` from ``<data.root>/classes.txt`` when it is null (before the value
    checks, which need a count). A dataset not prepared yet (generated on first use) is left alone."""
    if cfg.data.get("num_classes") is not None:
        return
    listed, count = _listed(cfg.data)
    if count is None:
        raise ConfigError(f"data.num_classes is not set and {listed or 'data.root'} "
                          f"{'does not exist' if listed else 'is not set'}: prepare the dataset first "
                          "(python -m data_prep.folder --videos DIR --out DIR) and give data.root=DIR, "
                          "or set data.num_classes")
    with open_dict(cfg):
        cfg.data.num_classes = count


def _listed(d: DictConfig) -> tuple[Path | None, int | None]:
    """(``<data.root>/classes.txt``, its line count), None where there is no root or no file."""
    root = None if OmegaConf.is_missing(d, "root") else d.get("root")
    listed = Path(str(root)).expanduser() / "classes.txt" if root else None
    count = len(listed.read_text(encoding="utf-8").splitlines()) if listed and listed.is_file() else None
    return listed, count
