"""Kinetics annotation files (K400/600/700, CSV or JSON) -> rows keyed by (youtube id, start, end).

Variants handled (docs/reference.md, "Kinetics annotation files"): CSV header
``label,youtube_id,time_start,time_end,split[,is_cc]`` with quoted multi-word labels; split ``val`` or
``validate`` (read as ``val``); test CSVs without a ``label`` column; the JSON form ``{ytid: {"annotations":
{"label", "segment": [s, e]}, "subset"}}``. The same youtube id may appear in several rows with different
windows: the key includes the window.

Files as tools really save them are read too: a UTF-8 byte-order mark (Excel), CRLF or CR line
endings, a UTF-16 file, ``;`` or tab as the separator, header names in another case or padded with
spaces, trailing empty fields. A row that cannot be used (a non-UTF-8 byte, too few fields, a time
that is not a finite number >= 0, an end not after its start, an unknown split, a train/val row
without a label, a label with control characters) is a :class:`BadRow` naming ``file:line`` and
the reason; a file that cannot be read at all is one :class:`AnnotationError`.

Every value that becomes part of a path is checked here: youtube ids are 11 characters of
``[A-Za-z0-9_-]`` and splits one of ``train``, ``val``, ``test``, so no row can name a file
outside the output folder (``..``, ``/``, absolute paths are bad rows).
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from video_gn.errors import ConfigError

YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"validate": "val", "validation": "val", "training": "train", "testing": "test"}
REQUIRED_COLUMNS = ("youtube_id", "time_start", "time_end")
KNOWN_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split", "is_cc")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class AnnotationError(ConfigError):
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

    @property
    def out_path(self) -> str:
        """Where its clip goes, relative to the prepared dataset folder."""
        return f"{self.split}/{self.clip_stem}.mp4"

    @property
    def expected_seconds(self) -> float:
        """The annotated segment's length: a clip shorter than this is listed as short."""
        return self.time_end - self.time_start

    def identity(self) -> dict:
        """The fields naming this row in the preparation report."""
        return {"youtube_id": self.youtube_id, "time_start": self.time_start, "time_end": self.time_end}


@dataclass(frozen=True)
class BadRow:
    """A row that was left out, and why (``prep_report.json`` lists them)."""

    file: str
    line: int | str  # the line number (CSV) or the entry's id (JSON)
    reason: str
    text: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"

    def as_dict(self) -> dict:
        return asdict(self)


def read_annotations(path: str | Path, bad_rows: list[BadRow] | None = None) -> list[Row]:
    """All usable rows of a CSV or JSON annotation file, in file order.

    With ``bad_rows`` (a list), rows that cannot be used are appended to it and reading goes on;
    without it the first one raises :class:`AnnotationError`. A file that cannot be read at all
    always raises :class:`AnnotationError` (one line, naming the file).
    """
    path = Path(path)
    if not path.exists():
        raise AnnotationError(f"annotation file not found: {path}")
    if not path.is_file():
        raise AnnotationError(f"annotation file {path} is not a file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise AnnotationError(f"annotation file {path} cannot be read: {e.strerror}") from None
    collected: list[BadRow] = []
    rows = (_read_json if path.suffix.lower() == ".json" else _read_csv)(path, data, collected)
    if bad_rows is None and collected:
        raise AnnotationError(str(collected[0]))
    if bad_rows is not None:
        bad_rows.extend(collected)
    return rows


def _row(ytid: str, start, end, split: str | None, label: str | None) -> Row:
    """The row, or ``ValueError`` with the reason it cannot be used."""
    if not YOUTUBE_ID.fullmatch(ytid):
        raise ValueError(f"youtube_id {ytid!r} is not 11 characters of [A-Za-z0-9_-]")
    times = []
    for column, value in (("time_start", start), ("time_end", end)):
        try:
            t = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{column} {value!r} is not a number") from None
        if not math.isfinite(t) or t < 0:
            raise ValueError(f"{column} {value!r} is not a finite number of seconds >= 0")
        times.append(t)
    if times[1] <= times[0]:
        raise ValueError(f"time_end {times[1]:g} is not after time_start {times[0]:g}")
    if split is None or not split.strip():
        raise ValueError("split is empty (expected one of train, val, test)")
    name = SPLIT_ALIASES.get(split.strip().lower(), split.strip().lower())
    if name not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)} "
                         f"({', '.join(SPLIT_ALIASES)} are read as their short form)")
    label = label.strip() if isinstance(label, str) else label
    if label is not None and not isinstance(label, str):
        raise ValueError(f"label {label!r} is not text")
    if label and CONTROL.search(label):
        raise ValueError(f"label {label!r} contains control characters")
    if not label:
        if name != "test":
            raise ValueError(f"a {name} row needs a label (only test rows may be unlabelled)")
        label = None
    return Row(ytid, times[0], times[1], name, label)


