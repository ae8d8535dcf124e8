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
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import fcntl
import json
import os
import signal
import sys
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import av
from tqdm import tqdm

from data_prep.annotations import YOUTUBE_ID, AnnotationError, BadRow, Row, class_names, read_annotations
from data_prep.encode import EncodeSettings, OutputFault, UnusableVideo, encode_clip, probe_clip
from video_gn.data.manifest import ClipRecord, read_classes, read_manifest, write_classes, write_manifest
from video_gn.files import atomic_write_csv, atomic_write_text

VIDEO_EXTENSIONS = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".flv", ".3gp"}
CLIP_SUFFIX_LEN = len("_000000_000010")
REPORT = "prep_report.json"
# Failures that say nothing about the source file: never remembered, so the next run tries again.
RETRY_REASONS = {"unreadable_source"}


class PrepError(Exception):
    """Stops the preparation with one clear line (``exit_code`` for the CLI)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(BaseException):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt."""


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


# --- workers -------------------------------------------------------------------------------------

def _worker_init(out: str, parent: int) -> None:
    """Ctrl-C reaches the whole process group: the parent alone decides. SIGTERM (the parent's
    shutdown, or the parent's death on Linux) deletes this worker's half-written clips and exits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: _worker_exit(out, signum))
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the line above took effect
        _worker_exit(out, signal.SIGTERM)


def _worker_exit(out: str, signum: int) -> None:
    for tmp in Path(out).glob(f"*/.*.tmp{os.getpid()}.mp4"):
        tmp.unlink(missing_ok=True)
    os._exit(128 + signum)


def _prepare_one(job: tuple) -> tuple:
    """Worker: (job index, "ok", ClipInfo), (index, reason, detail) or (index, "fault", message)."""
    index, src, dst, window, expected_seconds, settings = job
    start, end = window or (None, None)
    try:
        return index, "ok", encode_clip(src, dst, settings, start, end, expected_seconds)
    except UnusableVideo as e:
        return index, e.reason, e.detail
    except OutputFault as e:
        return index, "fault", (e.errno, e.strerror)
    except Exception as e:  # never lose the run to one video
        return index, "undecodable", f"{src}: {type(e).__name__}: {e}"


# --- the output folder ---------------------------------------------------------------------------

class OutputLock:
    """``<out>/.prep.lock`` (flock): a second preparation into the same folder fails at once instead
    of deleting the first one's temporary files. The kernel drops the lock when the holder dies."""

    def __init__(self, out: Path):
        self.path = out / ".prep.lock"
        self.fd = None

    def __enter__(self) -> OutputLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise PrepError(f"another preparation (pid {holder}) is writing into {self.path.parent}; "
                            "wait for it to finish, or use another --out") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)  # also releases the lock


