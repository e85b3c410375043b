"""Error types shared by every component.

`SourceError` is the one shape for "bad input in a file": it names the file
and line and says what was expected, so the CLI prints one precise line and
never a traceback.  `Reply` (added with the SMTP server) carries SMTP code,
enhanced status code and temporary/permanent, so defer-versus-bounce is
decided in one place.
"""

from __future__ import annotations


class PostierError(Exception):
    """Base class: an error with a message fit for an administrator."""


class SourceError(PostierError):
    """Malformed input at a known place: `file, line N: message`."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.message = message
        self.path = path
        self.line = line
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.path and self.line:
            return f"{self.path}, line {self.line}: {self.message}"
        if self.path:
            return f"{self.path}: {self.message}"
        return self.message


class ConfigError(SourceError):
    """main.cf / master.cf: invalid value or syntax."""


class MapError(SourceError):
    """A lookup table that cannot be opened or used (missing, corrupt, bad type)."""
