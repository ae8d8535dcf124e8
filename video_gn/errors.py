"""``ConfigError``: a config value or input file the user must fix.

``run.py`` prints it as one line (``error: ...``, exit code 2) instead of a traceback; the message
names the key (``data.crop_size=...``) or the file and line, and what would be allowed.
"""


class ConfigError(ValueError):
    """A bad config value or input file, with a message that says how to fix it."""


class MissingFileError(ConfigError, FileNotFoundError):
    """A file a config key names does not exist (also a ``FileNotFoundError``)."""
