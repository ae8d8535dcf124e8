"""The folders a preparation reads and writes: checked before any work, one preparation at a time
per output folder, and no leftover of a killed run.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from video_gn.errors import UserError


class PrepError(UserError):
    """Stops the preparation with one clear line (``exit_code`` for the CLI)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


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


def check_videos_folder(videos: Path, option: str = "--videos") -> None:
    if not videos.exists():
        raise PrepError(f"{option} {videos} does not exist")
    if not videos.is_dir():
        raise PrepError(f"{option} {videos} is not a folder")
    try:
        next(os.scandir(videos), None)
    except OSError as e:
        raise PrepError(f"{option} {videos} cannot be read: {e.strerror}") from None


def remove_stale_temporaries(out: Path, stems: set[str] | None = None) -> None:
    """Half-written files of a run that was killed before it could clean up (never under a final
    name); called while holding the lock, so they are nobody's work in progress. A shard removes
    only its own rows' (``stems``): other shards may be writing into the same folders."""
    for tmp in out.glob("**/.*.tmp*.mp4"):  # clips sit in <split>/ or <split>/<class>/
        if stems is None or tmp.name[1:tmp.name.rindex(".tmp")] in stems:
            tmp.unlink(missing_ok=True)
    if stems is None:
        for tmp in out.glob(".*.tmp*"):
            tmp.unlink(missing_ok=True)


