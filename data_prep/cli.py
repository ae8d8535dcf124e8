"""What every preparation command shares (``data_prep.kinetics``, ``data_prep.folder``): the output,
encoding, worker and sharding options, and one way to stop — bad input is one ``error:`` line (exit
2), a full disk or a permission error keeps every finished clip (exit 3), Ctrl-C (130) and SIGTERM
(143) too, and the same command run again goes on where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from data_prep.encode import EncodeSettings
from data_prep.prep_report import REPORT
from data_prep.shards import merge_shards, parse_shard, shard_dir
from data_prep.workers import Interrupted
from video_gn.errors import one_line_errors

KEPT = "clips finished so far are kept; rerun the same command to continue"


def add_common_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """``--out``, the encoding options, ``--workers``, ``--dry-run``, ``--verify``, ``--retry-failed``,
    ``--shard`` and ``--merge``; ``what`` names the command's units in the help ("rows", "videos")."""
    p.add_argument("--out", type=Path, required=True, help="prepared dataset folder")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--short-side", type=int, default=EncodeSettings.short_side)
    p.add_argument("--keyframe-interval", type=int, default=EncodeSettings.keyframe_interval)
    p.add_argument("--crf", type=int, default=EncodeSettings.crf)
    p.add_argument("--tune", default=EncodeSettings.tune, help="x264 tune (fastdecode: faster loading)")
    p.add_argument("--min-frames", type=int, default=EncodeSettings.min_frames,
                   help="fewer decodable frames than this: reported as too_short")
    p.add_argument("--dry-run", action="store_true", help="count what would be done; write nothing")
    p.add_argument("--verify", action="store_true",
                   help="decode every finished clip end to end (slow): damage inside a clip is redone too")
    p.add_argument("--retry-failed", action="store_true",
                   help=f"try again {what} that failed in an earlier run although their source is unchanged")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help=f"prepare only shard K of N of the {what} (N machines or a SLURM array share one "
                        "--out); then --merge")
    p.add_argument("--merge", action="store_true",
                   help="build the manifests and report of --out from its N finished shards")


def encode_settings(p: argparse.ArgumentParser, args, **extra) -> EncodeSettings:
    if args.workers < 1:
        p.error("--workers must be at least 1")
    return EncodeSettings(short_side=args.short_side, keyframe_interval=args.keyframe_interval, crf=args.crf,
                          tune=args.tune, min_frames=args.min_frames, **extra)


def merge(out) -> int:
    with one_line_errors():
        merged = merge_shards(out)
    for split, section in merged["splits"].items():
        print(f"{split}: {json.dumps(section['counts'])}")
    print(f"merged {next(iter(merged['splits'].values()), {}).get('shards', '?')} shards into {out}")
    return 0


def run_preparation(args, prepare: Callable) -> tuple[int, dict | None]:
    """(exit code, report) of ``prepare(shard)``: SIGTERM raised like Ctrl-C, bad input one line
    (exit 2), a machine fault or a stop explained with what is kept."""
    def on_sigterm(signum, frame):
        raise Interrupted()

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with one_line_errors():  # bad input (annotations, folders): one line, exit code 2
            report = prepare(parse_shard(args.shard) if args.shard else None)
    except OSError as e:  # a full disk or a permission error while writing: no video is marked bad
        print(f"error: {e.strerror or e} ({e.filename})" if e.filename else f"error: {e.strerror or e}",
              file=sys.stderr)
        print(f"stopped; no video was marked as failed. {KEPT}.", file=sys.stderr)
        return 3, None
    except KeyboardInterrupt:
        print(f"\ninterrupted (Ctrl-C): {KEPT}.", file=sys.stderr)
        return 130, None
    except Interrupted:
        print(f"\nterminated (SIGTERM): {KEPT}.", file=sys.stderr)
        return 143, None
    print(json.dumps(report["counts"], indent=1))
    return 0, report


def print_done(args, report: dict, extra: str) -> None:
    """The closing line: how many clips, what was left out, where the report is."""
    where = shard_dir(args.out, parse_shard(args.shard)) if args.shard else args.out
    print(f"prepared {report['counts']['prepared']} clips into {args.out}; {extra}: see {where / REPORT}"
          + ("; when every shard is done: --merge" if args.shard else ""))