def check_output_folder(out: Path) -> None:
    """Raises PrepError when ``--out`` cannot be the output folder (a file, not creatable, read-only)."""
    if out.exists() and not out.is_dir():
        raise PrepError(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise PrepError(f"--out {out} is not a writable folder: {e.strerror}") from None


def check_videos_folder(videos: Path) -> None:
    if not videos.exists():
        raise PrepError(f"--videos {videos} does not exist")
    if not videos.is_dir():
        raise PrepError(f"--videos {videos} is not a folder")
    try:
        next(os.scandir(videos), None)
    except OSError as e:
        raise PrepError(f"--videos {videos} cannot be read: {e.strerror}") from None


def _remove_stale_temporaries(out: Path, stems: set[str] | None = None) -> None:
    """Half-written files of a run that was killed before it could clean up (never under a final
    name); called while holding the lock, so they are nobody's work in progress. A shard removes
    only its own rows' (``stems``): other shards may be writing into the same folders."""
    for tmp in out.glob("*/.*.tmp*.mp4"):
        if stems is None or tmp.name[1:tmp.name.rindex(".tmp")] in stems:
            tmp.unlink(missing_ok=True)
    if stems is None:
        for tmp in out.glob(".*.tmp*"):
            tmp.unlink(missing_ok=True)


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


def _remembered(report: dict, section: str, settings: EncodeSettings | None = None) -> dict[tuple, dict]:
    """Entries of every split's ``failed`` or ``partial``/``short`` list, keyed by row key (with
    ``settings``: only from runs with the same settings, which decide too_short, truncated and
    shorter_than_window)."""
    entries = [e for s in report["splits"].values() for e in s.get(section, [])
               if settings is None or s.get("settings") == vars(settings)]
    return {(f["youtube_id"], f["time_start"], f["time_end"]): f for f in entries}


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


def _failure(row: Row, reason: str, detail: str) -> dict:
    return {"youtube_id": row.youtube_id, "time_start": row.time_start, "time_end": row.time_end,
            "split": row.split, "label": row.label, "reason": reason, "detail": detail}


def _source_signature(path: Path) -> list:
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def _usable_prepared_clip(path: Path, verify: bool = False):
    """The ClipInfo of a clip an earlier run finished, or None if it was damaged since (our MP4s
    keep their index at the end: a clip cut short or overwritten no longer opens). ``verify``
    decodes it end to end as well, to find damage inside that the header does not show."""
    try:
        info = probe_clip(path)
        if verify:
            with av.open(str(path)) as container:
                decoded = sum(1 for _ in container.decode(video=0))
            if decoded != info.num_frames:
                return None
    except Exception:
        return None
    return info if info.num_frames > 0 and info.fps > 0 else None


# --- the preparation -----------------------------------------------------------------------------

def parse_shard(text: str) -> tuple[int, int]:
    """``"2/3"`` -> (2, 3): the second of three shards."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise PrepError(f"--shard {text!r}: expected K/N, e.g. 2/3") from None
    if not 1 <= k <= n:
        raise PrepError(f"--shard {text!r}: K must be between 1 and N")
    return k, n


def in_shard(row: Row, shard: tuple[int, int]) -> bool:
    """Rows are split by a hash of their clip name: stable under edits and reordering of the file."""
    k, n = shard
    return zlib.crc32(row.clip_stem.encode()) % n == k - 1


def shard_dir(out: Path, shard: tuple[int, int]) -> Path:
    """Where shard K of N keeps its manifests, report and lock (its clips go to ``<out>/<split>/``)."""
    return out / "shards" / f"{shard[0]}-of-{shard[1]}"


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
        plan = _plan(annotations, videos, out, state, rows, names, bad_rows, settings, retry_failed,
                     replace_split, verify)
        return {"dry_run": True, "counts": plan["counts"], "classes": len(names), "bad_rows": bad_rows}
    check_output_folder(out)
    state.mkdir(parents=True, exist_ok=True)
    with OutputLock(state):
        _remove_stale_temporaries(out, {r.clip_stem for r in rows} if shard else None)
        plan = _plan(annotations, videos, out, state, rows, names, bad_rows, settings, retry_failed,
                     replace_split, verify)
        return _execute(plan, out, state, settings, workers, progress, own_stems=shard is not None)


def _plan(annotations, videos, out, state, rows, names, bad_rows, settings, retry_failed,
          replace_split, verify=False) -> dict:
    """What the run will do: rows already done, rows to encode, rows that fail without trying."""
    report = read_report(state)
    for split in sorted({r.split for r in rows}):
        earlier = report["splits"].get(split, {}).get("annotations")
        if earlier and Path(earlier).resolve() != annotations.resolve() and not replace_split:
            raise PrepError(f"split '{split}' in {out} was prepared from {earlier}; {annotations} also "
                            f"has {split} rows and would replace its manifest. Use another --out, or "
                            "--replace-split to replace it.")
    clips, full = index_videos(videos)
    earlier_failed = {} if retry_failed else _remembered(report, "failed", settings)
    seen, jobs, done, failed, redone = set(), [], {}, [], []
    for row in rows:
        if row.key in seen:
            failed.append(_failure(row, "duplicate_row", "same youtube id and window listed twice"))
            continue
        seen.add(row.key)
        rel = f"{row.split}/{row.clip_stem}.mp4"
        if (out / rel).is_file():
            info = _usable_prepared_clip(out / rel, verify)
            if info is not None:
                done[row.key] = (row, rel, info)
                continue
            redone.append(rel)
        source = find_source(row, clips, full)
        if source is None:
            failed.append(_failure(row, "missing", "no downloaded video with this id"))
        elif earlier_failed.get(row.key, {}).get("source") == _source_signature(source[0]):
            failed.append(earlier_failed[row.key])  # failed before, from this very file
        else:
            jobs.append((row, rel, *source))
    counts = {"rows": len(rows) + len(bad_rows), "bad_rows": len(bad_rows),
              "already_prepared": len(done), "damaged_redone": len(redone), "to_prepare": len(jobs),
              "missing": sum(f["reason"] == "missing" for f in failed),
              "failed_before": sum("source" in f for f in failed)}
    return {"annotations": annotations, "videos": videos, "rows": rows, "bad_rows": bad_rows,
            "names": names, "report": report, "jobs": jobs, "done": done, "failed": failed,
            "redone": redone, "counts": counts}


def _by_key(entries: list[dict]) -> list[dict]:
    return sorted(entries, key=lambda e: (e["youtube_id"], e["time_start"], e["time_end"], e["reason"]))


def _execute(plan: dict, out: Path, state: Path, settings: EncodeSettings, workers: int, progress: bool,
             own_stems: bool) -> dict:
    rows, jobs, done, failed = plan["rows"], plan["jobs"], plan["done"], plan["failed"]
    report = plan["report"]
    earlier_partial, earlier_short = _remembered(report, "partial"), _remembered(report, "short")
    partial = [earlier_partial[k] for k in done if k in earlier_partial]
    short = [earlier_short[k] for k in done if k in earlier_short]
    for split in {r.split for r, *_ in jobs}:
        (out / split).mkdir(exist_ok=True)
    tasks = [(i, str(src), str(out / rel), window, row.time_end - row.time_start, settings)
             for i, (row, rel, src, window) in enumerate(jobs)]
    stems = {row.clip_stem for row, *_ in jobs} if own_stems else None
    for index, status, result in _run_workers(tasks, out, workers, progress, stems):
        row, rel, src, _ = jobs[index]
        if status == "ok":
            done[row.key] = (row, rel, result)
            if result.bad_packets:
                partial.append({**_failure(row, "partial", f"{result.bad_packets} undecodable "
                                           f"packets skipped"), "kept_frames": result.num_frames})
            if result.short:
                short.append({**_failure(row, "short", result.short), "kept_frames": result.num_frames})
        else:
            entry = _failure(row, status, result)
            failed.append(entry if status in RETRY_REASONS else {**entry, "source": _source_signature(src)})

    names = plan["names"]
    label_index = {n: i for i, n in enumerate(names)}
    splits = sorted({row.split for row in rows})
    for split in splits:
        records = sorted((ClipRecord(rel, label_index.get(row.label, -1), row.label or "", info.num_frames,
                                     info.fps)
                          for row, rel, info in done.values() if row.split == split), key=lambda r: r.path)
        write_manifest(state, split, records)
    if names:
        write_classes(state, names)
    missing = _by_key([f for f in failed if f["reason"] == "missing"])
    failed = _by_key([f for f in failed if f["reason"] != "missing"])
    run = {"counts": dict(plan["counts"]), "failed": failed, "partial": _by_key(partial),
           "short": _by_key(short), "missing": missing, "bad_rows": [b.as_dict() for b in plan["bad_rows"]]}
    for split in splits:
        section = {k: [e for e in run[k] if e["split"] == split] for k in ("failed", "partial", "short")}
        write_missing(state, split, [e for e in missing if e["split"] == split])
        report["splits"][split] = {
            "annotations": str(plan["annotations"]), "videos": str(plan["videos"]),
            "settings": vars(settings),
            "counts": {"rows": sum(r.split == split for r in rows),
                       "prepared": sum(row.split == split for row, *_ in done.values()),
                       "missing": sum(e["split"] == split for e in missing),
                       "failed": len(section["failed"]), "partial": len(section["partial"]),
                       "short": len(section["short"]),
                       "by_reason": dict(sorted(Counter(f["reason"] for f in section["failed"]).items()))},
            "missing_file": f"missing_{split}.csv", **section}
    report["bad_rows"][str(plan["annotations"])] = run["bad_rows"]
    atomic_write_text(state / REPORT, json.dumps(report, indent=1))
    run["counts"].update(prepared=len(done), failed=len(failed), partial=len(partial), short=len(short),
                         by_reason=dict(Counter(f["reason"] for f in failed)))
    return run


MISSING_COLUMNS = ("youtube_id", "time_start", "time_end", "split", "label")


def write_missing(folder: Path, split: str, entries: list[dict]) -> None:
    """Rows with no downloaded video: one file per split (20k lines of K400 do not belong in the
    report), the count in the report."""
    atomic_write_csv(folder / f"missing_{split}.csv", MISSING_COLUMNS, entries)


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
            missing = []
            for d in dirs:
                if (d / f"missing_{split}.csv").is_file():
                    with (d / f"missing_{split}.csv").open(newline="") as f:
                        missing += list(csv.DictReader(f))
            missing.sort(key=lambda m: (m["youtube_id"], float(m["time_start"]), float(m["time_end"])))
            write_missing(out, split, missing)
            section = {k: _by_key([e for s in sections for e in s.get(k, [])])
                       for k in ("failed", "partial", "short")}
            counts = {k: sum(s["counts"][k] for s in sections)
                      for k in ("rows", "prepared", "missing", "failed", "partial", "short")}
            counts["by_reason"] = dict(sorted(Counter(f["reason"] for f in section["failed"]).items()))
            merged["splits"][split] = {**{k: sections[0][k] for k in ("annotations", "videos", "settings")},
                                       "counts": counts, "missing_file": f"missing_{split}.csv",
                                       "shards": n, **section}
        for r in reports:
            merged["bad_rows"].update(r["bad_rows"])
        atomic_write_text(out / REPORT, json.dumps(merged, indent=1))
    return merged


def _run_workers(tasks: list, out: Path, workers: int, progress: bool, stems: set[str] | None = None):
    """Yields each task's result as it finishes. On Ctrl-C, SIGTERM or an output fault, the workers
    are sent SIGTERM (each deletes its half-written clip and exits) before the exception goes on."""
    if not tasks:
        return
    pool = ProcessPoolExecutor(max(1, min(workers, len(tasks))), initializer=_worker_init,
                               initargs=(str(out), os.getpid()))
    futures = [pool.submit(_prepare_one, task) for task in tasks]
    finished = False
    try:
        for future in tqdm(as_completed(futures), total=len(futures), desc="preparing clips", unit="clip",
                           disable=not progress):
            index, status, result = future.result()
            if status == "fault":
                raise OSError(*result)
            yield index, status, result
        finished = True
    finally:
        if not finished:
            for future in futures:
                future.cancel()
            for process in list((pool._processes or {}).values()):  # the executor has no terminate()
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        _remove_stale_temporaries(out, stems)


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
        try:
            merged = merge_shards(args.out)
        except PrepError as e:
            print(f"error: {e}", file=sys.stderr)
            return e.exit_code
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
        shard = parse_shard(args.shard) if args.shard else None
        report = prepare(args.annotations, args.videos, args.out, settings, args.workers, args.dry_run,
                         retry_failed=args.retry_failed, replace_split=args.replace_split, shard=shard,
                         verify=args.verify)
    except (AnnotationError, PrepError) as e:
        print(f"error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
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
