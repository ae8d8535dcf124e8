"""The preparation's inputs: the downloaded videos found by name under ``--videos`` (any layout), and
the clips an earlier run already finished under ``--out``.
"""

from __future__ import annotations

from pathlib import Path

import av

from data_prep.annotations import YOUTUBE_ID, Row
from data_prep.encode import probe_clip

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


def source_signature(path: Path) -> list:
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def usable_prepared_clip(path: Path, verify: bool = False):
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
