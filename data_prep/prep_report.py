"""``prep_report.json`` and ``missing_<split>.csv``: what a preparation did, per split, so a rerun
knows what failed before and a user sees why a row has no clip.

``{"splits": {split: section}, "bad_rows": {annotation file: [...]}}``; a section (``split_section``,
one builder for a preparation and for a merge of shards) says where the split came from (annotation
file, videos folder, encode settings), its counts, and every ``failed``, ``partial`` and ``short``
entry with its reason. Rows with no downloaded video go to ``missing_<split>.csv`` (20k lines of
K400 do not belong in the report), their count in the report.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from data_prep.encode import EncodeSettings
from video_gn.files import atomic_write_csv, atomic_write_text

REPORT = "prep_report.json"
ENTRY_LISTS = ("failed", "partial", "short")  # a section's lists of rows, each with its reason
MISSING_COLUMNS = ("youtube_id", "time_start", "time_end", "split", "label")


def read_report(out: Path) -> dict:
    """``prep_report.json``: ``{"splits": {split: section}, "bad_rows": {annotation file: [...]}}``."""
    path = out / REPORT
    try:
        report = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        report = {}  # unreadable: rebuilt from this run (clips on disk are found again)
    if "splits" not in report:  # older single-file layout, or none
        report = {"splits": {}, "bad_rows": {}}
    return report


def write_report(folder: Path, report: dict) -> None:
    atomic_write_text(folder / REPORT, json.dumps(report, indent=1))


IDENTITY_KEYS = ("youtube_id", "time_start", "time_end", "video")  # a Kinetics row's, a file's


def entry_key(entry: dict) -> tuple:
    """The identity of the video an entry is about (the ``key`` of its Row or FolderVideo)."""
    return tuple(entry[k] for k in IDENTITY_KEYS if k in entry)


def remembered(report: dict, section: str, settings: EncodeSettings | None = None) -> dict[tuple, dict]:
    """Entries of every split's ``failed`` or ``partial``/``short`` list, keyed by the video's key
    (with ``settings``: only from runs with the same settings, which decide too_short, truncated and
    shorter_than_window)."""
    entries = [e for s in report["splits"].values() for e in s.get(section, [])
               if settings is None or s.get("settings") == vars(settings)]
    return {entry_key(f): f for f in entries}


def failure_entry(item, reason: str, detail: str) -> dict:
    """A report entry: the video's identity (a Row's or a FolderVideo's), split, label, why."""
    return {**item.identity(), "split": item.split, "label": item.label, "reason": reason, "detail": detail}


def by_key(entries: list[dict]) -> list[dict]:
    return sorted(entries, key=lambda e: (entry_key(e), e["reason"]))


def split_section(split: str, source: dict, rows: int, prepared: int, missing: int,
                  entries: dict[str, list[dict]], **extra) -> dict:
    """One split's section: ``source`` (annotations, videos, settings), counts, the entry lists."""
    counts = {"rows": rows, "prepared": prepared, "missing": missing,
              **{k: len(entries[k]) for k in ENTRY_LISTS},
              "by_reason": dict(sorted(Counter(f["reason"] for f in entries["failed"]).items()))}
    return {**source, "counts": counts, "missing_file": f"missing_{split}.csv", **extra, **entries}


def write_missing(folder: Path, split: str, entries: list[dict]) -> None:
    """Rows with no downloaded video: one file per split (20k lines of K400 do not belong in the
    report), the count in the report."""
    atomic_write_csv(folder / f"missing_{split}.csv", MISSING_COLUMNS, entries)


def read_missing(folder: Path, split: str) -> list[dict]:
    path = folder / f"missing_{split}.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
