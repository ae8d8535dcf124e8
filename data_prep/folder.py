"""Prepare your own videos: a folder of class folders (or UCF101 / HMDB51 with their official splits)
-> re-encoded clips, manifests, report — a dataset for ``data=folder data.root=OUT``.

    python -m data_prep.folder --videos my_clips --out data/my_clips [--val-fraction 0.1] \\
        [--test-fraction 0.1] [--seed 0]
    python -m data_prep.folder --videos UCF-101 --splits ucfTrainTestlist --split 1 --out data/ucf101
    python -m data_prep.folder --videos hmdb51 --splits testTrainMulti_7030_splits --out data/hmdb51

The layouts (``data_prep.layouts``): ``<videos>/<class>/<video>`` split here (stratified, seeded),
``<videos>/<split>/<class>/<video>`` as given, and the official UCF101 / HMDB51 lists. Clips go to
``<out>/<split>/<class>/<name>.mp4``, re-encoded like the Kinetics prep (short side, fixed keyframe
interval: every clip reads with both decoders); ``classes.txt``, ``<split>.csv`` and
``prep_report.json`` (per split: every video without a usable clip and every short one, with the
reason; ``skipped_files``: hidden, non-video and unlisted files; ``split_notes``) as for Kinetics.
Short clips are kept (training loops them: ``data.short_videos=loop``) and listed as short.
Everything else — resume, ``--shard K/N`` + ``--merge``, Ctrl-C, a full disk, a second preparation
into the same ``--out`` — behaves as ``data_prep.kinetics`` (the same pipeline: ``data_prep.pipeline``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data_prep import cli
from data_prep.encode import EncodeSettings
from data_prep.layouts import Listing, folder_videos, list_videos
from data_prep.output import (
    OutputLock,
    PrepError,
    check_output_folder,
    check_videos_folder,
    remove_stale_temporaries,
)
from data_prep.pipeline import execute, plan
from data_prep.prep_report import read_report
from data_prep.shards import in_shard, shard_dir
from video_gn.data.manifest import read_classes

SHORT_SIDE = 128  # user clips for the CPU default (data=folder crops 56-80 px); --short-side 256 for I3D
SHORT_FRAMES = 16  # data=folder's training clip spans 8 frames x 2: shorter clips are listed


def prepare(videos: Path, out: Path, settings: EncodeSettings, splits_dir: Path | None = None,
            split_number: int = 1, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
            workers: int = 1, dry_run: bool = False, progress: bool = True, retry_failed: bool = False,
            shard: tuple[int, int] | None = None, verify: bool = False) -> dict:
    """Runs the whole preparation of a folder; returns this run's report. A rerun does no work; a
    rerun with another split rule (layout, fractions, seed, official split) into the same ``out`` is
    refused, since it would move videos between splits."""
    videos, out = Path(videos), Path(out)
    check_videos_folder(videos)
    if splits_dir is not None:
        check_videos_folder(splits_dir, "--splits")
    listing = list_videos(videos, splits_dir, split_number, val_fraction, test_fraction, seed, out)
    if not listing.videos:
        raise PrepError(f"--videos {videos}: no video found in the {listing.layout} layout "
                        f"({len(listing.skipped)} file(s) skipped, e.g. {listing.skipped[:1]})")
    rule = split_rule(listing, splits_dir, split_number, val_fraction, test_fraction, seed)
    names = class_list(out, listing)
    items = folder_videos(listing)
    if shard:
        items = [v for v in items if in_shard(v.out_path, shard)]
    state = shard_dir(out, shard) if shard else out
    source = {"videos": str(videos), "layout": listing.layout, "split_rule": rule, "settings": vars(settings)}

    def planned():
        check_same_rule(state, rule, out)
        todo = plan(items, lambda v: (videos / v.video, None), out, state, names, source, settings,
                    retry_failed, verify, duplicate_reason="listed twice in the split files")
        todo.counts = {"videos": len(items), "skipped_files": len(listing.skipped), **todo.counts}
        todo.left_out = {"skipped_files": {str(videos): listing.skipped},
                         "split_notes": {str(videos): listing.notes}}
        todo.missing_file, todo.splits = False, ("train", "val", "test")  # an empty val.csv says "none"
        return todo

    if dry_run:
        return {"dry_run": True, "counts": planned().counts, "classes": len(names), "layout": listing.layout,
                "skipped_files": listing.skipped, "split_notes": listing.notes}
    check_output_folder(out)
    state.mkdir(parents=True, exist_ok=True)
    with OutputLock(state):
        remove_stale_temporaries(out, {v.clip_stem for v in items} if shard else None)
        return execute(planned(), out, state, settings, workers, progress, own_stems=shard is not None)


def split_rule(listing: Listing, splits_dir, split_number, val_fraction, test_fraction, seed) -> dict:
    """How videos were assigned to splits, as recorded in the report."""
    if listing.layout == "splits":
        return {"layout": "splits"}
    rule = {"layout": listing.layout, "val_fraction": val_fraction, "seed": seed}
    if listing.layout == "classes":
        return {**rule, "test_fraction": test_fraction}
    return {**rule, "splits_dir": str(splits_dir), "split": split_number}


def check_same_rule(state: Path, rule: dict, out: Path) -> None:
    for section in read_report(state)["splits"].values():
        earlier = section.get("split_rule")
        if earlier is not None and earlier != rule:
            raise PrepError(f"{out} was prepared with another split rule ({earlier}; now {rule}): its "
                            f"videos would move between splits. Use another --out.")


def class_list(out: Path, listing: Listing) -> list[str]:
    if (out / "classes.txt").is_file() and read_classes(out) != listing.names:
        raise PrepError(f"{out / 'classes.txt'} lists other classes than {listing.layout} layout's "
                        f"{len(listing.names)}: the label indices of its manifests would change. "
                        "Use another --out.")
    return listing.names


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.folder", description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=Path, help="the folder of videos (class folders, split folders, "
                                                 "or UCF101/HMDB51 as unpacked)")
    p.add_argument("--splits", type=Path, default=None,
                   help="UCF101's ucfTrainTestlist or HMDB51's split-file folder: the official splits")
    p.add_argument("--split", type=int, default=1, help="which official split (UCF101/HMDB51: 1-3)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="of each class's (train) videos, for validation")
    p.add_argument("--test-fraction", type=float, default=0.1,
                   help="class folders without splits: of each class's videos, for the test")
    p.add_argument("--seed", type=int, default=0, help="the split's shuffle (class folders, val)")
    cli.add_common_arguments(p, what="videos")
    p.set_defaults(short_side=SHORT_SIDE, min_frames=1)
    args = p.parse_args(argv)
    if args.merge:
        return cli.merge(args.out)
    if args.videos is None:
        p.error("--videos is required (or --merge)")
    for name in ("val_fraction", "test_fraction"):
        if not 0 <= getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 0 and below 1")
    if args.val_fraction + args.test_fraction >= 1:
        p.error("--val-fraction + --test-fraction must leave videos for training")
    if args.splits is not None and args.test_fraction != p.get_default("test_fraction"):
        p.error("--test-fraction: with --splits the official test list is the test split")
    settings = cli.encode_settings(p, args, short_frames=SHORT_FRAMES)

    def run(shard):
        return prepare(args.videos, args.out, settings, args.splits, args.split, args.val_fraction,
                       args.test_fraction, args.seed, args.workers, args.dry_run,
                       retry_failed=args.retry_failed, shard=shard, verify=args.verify)

    code, report = cli.run_preparation(args, run)
    if report is None or args.dry_run:
        return code
    for note in report.get("split_notes", []):
        print(f"note: {note}", file=sys.stderr)
    skipped = report.get("skipped_files", [])
    for entry in skipped[:10]:
        print(f"skipped: {entry['file']} ({entry['reason']})", file=sys.stderr)
    counts = report["counts"]
    cli.print_done(args, report, extra=f"{counts['failed']} videos without a usable clip, {counts['short']} "
                   f"short (kept), {len(skipped)} files skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
