"""The class count of a prepared dataset comes from its ``classes.txt``: ``data.num_classes: null``
(``data=folder``) takes it from there, and a count given on the command line that disagrees with the
file is an error naming both — not a classifier with the wrong number of outputs."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from ..errors import ConfigError


def settle_num_classes(cfg: DictConfig) -> None:
    """Sets ``data.num_classes`` from ``<data.root>/classes.txt`` when it is null; checks it against
    the file when both are there. A dataset not prepared yet (generated on first use) is left alone."""
    d = cfg.data
    root = None if OmegaConf.is_missing(d, "root") else d.get("root")
    listed = Path(str(root)).expanduser() / "classes.txt" if root else None
    count = len(listed.read_text(encoding="utf-8").splitlines()) if listed and listed.is_file() else None
    if d.get("num_classes") is None:
        if count is None:
            raise ConfigError(f"data.num_classes is not set and {listed or 'data.root'} "
                              f"{'does not exist' if listed else 'is not set'}: prepare the dataset first "
                              "(python -m data_prep.folder --videos DIR --out DIR) and give data.root=DIR, "
                              "or set data.num_classes")
        with open_dict(cfg):
            d.num_classes = count
    elif count is not None and d.num_classes != count:
        fix = (f"the dataset there was generated with {count}; delete {listed.parent} to generate it again, "
               "or give another data.root" if d.get("generate") else
               "leave data.num_classes out (data=folder reads it from the file) or fix data.root")
        raise ConfigError(f"data.num_classes={d.num_classes}, but {listed} lists {count} classes: {fix}")

