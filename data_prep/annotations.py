"""Kinetics annotation files (K400/600/700, CSV or JSON) -> rows keyed by (youtube id, start, end).

Variants handled (DESIGN.md §6): CSV header ``label,youtube_id,time_start,time_end,split[,is_cc]``
with quoted multi-word labels; split ``val`` or ``validate`` (read as ``val``); test CSVs without a
``label`` column; the JSON form ``{ytid: {"annotations": {"label", "segment": [s, e]}, "subset"}}``.
The same youtube id may appear in several rows with different windows: the key includes the window.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
SPLIT_ALIASES = {"validate": "val", "validation": "val"}
REQUIRED_COLUMNS = ("youtube_id", "time_start", "time_end")


class AnnotationError(ValueError):
    """A malformed annotation file: says which file, which line, and what was expected."""


@dataclass(frozen=True)
class Row:
    youtube_id: str
    time_start: float
    time_end: float
    split: str
    label: str | None  # None in test files without labels

    @property
    def clip_stem(self) -> str:
        """The Kinetics clip file name stem: ``<ytid>_<start:06d>_<end:06d>``."""
        return f"{self.youtube_id}_{int(self.time_start):06d}_{int(self.time_end):06d}"

    @property
    def key(self) -> tuple[str, float, float]:
        return (self.youtube_id, self.time_start, self.time_end)


def read_annotations(path: str | Path) -> list[Row]:
    """All rows of a CSV or JSON annotation file, in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    if path.suffix.lower() == ".json":
        return _read_json(path)
    return _read_csv(path)


def _split(value: str) -> str:
    value = value.strip().lower()
    return SPLIT_ALIASES.get(value, value)


def _check_id(ytid: str, where: str) -> str:
    if not YOUTUBE_ID.fullmatch(ytid):
        raise AnnotationError(f"{where}: youtube_id {ytid!r} is not 11 characters of [A-Za-z0-9_-]")
    return ytid


def _number(value: str, column: str, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: {column} {value!r} is not a number") from None


def _read_csv(path: Path) -> list[Row]:
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise AnnotationError(
                f"{path}:1: header {header} lacks {missing}; expected "
                "label,youtube_id,time_start,time_end,split[,is_cc] (label optional in test files)")
        for record in reader:
            where = f"{path}:{reader.line_num}"
            if None in record or any(record.get(c) is None for c in REQUIRED_COLUMNS):
                raise AnnotationError(f"{where}: expected {len(header)} fields as in the header {header}")
            start = _number(record["time_start"], "time_start", where)
            end = _number(record["time_end"], "time_end", where)
            if end <= start:
                raise AnnotationError(f"{where}: time_end {end} is not after time_start {start}")
            label = record.get("label")
            rows.append(Row(_check_id(record["youtube_id"], where), start, end,
                            _split(record.get("split") or "test"), label.strip() if label else None))
    return rows


def _read_json(path: Path) -> list[Row]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected an object keyed by youtube id")
    rows = []
    for ytid, entry in data.items():
        where = f"{path}: entry {ytid!r}"
        try:
            annotation = entry.get("annotations") or {}
            start, end = (float(v) for v in annotation["segment"])
        except (AttributeError, KeyError, TypeError, ValueError):
            raise AnnotationError(
                f"{where}: expected {{\"annotations\": {{\"label\": ..., \"segment\": [start, end]}}, "
                "\"subset\": ...}") from None
        rows.append(Row(_check_id(ytid, where), start, end, _split(entry.get("subset", "test")),
                        annotation.get("label")))
    return rows


def class_names(rows: list[Row]) -> list[str]:
    """Sorted class names (index = position, as in the official label maps)."""
    return sorted({r.label for r in rows if r.label is not None})
