"""The manifest: the one contract between ``data_prep`` (writes it) and ``video_gn.data`` (reads it).

A prepared dataset folder holds:

- ``classes.txt``: class names, one per line, sorted; the label index is the line number (0-based),
  which for Kinetics-400 matches the official label map.
- ``<split>.csv`` per split (``train``, ``val``, ``test``), with the header
  ``path,label,label_name,num_frames,fps``: ``path`` relative to the dataset folder, ``label`` the
  class index (-1 when unlabelled), ``num_frames`` the exact decoded frame count, ``fps`` the clip's
  constant frame rate.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_write_csv, atomic_write_text

COLUMNS = ("path", "label", "label_name", "num_frames", "fps")


@dataclass(frozen=True)
class ClipRecord:
    path: str
    label: int
    label_name: str
    num_frames: int
    fps: float


def manifest_path(root: str | Path, split: str) -> Path:
    return Path(root) / f"{split}.csv"


def write_manifest(root: str | Path, split: str, records: list[ClipRecord]) -> Path:
    """Writes ``<root>/<split>.csv`` atomically (temporary file, then rename)."""
    return atomic_write_csv(manifest_path(root, split), COLUMNS,
                            ([r.path, r.label, r.label_name, r.num_frames, f"{r.fps:.6g}"] for r in records))


def read_manifest(root: str | Path, split: str) -> list[ClipRecord]:
    path = manifest_path(root, split)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path} (prepare the dataset first; see README)")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: header lacks {missing}; expected {','.join(COLUMNS)}")
        records = []
        for row in reader:
            try:
                records.append(ClipRecord(row["path"], int(row["label"]), row["label_name"],
                                          int(row["num_frames"]), float(row["fps"])))
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{reader.line_num}: bad row {row}") from None
    return records


def write_classes(root: str | Path, names: list[str]) -> Path:
    return atomic_write_text(Path(root) / "classes.txt", "".join(n + "\n" for n in names))


def read_classes(root: str | Path) -> list[str]:
    path = Path(root) / "classes.txt"
    if not path.is_file():
        raise FileNotFoundError(f"class list not found: {path}")
    return path.read_text(encoding="utf-8").splitlines()
