"""Atomic file writes: a crash never leaves a half-written manifest, report or results file."""

from __future__ import annotations

import os
from pathlib import Path


def temporary_path(path: str | Path) -> Path:
    """Where ``path`` is written before the rename: hidden, beside it, per process, same suffix
    (``data_prep.kinetics`` removes leftovers of a killed run by this pattern, ``.*.tmp*``)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Writes ``text`` to a temporary name beside ``path``, then renames it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
