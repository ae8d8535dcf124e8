"""Prepare Kinetics: annotation file + downloaded videos -> re-encoded clips, manifests, report.

    python -m data_prep.kinetics --annotations kinetics-400_val.csv --videos ~/k400/raw \\
        --out ~/k400/prepared [--workers 8] [--short-side 256] [--dry-run]

Videos are found by name anywhere under ``--videos``: Kinetics clips ``<ytid>_<start:06d>_<end:06d>.<ext>``
(CVDF flat or per-class folders), or full-length ``<ytid>.<ext>`` sources, which are trimmed to the
row's window. Output: ``<out>/<split>/<ytid>_<start>_<end>.mp4``, ``<out>/<split>.csv`` manifests,
``<out>/classes.txt`` (one list serving every split) and ``<out>/prep_report.json`` (one section per
split: every row without a usable clip, with its reason, and the annotation file's bad rows).

Faults (README, "What happens when..."): a clip is written under a temporary name and renamed when
complete; one preparation at a time holds ``<out>/.prep.lock``; Ctrl-C, SIGTERM or the parent's
death stop the workers, which delete their half-written clips; a full disk or a permission error
stops the run without marking any video bad, so a plain rerun finishes the job.

Here: finding the downloaded videos, planning (what is done, what to encode, what fails without
trying) and executing the plan. The workers (``workers``), the output folder and its lock
(``output``), the report (``prep_report``) and sharding (``shards``) have their own modules.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from data_prep.annotations import BadRow, Row, class_names, read_annotations
from data_prep.encode import EncodeSettings
from data_prep.output import (
    OutputLock,
    PrepError,
    check_output_folder,
    check_videos_folder,
    remove_stale_temporaries,
)
from data_prep.prep_report import (
    ENTRY_LISTS,
    REPORT,
    by_key,
    failure_entry,
    read_report,
    remembered,
    split_section,
    write_missing,
    write_report,
)
from data_prep.shards import in_shard, merge_shards, parse_shard, shard_dir
from data_prep.sources import find_source, index_videos, source_signature, usable_prepared_clip
from data_prep.workers import Interrupted, run_workers
from video_gn.data.manifest import ClipRecord, read_classes, write_classes, write_manifest
from video_gn.errors import one_line_errors

# Failures that say nothing about the source file: never remembered, so the next run tries again.
RETRY_REASONS = {"unreadable_source"}


def class_list(out: Path, rows: list[Row], annotations: Path) -> list[str]:
    """The one ``classes.txt`` every manifest of ``out`` shares: the existing one if this file's
    labels are all in it (val after train; a test list without labels), else a clear error."""
    names = class_names(rows)
    if not (out / "classes.txt").is_file():
        return names
    existing = read_classes(out)
    new = sorted(set(names) - set(existing))
    if new:
        raise PrepError(
            f"{out / 'classes.txt'} lists {len(existing)} classes, and {annotations} has {len(new)} "
            f"others ({', '.join(map(repr, new[:5]))}{', ...' if len(new) > 5 else ''}): the label "
            "indices of the manifests already there would change. Use another --out for a different "
            "class set.")
    return existing


@dataclass
class Plan:
    """What a run will do (``plan``), handed to ``execute``."""

    annotations: Path
    videos: Path
    rows: list[Row]  # this run's rows (this shard's, with --shard)
    bad_rows: list[BadRow]
    names: list[str]  # the class list every manifest of --out shares
    report: dict  # prep_report.json as earlier runs left it
    jobs: list[tuple]  # (row, clip path relative to --out, source file, trim window or None)
    done: dict  # row key -> (row, clip path, ClipInfo) of clips already prepared
    failed: list[dict]  # entries of rows that fail without trying (missing, duplicate, failed before)
    redone: list[str]  # clips found damaged, prepared again
    counts: dict


def prepare(annotations: Path, videos: Path, out: Path, settings: EncodeSettings, workers: int = 1,
            dry_run: bool = False, progress: bool = True, retry_failed: bool = False,
            replace_split: bool = False, shard: tuple[int, int] | None = None, verify: bool = False) -> dict:
    """Runs the whole preparation; returns this run's report (``prep_report.json`` keeps one section
    per split, so preparing val after train keeps train's).

    A row that failed in an earlier run is not tried again while its source file is unchanged
    (``retry_failed`` tries anyway), so a rerun of a finished preparation does no work. With
    ``shard=(K, N)`` only that shard's rows are prepared, its manifests and report kept under
    ``shard_dir``; :func:`merge_shards` then builds the dataset's. Raises :class:`PrepError` for
    unusable input or output, and ``OSError`` when a write fails.
    """
    annotations, out = Path(annotations), Path(out)
    check_videos_folder(videos)
    bad_rows: list[BadRow] = []
    rows = read_annotations(annotations, bad_rows)
    if not rows:
        raise PrepError(f"{annotations}: no usable rows" + (f" ({len(bad_rows)} bad, first: {bad_rows[0]})"
                                                             if bad_rows else ""))
    names = class_list(out, rows, annotations)  # from every row: each shard's classes.txt is the same
    if shard:
        rows = [r for r in rows if in_shard(r, shard)]
    state = shard_dir(out, shard) if shard else out
    if dry_run:
        counts = plan(annotations, videos, out, state, rows, names, bad_rows, settings, retry_failed,
                      replace_split, verify).counts
        return {"dry_run": True, "counts": counts, "classes": len(names), "bad_rows": bad_rows}
    check_output_folder(out)
    state.mkdir(parents=True, exist_ok=True)
    with OutputLock(state):
        remove_stale_temporaries(out, {r.clip_stem for r in rows} if shard else None)
        todo = plan(annotations, videos, out, state, rows, names, bad_rows, settings, retry_failed,
                    replace_split, verify)
        return execute(todo, out, state, settings, workers, progress, own_stems=shard is not None)


def plan(annotations: Path, videos: Path, out: Path, state: Path, rows: list[Row], names: list[str],
         bad_rows: list[BadRow], settings: EncodeSettings, retry_failed: bool, replace_split: bool,
         verify: bool = False) -> Plan:
    """What the run will do: rows already done, rows to encode, rows that fail without trying."""
    report = read_report(state)
    for split in sorted({r.split for r in rows}):
        earlier = report["splits"].get(split, {}).get("annotations")
        if earlier and Path(earlier).resolve() != annotations.resolve() and not replace_split:
            raise PrepError(f"split '{split}' in {out} was prepared from {earlier}; {annotations} also "
                            f"has {split} rows and would replace its manifest. Use another --out, or "
                            "--replace-split to replace it.")
    clips, full = index_videos(videos)
    earlier_failed = {} if retry_failed else remembered(report, "failed", settings)
    seen, jobs, done, failed, redone = set(), [], {}, [], []
    for row in rows:
        if row.key in seen:
            failed.append(failure_entry(row, "duplicate_row", "same youtube id and window listed twice"))
            continue
        seen.add(row.key)
        rel = f"{row.split}/{row.clip_stem}.mp4"
        if (out / rel).is_file():
            info = usable_prepared_clip(out / rel, verify)
            if info is not None:
                done[row.key] = (row, rel, info)
                continue
            redone.append(rel)
        source = find_source(row, clips, full)
        if source is None:
            failed.append(failure_entry(row, "missing", "no downloaded video with this id"))
        elif earlier_failed.get(row.key, {}).get("source") == source_signature(source[0]):
            failed.append(earlier_failed[row.key])  # failed before, from this very file
        else:
            jobs.append((row, rel, *source))
    counts = {"rows": len(rows) + len(bad_rows), "bad_rows": len(bad_rows),
              "already_prepared": len(done), "damaged_redone": len(redone), "to_prepare": len(jobs),
              "missing": sum(f["reason"] == "missing" for f in failed),
              "failed_before": sum("source" in f for f in failed)}
    return Plan(annotations, videos, rows, bad_rows, names, report, jobs, done, failed, redone, counts)


def execute(todo: Plan, out: Path, state: Path, settings: EncodeSettings, workers: int, progress: bool,
            own_stems: bool) -> dict:
    """Encodes the plan's jobs, then writes the manifests, ``classes.txt`` and the report; returns
    this run's report (counts and every failed, partial, short and missing entry)."""
    rows, jobs, done, failed, report = todo.rows, todo.jobs, todo.done, todo.failed, todo.report
    earlier_partial, earlier_short = remembered(report, "partial"), remembered(report, "short")
    partial = [earlier_partial[k] for k in done if k in earlier_partial]
    short = [earlier_short[k] for k in done if k in earlier_short]
    for split in {r.split for r, *_ in jobs}:
        (out / split).mkdir(exist_ok=True)
    tasks = [(i, str(src), str(out / rel), window, row.time_end - row.time_start, settings)
             for i, (row, rel, src, window) in enumerate(jobs)]
    stems = {row.clip_stem for row, *_ in jobs} if own_stems else None
    for index, status, result in run_workers(tasks, out, workers, progress, stems):
        row, rel, src, _ = jobs[index]
        if status == "ok":
            done[row.key] = (row, rel, result)
            if result.bad_packets:
                partial.append({**failure_entry(row, "partial", f"{result.bad_packets} undecodable "
                                           f"packets skipped"), "kept_frames": result.num_frames})
            if result.short:
                short.append({**failure_entry(row, "short", result.short), "kept_frames": result.num_frames})
        else:
            entry = failure_entry(row, status, result)
            failed.append(entry if status in RETRY_REASONS else {**entry, "source": source_signature(src)})

    names = todo.names
    label_index = {n: i for i, n in enumerate(names)}
    splits = sorted({row.split for row in rows})
    for split in splits:
        records = sorted((ClipRecord(rel, label_index.get(row.label, -1), row.label or "", info.num_frames,
                                     info.fps)
                          for row, rel, info in done.values() if row.split == split), key=lambda r: r.path)
        write_manifest(state, split, records)
    if names:
        write_classes(state, names)
    missing = by_key([f for f in failed if f["reason"] == "missing"])
    failed = by_key([f for f in failed if f["reason"] != "missing"])
    run = {"counts": dict(todo.counts), "failed": failed, "partial": by_key(partial),
           "short": by_key(short), "missing": missing, "bad_rows": [b.as_dict() for b in todo.bad_rows]}
    source = {"annotations": str(todo.annotations), "videos": str(todo.videos), "settings": vars(settings)}
    for split in splits:
        split_missing = [e for e in missing if e["split"] == split]
        write_missing(state, split, split_missing)
        report["splits"][split] = split_section(
            split, source, rows=sum(r.split == split for r in rows),
            prepared=sum(row.split == split for row, *_ in done.values()), missing=len(split_missing),
            entries={k: [e for e in run[k] if e["split"] == split] for k in ENTRY_LISTS})
    report["bad_rows"][str(todo.annotations)] = run["bad_rows"]
    write_report(state, report)
    run["counts"].update(prepared=len(done), failed=len(failed), partial=len(partial), short=len(short),
                         by_reason=dict(Counter(f["reason"] for f in failed)))
    return run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.kinetics", description=__doc__.split("\n")[0])
    p.add_argument("--annotations", type=Path, help="official CSV or JSON annotation file")
    p.add_argument("--videos", type=Path, help="folder of downloaded videos (any layout)")
    p.add_argument("--out", type=Path, required=True, help="prepared dataset folder")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--short-side", type=int, default=EncodeSettings.short_side)
    p.add_argument("--keyframe-interval", type=int, default=EncodeSettings.keyframe_interval)
    p.add_argument("--crf", type=int, default=EncodeSettings.crf)
    p.add_argument("--tune", default=EncodeSettings.tune, help="x264 tune (fastdecode: faster loading)")
    p.add_argument("--min-frames", type=int, default=EncodeSettings.min_frames,
                   help="fewer decodable frames than this: reported as too_short")
    p.add_argument("--min-fraction", type=float, default=None,
                   help="opt-in: drop complete clips holding less than this fraction of their annotated "
                        "segment (reason shorter_than_window); by default they are kept and listed as "
                        "'short', as real Kinetics clips often are shorter than 10 s")
    p.add_argument("--keep-short", action="store_true",
                   help="keep what decoded of a truncated download (listed as 'short') instead of "
                        "reporting it as truncated")
    p.add_argument("--dry-run", action="store_true", help="count what would be done; write nothing")
    p.add_argument("--verify", action="store_true",
                   help="decode every finished clip end to end (slow): damage inside a clip is redone too")
    p.add_argument("--retry-failed", action="store_true",
                   help="try again rows that failed in an earlier run although their source is unchanged")
    p.add_argument("--replace-split", action="store_true",
                   help="let this annotation file replace a split another file prepared into --out")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="prepare only shard K of N (N machines or a SLURM array share one --out); "
                        "then --merge")
    p.add_argument("--merge", action="store_true",
                   help="build the manifests and report of --out from its N finished shards")
    args = p.parse_args(argv)
    if args.merge:
        with one_line_errors():
            merged = merge_shards(args.out)
        for split, section in merged["splits"].items():
            print(f"{split}: {json.dumps(section['counts'])}")
        print(f"merged {next(iter(merged['splits'].values()), {}).get('shards', '?')} shards into {args.out}")
        return 0
    if args.annotations is None or args.videos is None:
        p.error("--annotations and --videos are required (or --merge)")
    if args.workers < 1:
        p.error("--workers must be at least 1")
    if args.min_fraction is not None and not 0 <= args.min_fraction <= 1:
        p.error("--min-fraction must be between 0 and 1")
    settings = EncodeSettings(short_side=args.short_side, keyframe_interval=args.keyframe_interval,
                              crf=args.crf, tune=args.tune, min_frames=args.min_frames,
                              min_fraction=args.min_fraction, keep_short=args.keep_short)

    def on_sigterm(signum, frame):
        raise Interrupted()

    signal.signal(signal.SIGTERM, on_sigterm)
    kept = "clips finished so far are kept; rerun the same command to continue"
    try:
        with one_line_errors():  # bad input (annotations, folders): one line, exit code 2
            shard = parse_shard(args.shard) if args.shard else None
            report = prepare(args.annotations, args.videos, args.out, settings, args.workers, args.dry_run,
                             retry_failed=args.retry_failed, replace_split=args.replace_split, shard=shard,
                             verify=args.verify)
    except OSError as e:  # a full disk or a permission error while writing: no video is marked bad
        print(f"error: {e.strerror or e} ({e.filename})" if e.filename else f"error: {e.strerror or e}",
              file=sys.stderr)
        print(f"stopped; no video was marked as failed. {kept}.", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"\ninterrupted (Ctrl-C): {kept}.", file=sys.stderr)
        return 130
    except Interrupted:
        print(f"\nterminated (SIGTERM): {kept}.", file=sys.stderr)
        return 143
    counts = report["counts"]
    print(json.dumps(counts, indent=1))
    for bad in report.get("bad_rows", [])[:10]:
        print(f"bad row: {BadRow(**bad) if isinstance(bad, dict) else bad}", file=sys.stderr)
    if counts["bad_rows"] > 10:
        print(f"... {counts['bad_rows'] - 10} more bad rows: see {args.out / REPORT}", file=sys.stderr)
    if not args.dry_run:
        where = shard_dir(args.out, shard) if shard else args.out
        print(f"prepared {counts['prepared']} clips into {args.out}; {len(report['missing'])} rows without a "
              f"downloaded video, {counts['failed']} without a usable clip, {counts['bad_rows']} bad "
              f"annotation rows: see {where / REPORT}"
              + ("; when every shard is done: --merge" if shard else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