def _decode_lines(path: Path, data: bytes) -> list[tuple[int, str | None, str]]:
    """``(line number, text or None if not UTF-8, reason)`` for every line, line endings removed."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with BOM ("Unicode text" in Excel)
        try:
            return [(i, line, "") for i, line in enumerate(data.decode("utf-16").splitlines(), 1)]
        except UnicodeDecodeError as e:
            raise AnnotationError(f"{path}: starts as UTF-16 but is not valid UTF-16 ({e.reason})") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\x00" in data[:4096]:
        raise AnnotationError(f"{path}: contains NUL bytes: not a text annotation file")
    lines = []
    for i, raw in enumerate(data.splitlines(), 1):
        try:
            lines.append((i, raw.decode("utf-8"), ""))
        except UnicodeDecodeError as e:
            lines.append((i, None, f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                                   "save the file as UTF-8"))
    return lines


def _read_csv(path: Path, data: bytes, bad: list[BadRow]) -> list[Row]:
    lines = _decode_lines(path, data)
    content = [(i, text, why) for i, text, why in lines if text is None or text.strip()]
    if not content:
        raise AnnotationError(f"{path}: empty file; expected the header "
                              "label,youtube_id,time_start,time_end,split[,is_cc]")
    header_line, header_text, why = content[0]
    if header_text is None:
        raise AnnotationError(f"{path}:{header_line}: header is {why}")
    delimiter = max(",\t;", key=header_text.count)
    header = [h.strip().lower() for h in next(csv.reader([header_text], delimiter=delimiter))]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise AnnotationError(
            f"{path}:{header_line}: header {header} lacks {missing}; expected "
            "label,youtube_id,time_start,time_end,split[,is_cc] (label optional in test files)")
    rows = []
    for i, text, why in content[1:]:
        if text is None:
            bad.append(BadRow(str(path), i, why))
            continue
        fields = next(csv.reader([text], delimiter=delimiter))
        if not any(f.strip() for f in fields):
            continue  # a line of empty fields (a spreadsheet's blank row)
        while len(fields) > len(header) and not fields[-1].strip():
            fields.pop()  # trailing separators some editors add
        if len(fields) != len(header):
            bad.append(BadRow(str(path), i, f"expected {len(header)} fields as in the header "
                                            f"({','.join(header)}), found {len(fields)}", text))
            continue
        record = dict(zip(header, fields, strict=True))
        try:
            rows.append(_row(record["youtube_id"].strip(), record["time_start"], record["time_end"],
                             record.get("split", "test"), record.get("label")))
        except ValueError as e:
            bad.append(BadRow(str(path), i, str(e), text))
    return rows


def _read_json(path: Path, data: bytes, bad: list[BadRow]) -> list[Row]:
    try:
        entries = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
                              f"{e.start})") from None
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(entries, dict):
        raise AnnotationError(f"{path}: expected an object keyed by youtube id")
    rows = []
    for ytid, entry in entries.items():
        try:
            annotation = entry.get("annotations") or {}
            start, end = annotation["segment"]
        except (AttributeError, KeyError, TypeError, ValueError):
            bad.append(BadRow(str(path), f"entry {ytid!r}", 'expected {"annotations": {"label": ..., '
                                                            '"segment": [start, end]}, "subset": ...}'))
            continue
        try:
            rows.append(_row(ytid, start, end, entry.get("subset", "test"), annotation.get("label")))
        except ValueError as e:
            bad.append(BadRow(str(path), f"entry {ytid!r}", str(e)))
    return rows


def class_names(rows: list[Row]) -> list[str]:
    """Sorted class names (index = position, as in the official label maps)."""
    return sorted({r.label for r in rows if r.label is not None})
