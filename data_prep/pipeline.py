"""A preparation's plan and its execution, shared by every source of videos (Kinetics annotation
files, a folder of class folders, UCF101, HMDB51).

A source gives *items*: a Kinetics ``Row`` or a ``FolderVideo``, each with ``key``, ``split``,
``label``, ``clip_stem``, ``out_path`` (its clip, relative to ``--out``), ``expected_seconds`` and
``identity()`` (the report's fields naming it), and a ``locate(item)`` giving its source file (and
trim window) or None. ``plan`` decides what is done, what to encode and what fails without trying;
``execute`` encodes through the workers and writes the manifests, ``classes.txt`` and the report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.encode import EncodeSettings
from data_prep.prep_report import (
    ENTRY_LISTS,
    by_key,
    failure_entry,
    read_report,
    remembered,
    split_section,
    write_missing,
    write_report,
)
from data_prep.sources import source_signature, usable_prepared_clip
from data_prep.workers import run_workers
from video_gn.data.manifest import ClipRecord, write_classes, write_manifest

# Failures that say nothing about the source file: never remembered, so the next run tries again.
RETRY_REASONS = {"unreadable_source"}


@dataclass
class Plan:
    """What a run will do (``plan``), handed to ``execute``."""

    source: dict  # where the items came from, recorded in each split's report section
    items: list  # this run's items (this shard's, with --shard)
    names: list[str]  # the class list every manifest of --out shares
    report: dict  # prep_report.json as earlier runs left it
    jobs: list[tuple]  # (item, clip path relative to --out, source file, trim window or None)
    done: dict  # item key -> (item, clip path, ClipInfo) of clips already prepared
    failed: list[dict]  # entries of items that fail without trying (missing, duplicate, failed before)
    redone: list[str]  # clips found damaged, prepared again
    counts: dict
    # the report's top-level lists of inputs left out before planning, by source
    # (Kinetics: {"bad_rows": {file: [...]}}; a folder: {"skipped_files": {folder: [...]}})
    left_out: dict = field(default_factory=dict)
    missing_file: bool = True  # items can be missing (no downloaded video): missing_<split>.csv
    splits: tuple[str, ...] = ()  # splits whose manifest is written even when no item is in it


def plan(items: list, locate: Callable, out: Path, state: Path, names: list[str], source: dict,
         settings: EncodeSettings, retry_failed: bool, verify: bool = False,
         duplicate_reason: str = "listed twice") -> Plan:
    """What the run will do: items already done, items to encode, items that fail without trying."""
    report = read_report(state)
    earlier_failed = {} if retry_failed else remembered(report, "failed", settings)
    seen, jobs, done, failed, redone = set(), [], {}, [], []
    for item in items:
        if item.key in seen:
            failed.append(failure_entry(item, "duplicate_row", duplicate_reason))
            continue
        seen.add(item.key)
        rel = item.out_path
        if (out / rel).is_file():
            info = usable_prepared_clip(out / rel, verify)
            if info is not None:
                done[item.key] = (item, rel, info)
                continue
            redone.append(rel)
        found = locate(item)
        if found is None:
            failed.append(failure_entry(item, "missing", "no downloaded video with this id"))
        elif earlier_failed.get(item.key, {}).get("source") == source_signature(found[0]):
            failed.append(earlier_failed[item.key])  # failed before, from this very file
        else:
            jobs.append((item, rel, *found))
    counts = {"already_prepared": len(done), "damaged_redone": len(redone), "to_prepare": len(jobs),
              "missing": sum(f["reason"] == "missing" for f in failed),
              "failed_before": sum("source" in f for f in failed)}
    return Plan(source, items, names, report, jobs, done, failed, redone, counts)


def execute(todo: Plan, out: Path, state: Path, settings: EncodeSettings, workers: int, progress: bool,
            own_stems: bool) -> dict:
    """Encodes the plan's jobs, then writes the manifests, ``classes.txt`` and the report; returns
    this run's report (counts and every failed, partial, short and missing entry)."""
    items, jobs, done, failed, report = todo.items, todo.jobs, todo.done, todo.failed, todo.report
    earlier_partial, earlier_short = remembered(report, "partial"), remembered(report, "short")
    partial = [earlier_partial[k] for k in done if k in earlier_partial]
    short = [earlier_short[k] for k in done if k in earlier_short]
    for rel in {rel for _, rel, *_ in jobs}:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
    tasks = [(i, str(src), str(out / rel), window, item.expected_seconds, settings)
             for i, (item, rel, src, window) in enumerate(jobs)]
    stems = {item.clip_stem for item, *_ in jobs} if own_stems else None
    for index, status, result in run_workers(tasks, out, workers, progress, stems):
        item, rel, src, _ = jobs[index]
        if status == "ok":
            done[item.key] = (item, rel, result)
            if result.bad_packets:
                partial.append({**failure_entry(item, "partial", f"{result.bad_packets} undecodable "
                                                f"packets skipped"), "kept_frames": result.num_frames})
            if result.short:
                short.append({**failure_entry(item, "short", result.short), "kept_frames": result.num_frames})
        else:
            entry = failure_entry(item, status, result)
            failed.append(entry if status in RETRY_REASONS else {**entry, "source": source_signature(src)})

    names = todo.names
    label_index = {n: i for i, n in enumerate(names)}
    splits = sorted({item.split for item in items} | set(todo.splits))
    for split in splits:
        records = sorted((ClipRecord(rel, label_index.get(item.label, -1), item.label or "", info.num_frames,
                                     info.fps)
                          for item, rel, info in done.values() if item.split == split), key=lambda r: r.path)
        write_manifest(state, split, records)
    if names:
        write_classes(state, names)
    missing = by_key([f for f in failed if f["reason"] == "missing"])
    failed = by_key([f for f in failed if f["reason"] != "missing"])
    run = {"counts": dict(todo.counts), "failed": failed, "partial": by_key(partial),
           "short": by_key(short), "missing": missing}
    for split in splits:
        split_missing = [e for e in missing if e["split"] == split]
        if todo.missing_file:
            write_missing(state, split, split_missing)
        report["splits"][split] = split_section(
            split, todo.source, rows=sum(item.split == split for item in items),
            prepared=sum(item.split == split for item, *_ in done.values()), missing=len(split_missing),
            entries={k: [e for e in run[k] if e["split"] == split] for k in ENTRY_LISTS},
            **({} if todo.missing_file else {"missing_file": None}))
    for section, by_source in todo.left_out.items():
        report.setdefault(section, {}).update(by_source)
        run[section] = [entry for entries in by_source.values() for entry in entries]
    write_report(state, report)
    run["counts"].update(prepared=len(done), failed=len(failed), partial=len(partial), short=len(short),
                         by_reason=dict(Counter(f["reason"] for f in failed)))
    return run
