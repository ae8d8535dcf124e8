"""Atomic file writes: a crash never leaves a half-written manifest, report, CSV, clip or checkpoint.

A file is written under a temporary name beside its final one and renamed when complete; if the
write fails (a full disk, a signal), the temporary file is removed and the old file stays as it was.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path


def temporary_path(path: str | Path) -> Path:
    """Where ``path`` is written before the rename: hidden, beside it, per process, same suffix
    (``data_prep.kinetics`` removes leftovers of a killed run by this pattern, ``.*.tmp*``)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


@contextmanager
def written_atomically(path: str | Path) -> Iterator[Path]:
    """``with written_atomically(p) as tmp: <write tmp>`` -> ``tmp`` renamed over ``p`` on success,
    removed on any failure (the exception goes on)."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Writes ``text`` to a temporary name beside ``path``, then renames it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_atomically(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def atomic_write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence | Mapping],
                     lineterminator: str = "\n") -> Path:
    """``header`` then ``rows`` (sequences in header order, or mappings by column name: a missing
    column is empty) as one CSV file, written atomically."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=lineterminator)
    writer.writerow(header)
    writer.writerows([row.get(c, "") for c in header] if isinstance(row, Mapping) else row for row in rows)
    return atomic_write_text(path, buffer.getvalue())
