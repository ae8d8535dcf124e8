"""Sharding: N machines (or a SLURM array) prepare one ``--out`` together (``--shard K/N``), each
its own rows, manifests and report under ``shards/K-of-N``; ``--merge`` then builds the dataset's.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from data_prep.output import OutputLock, PrepError
from data_prep.prep_report import (
    ENTRY_LISTS,
    REPORT,
    by_key,
    read_missing,
    read_report,
    split_section,
    write_missing,
    write_report,
)
from video_gn.data.manifest import read_classes, read_manifest, write_classes, write_manifest


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/3"`` -> (2, 3): the second of three shards."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise PrepError(f"--shard {text!r}: expected K/N, e.g. 2/3") from None
    if not 1 <= k <= n:
        raise PrepError(f"--shard {text!r}: K must be between 1 and N")
    return k, n


def in_shard(clip_name: str, shard: tuple[int, int]) -> bool:
    """Videos are split by a hash of their clip's name: stable under edits and reordering of the
    input (an annotation file, a folder)."""
    k, n = shard
    return zlib.crc32(clip_name.encode()) % n == k - 1


def shard_dir(out: Path, shard: tuple[int, int]) -> Path:
    """Where shard K of N keeps its manifests, report and lock (its clips go to ``<out>/<split>/``)."""
    return out / "shards" / f"{shard[0]}-of-{shard[1]}"


def merge_shards(out: Path) -> dict:
    """The dataset's manifests, ``classes.txt``, ``missing_<split>.csv`` and ``prep_report.json``
    from the N shards' (``--shard K/N`` runs into the same ``--out``). Refuses an incomplete set."""
    out = Path(out)
    found = sorted((out / "shards").glob("*-of-*"))
    totals = {int(d.name.split("-of-")[1]) for d in found}
    if len(totals) != 1:
        raise PrepError(f"{out / 'shards'}: expected the shards of one --shard K/N run, found "
                        f"{', '.join(d.name for d in found) or 'none'}")
    (n,) = totals
    have = {int(d.name.split("-of-")[0]) for d in found if (d / REPORT).is_file()}
    if have != set(range(1, n + 1)):
        unfinished = ", ".join(str(k) for k in sorted(set(range(1, n + 1)) - have))
        raise PrepError(f"shards {unfinished} of {n} have not finished (no {REPORT} in "
                        f"{out / 'shards'}/K-of-{n}); run them, then merge")
    dirs = [shard_dir(out, (k, n)) for k in range(1, n + 1)]
    class_lists = {tuple(read_classes(d)) if (d / "classes.txt").is_file() else () for d in dirs}
    if len(class_lists) != 1:
        raise PrepError(f"the shards of {out} disagree on the class list: were they run on the same "
                        "annotation file?")
    names = list(class_lists.pop())
    reports = [read_report(d) for d in dirs]
    with OutputLock(out):
        if names:
            if (out / "classes.txt").is_file() and read_classes(out) != names:
                raise PrepError(f"{out / 'classes.txt'} differs from the shards' class list")
            write_classes(out, names)
        merged = read_report(out)
        for split in sorted({s for r in reports for s in r["splits"]}):
            sections = [r["splits"][split] for r in reports if split in r["splits"]]
            records = [rec for d in dirs if (d / f"{split}.csv").is_file() for rec in read_manifest(d, split)]
            write_manifest(out, split, sorted(records, key=lambda r: r.path))
            missing = [m for d in dirs for m in read_missing(d, split)]
            missing.sort(key=lambda m: (m["youtube_id"], float(m["time_start"]), float(m["time_end"])))
            if any((d / f"missing_{split}.csv").is_file() for d in dirs):  # (none for a folder's videos)
                write_missing(out, split, missing)
            entries = {k: by_key([e for s in sections for e in s.get(k, [])]) for k in ENTRY_LISTS}
            total = {k: sum(s["counts"][k] for s in sections) for k in ("rows", "prepared", "missing")}
            derived = {"counts", "missing_file", "shards", *ENTRY_LISTS}  # rebuilt; the rest: the source
            source = {k: v for k, v in sections[0].items() if k not in derived}
            extra = {"missing_file": None} if sections[0].get("missing_file", "") is None else {}
            merged["splits"][split] = split_section(split, source, **total, entries=entries, shards=n,
                                                    **extra)
        for r in reports:  # the lists of inputs left out before planning (bad rows, skipped files)
            for key, by_source in r.items():
                if key != "splits":
                    merged.setdefault(key, {}).update(by_source)
        write_report(out, merged)
    return merged


