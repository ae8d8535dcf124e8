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
import sys
from pathlib import Path

from data_prep import cli
from data_prep.annotations import BadRow, Row, class_names, read_annotations
from data_prep.encode import EncodeSettings
from data_prep.output import (
    OutputLock,
    PrepError,
    check_output_folder,
    check_videos_folder,
    remove_stale_temporaries,
)
from data_prep.pipeline import Plan, execute, plan
from data_prep.prep_report import REPORT, read_report
from data_prep.shards import in_shard, shard_dir
from data_prep.sources import find_source, index_videos
from video_gn.data.manifest import read_classes


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
        rows = [r for r in rows if in_shard(r.clip_stem, shard)]
    state = shard_dir(out, shard) if shard else out

    def planned() -> Plan:
        check_split_sources(state, rows, annotations, out, replace_split)
        clips, full = index_videos(videos)
        todo = plan(rows, lambda row: find_source(row, clips, full), out, state, names,
                    {"annotations": str(annotations), "videos": str(videos), "settings": vars(settings)},
                    settings, retry_failed, verify,
                    duplicate_reason="same youtube id and window listed twice")
        todo.counts = {"rows": len(rows) + len(bad_rows), "bad_rows": len(bad_rows), **todo.counts}
        todo.left_out = {"bad_rows": {str(annotations): [b.as_dict() for b in bad_rows]}}
        return todo

    if dry_run:
        return {"dry_run": True, "counts": planned().counts, "classes": len(names), "bad_rows": bad_rows}
    check_output_folder(out)
    state.mkdir(parents=True, exist_ok=True)
    with OutputLock(state):
        remove_stale_temporaries(out, {r.clip_stem for r in rows} if shard else None)
        return execute(planned(), out, state, settings, workers, progress, own_stems=shard is not None)


def check_split_sources(state: Path, rows: list[Row], annotations: Path, out: Path,
                        replace_split: bool) -> None:
    """A split prepared from another annotation file is not silently replaced."""
    report = read_report(state)
    for split in sorted({r.split for r in rows}):
        earlier = report["splits"].get(split, {}).get("annotations")
        if earlier and Path(earlier).resolve() != annotations.resolve() and not replace_split:
            raise PrepError(f"split '{split}' in {out} was prepared from {earlier}; {annotations} also "
                            f"has {split} rows and would replace its manifest. Use another --out, or "
                            "--replace-split to replace it.")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.kinetics", description=__doc__.split("\n")[0])
    p.add_argument("--annotations", type=Path, help="official CSV or JSON annotation file")
    p.add_argument("--videos", type=Path, help="folder of downloaded videos (any layout)")
    p.add_argument("--min-fraction", type=float, default=None,
                   help="opt-in: drop complete clips holding less than this fraction of their annotated "
                        "segment (reason shorter_than_window); by default they are kept and listed as "
                        "'short', as real Kinetics clips often are shorter than 10 s")
    p.add_argument("--keep-short", action="store_true",
                   help="keep what decoded of a truncated download (listed as 'short') instead of "
                        "reporting it as truncated")
    p.add_argument("--replace-split", action="store_true",
                   help="let this annotation file replace a split another file prepared into --out")
    cli.add_common_arguments(p, what="rows")
    args = p.parse_args(argv)
    if args.merge:
        return cli.merge(args.out)
    if args.annotations is None or args.videos is None:
        p.error("--annotations and --videos are required (or --merge)")
    if args.min_fraction is not None and not 0 <= args.min_fraction <= 1:
        p.error("--min-fraction must be between 0 and 1")
    settings = cli.encode_settings(p, args, min_fraction=args.min_fraction, keep_short=args.keep_short)

    def run(shard):
        return prepare(args.annotations, args.videos, args.out, settings, args.workers, args.dry_run,
                       retry_failed=args.retry_failed, replace_split=args.replace_split, shard=shard,
                       verify=args.verify)

    code, report = cli.run_preparation(args, run)
    if report is None or args.dry_run:
        return code
    for bad in report.get("bad_rows", [])[:10]:
        print(f"bad row: {BadRow(**bad)}", file=sys.stderr)
    if report["counts"]["bad_rows"] > 10:
        print(f"... {report['counts']['bad_rows'] - 10} more bad rows: see {args.out / REPORT}",
              file=sys.stderr)
    cli.print_done(args, report, extra=f"{len(report['missing'])} rows without a downloaded video, "
                   f"{report['counts']['failed']} without a usable clip, {report['counts']['bad_rows']} bad "
                   "annotation rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
