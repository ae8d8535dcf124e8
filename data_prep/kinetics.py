"""Prepare Kinetics: annotation file + downloaded videos -> re-encoded clips, manifests, report.

    python -m data_prep.kinetics --annotations kinetics-400_val.csv --videos ~/k400/raw \
        --out ~/k400/prepared [--workers 8] [--short-side 256] [--dry-run]

Videos are found by name anywhere under ``--videos``: Kinetics clips ``<ytid>_<start:06d>_<end:06d>.<ext>``
(CVDF flat or per-class folders), or full-length ``<ytid>.<ext>`` sources, which are trimmed to the
row's window. Output: ``<out>/<split>/<ytid>_<start>_<end>.mp4``, ``<out>/<split>.csv`` manifests,
``<out>/classes.txt`` and ``<out>/prep_report.json`` (every row without a usable clip, with its
reason). Reruns skip finished clips; a clip is written under a temporary name and renamed when
complete, so an interrupted run never leaves a half-written clip under a final name.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from data_prep.annotations import YOUTUBE_ID, AnnotationError, Row, class_names, read_annotations
from data_prep.encode import EncodeSettings, UnusableVideo, encode_clip, probe_clip
from video_gn.data.manifest import ClipRecord, write_classes, write_manifest
from video_gn.io import atomic_write_text

VIDEO_EXTENSIONS = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".flv", ".3gp"}
CLIP_SUFFIX_LEN = len("_000000_000010")


def index_videos(root: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """Maps clip stems (``<ytid>_<start>_<end>``) and full-video ids (``<ytid>``) to files."""
    clips, full = {}, {}
    for path in root.rglob("*"):
        if path.suffix.lower() not in VIDEO_EXTENSIONS or not path.is_file() or path.name.startswith("."):
            continue
        stem = path.stem
        # Parse from the end: youtube ids may themselves contain '_' and start with '-'.
        if len(stem) == 11 + CLIP_SUFFIX_LEN and YOUTUBE_ID.fullmatch(stem[:-CLIP_SUFFIX_LEN]):
            clips.setdefault(stem, path)
        elif YOUTUBE_ID.fullmatch(stem):
            full.setdefault(stem, path)
    return clips, full


def find_source(row: Row, clips: dict[str, Path], full: dict[str, Path]):
    """(path, trim window or None) for a row, or None if no video was downloaded."""
    if row.clip_stem in clips:
        return clips[row.clip_stem], None
    if row.youtube_id in full:
        return full[row.youtube_id], (row.time_start, row.time_end)
    return None


def _prepare_one(src: str, dst: str, window, settings: EncodeSettings):
    """Worker: returns ("ok", ClipInfo) or (reason, detail)."""
    start, end = window or (None, None)
    try:
        return "ok", encode_clip(src, dst, settings, start, end)
    except UnusableVideo as e:
        return e.reason, e.detail
    except Exception as e:  # never lose the run to one video
        return "undecodable", f"{src}: {type(e).__name__}: {e}"


def _source_signature(path: Path) -> list:
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def _earlier_report(out: Path, section: str) -> dict[tuple, dict]:
    """Entries of the last run's report section (``failed`` or ``partial``), keyed by row key."""
    report = out / "prep_report.json"
    entries = json.loads(report.read_text()).get(section, []) if report.is_file() else []
    return {(f["youtube_id"], f["time_start"], f["time_end"]): f for f in entries}


