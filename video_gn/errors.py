"""Errors the user fixes, printed by ``run.py`` as one line (``error: ...``) instead of a traceback.

``ConfigError`` (exit code 2): a config value or input file; the message names the key
(``data.crop_size=...``) or the file and line, and what would be allowed. ``ResourceError`` (exit
code 3): the machine stopped the run (a full disk, no permission); nothing written before is lost,
and the message says how to continue.
"""


class UserError(Exception):
    exit_code = 1


class ConfigError(UserError, ValueError):
    """A bad config value or input file, with a message that says how to fix it."""

    exit_code = 2


class MissingFileError(ConfigError, FileNotFoundError):
    """A file a config key names does not exist (also a ``FileNotFoundError``)."""


class ResourceError(UserError):
    """A write failed for a reason of the machine (disk full, permissions)."""

    exit_code = 3
