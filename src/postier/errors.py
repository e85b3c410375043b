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


class Reply(PostierError):
    """An SMTP reply: code, enhanced status code and text.

    `Reply(554, "5.7.1", "<x@y>: Relay access denied")` renders as
    `554 5.7.1 <x@y>: Relay access denied`.  `temporary` (4xx) versus
    permanent (5xx) is derived from the code, so defer-versus-bounce is
    decided here and nowhere else.  A multi-line text (\\n-separated) renders
    as continuation lines.
    """

    def __init__(self, code: int, enhanced: str = "", text: str = ""):
        self.code = code
        self.enhanced = enhanced
        self.text = text
        super().__init__(self.line())

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    @property
    def ok(self) -> bool:
        return self.code < 400

    def line(self) -> str:
        """One-line form (for logs): `554 5.7.1 text`."""
        parts = [str(self.code)]
        if self.enhanced:
            parts.append(self.enhanced)
        if self.text:
            parts.append(self.text)
        return " ".join(parts)

    def wire(self) -> bytes:
        """The bytes sent to the client, CRLF-terminated, multi-line aware."""
        lines = self.text.split("\n") if self.text else [""]
        out = []
        for i, text in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            body = f"{self.enhanced} {text}" if self.enhanced else text
            out.append(f"{self.code}{sep}{body}".rstrip(" ") + "\r\n")
        return "".join(out).encode("utf-8", "surrogateescape")

    def __repr__(self) -> str:
        return f"Reply({self.code}, {self.enhanced!r}, {self.text!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Reply) and self.code == other.code
                and self.enhanced == other.enhanced and self.text == other.text)

    def __hash__(self) -> int:
        return hash((self.code, self.enhanced, self.text))