def prepare(annotations: Path, videos: Path, out: Path, settings: EncodeSettings, workers: int = 1,
            dry_run: bool = False, progress: bool = True, retry_failed: bool = False) -> dict:
    """Runs the whole preparation; returns the report (also written to ``<out>/prep_report.json``).

    A row that failed in an earlier run is not tried again while its source file is unchanged
    (``retry_failed`` tries anyway), so a rerun of a finished preparation does no work.
    """
    rows = read_annotations(annotations)
    names = class_names(rows)
    label_index = {n: i for i, n in enumerate(names)}
    clips, full = index_videos(videos)
    earlier = {} if retry_failed else _earlier_report(out, "failed")
    earlier_partial = _earlier_report(out, "partial")

    seen, jobs, done, failed = set(), [], {}, []
    for row in rows:
        if row.key in seen:
            failed.append(_failure(row, "duplicate_row", "same youtube id and window listed twice"))
            continue
        seen.add(row.key)
        rel = f"{row.split}/{row.clip_stem}.mp4"
        if (out / rel).is_file():
            done[row.key] = (row, rel, probe_clip(out / rel))
            continue
        source = find_source(row, clips, full)
        if source is None:
            failed.append(_failure(row, "missing", "no downloaded video with this id"))
        elif row.key in earlier and earlier[row.key].get("source") == _source_signature(source[0]):
            failed.append(earlier[row.key])
        else:
            jobs.append((row, rel, *source))

    partial = [earlier_partial[k] for k in done if k in earlier_partial]
    counts = {"rows": len(rows), "already_prepared": len(done), "to_prepare": len(jobs),
              "missing": sum(f["reason"] == "missing" for f in failed),
              "failed_before": sum("source" in f for f in failed)}
    if dry_run:
        return {"dry_run": True, "counts": counts, "classes": len(names)}

    out.mkdir(parents=True, exist_ok=True)
    for split in {r.split for r, *_ in jobs}:
        (out / split).mkdir(exist_ok=True)
    _remove_stale_temporaries(out)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_prepare_one, str(src), str(out / rel), window, settings): (row, rel, src)
                   for row, rel, src, window in jobs}
        for future in tqdm(as_completed(futures), total=len(futures), desc="preparing clips",
                           unit="clip", disable=not progress):
            row, rel, src = futures[future]
            status, result = future.result()
            if status == "ok":
                done[row.key] = (row, rel, result)
                if result.bad_packets:
                    partial.append({**_failure(row, "partial", f"{result.bad_packets} undecodable "
                                               f"packets skipped"), "kept_frames": result.num_frames})
            else:
                failed.append({**_failure(row, status, result), "source": _source_signature(src)})

    for split in sorted({row.split for row in rows}):
        records = [ClipRecord(rel, label_index.get(row.label, -1), row.label or "", info.num_frames,
                              info.fps)
                   for key, (row, rel, info) in sorted(done.items()) if row.split == split]
        write_manifest(out, split, records)
    write_classes(out, names)
    counts.update(prepared=len(done), failed=len(failed), partial=len(partial),
                  by_reason=dict(Counter(f["reason"] for f in failed)))
    report = {"annotations": str(annotations), "videos": str(videos), "settings": vars(settings),
              "counts": counts, "failed": failed, "partial": partial}
    atomic_write_text(out / "prep_report.json", json.dumps(report, indent=1))
    return report


def _failure(row: Row, reason: str, detail: str) -> dict:
    return {"youtube_id": row.youtube_id, "time_start": row.time_start, "time_end": row.time_end,
            "split": row.split, "label": row.label, "reason": reason, "detail": detail}


def _remove_stale_temporaries(out: Path) -> None:
    """Half-written clips of an interrupted run (never under a final name); they get redone."""
    for tmp in out.glob("*/.*.tmp*.mp4"):
        tmp.unlink(missing_ok=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.kinetics", description=__doc__.split("\n")[0])
    p.add_argument("--annotations", type=Path, required=True, help="official CSV or JSON annotation file")
    p.add_argument("--videos", type=Path, required=True, help="folder of downloaded videos (any layout)")
    p.add_argument("--out", type=Path, required=True, help="prepared dataset folder")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--short-side", type=int, default=EncodeSettings.short_side)
    p.add_argument("--keyframe-interval", type=int, default=EncodeSettings.keyframe_interval)
    p.add_argument("--crf", type=int, default=EncodeSettings.crf)
    p.add_argument("--tune", default=EncodeSettings.tune, help="x264 tune (fastdecode: faster loading)")
    p.add_argument("--min-frames", type=int, default=EncodeSettings.min_frames,
                   help="fewer decodable frames than this: reported as too_short")
    p.add_argument("--dry-run", action="store_true", help="count what would be done; write nothing")
    p.add_argument("--retry-failed", action="store_true",
                   help="try again rows that failed in an earlier run although their source is unchanged")
    args = p.parse_args(argv)
    if not args.videos.is_dir():
        p.error(f"--videos {args.videos} is not a folder")
    settings = EncodeSettings(short_side=args.short_side, keyframe_interval=args.keyframe_interval,
                              crf=args.crf, tune=args.tune, min_frames=args.min_frames)
    try:
        report = prepare(args.annotations, args.videos, args.out, settings, args.workers, args.dry_run,
                         retry_failed=args.retry_failed)
    except (AnnotationError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report["counts"], indent=1))
    if not args.dry_run:
        print(f"prepared {report['counts']['prepared']} clips into {args.out}; "
              f"{report['counts']['failed']} rows without a usable clip: see {args.out / 'prep_report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
