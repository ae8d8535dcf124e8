"""Errors the user fixes, printed by every entry point as one line (``error: ...``) instead of a
traceback (``one_line_errors``), with an exit code per family.

These are not built-in exception types: raised where the fault is known, and turned into one line
only at the entry points, so a bug in our code keeps its traceback.

``UserError`` (exit code 1): bad input to a report or tool. ``ConfigError`` (exit code 2): a config
value or input file; the message names the key (``data.crop_size=...``) or the file and line, and
what would be allowed. ``ResourceError`` (exit code 3): the machine stopped the run (a full disk, no
permission); nothing written before is lost, and the message says how to continue.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# Errors of the machine, not of the input (a video, a config): after fixing them the same command
# must finish the job, so nothing is marked bad because of them.
MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                            errno.EMFILE, errno.ENFILE, errno.ENOMEM})


class UserError(Exception):
    exit_code = 1


class ConfigError(UserError):
    """A bad config value or input file, with a message that says how to fix it.

    Not a ``ValueError``: a handler for the built-in errors of a library call never swallows it, and
    a ``ValueError`` from a bug in our code is never mistaken for the user's."""

    exit_code = 2


class MissingFileError(ConfigError):
    """A file a config key or argument names does not exist."""


class WeightsFileError(ConfigError):
    """A weights file that is not what it claims or does not fit the network; the message names the
    file (``models.build_network`` adds the config key that named it)."""


class ResourceError(UserError):
    """A write failed for a reason of the machine (disk full, permissions)."""

    exit_code = 3


@contextmanager
def one_line_errors() -> Iterator[None]:
    """For entry points: a :class:`UserError` inside ends the program with ``error: <message>`` on
    stderr and the error's exit code."""
    try:
        yield
    except UserError as e:
        if e.exit_code == 1:  # SystemExit with a message prints it to stderr and exits with 1
            raise SystemExit(f"error: {e}") from None
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
