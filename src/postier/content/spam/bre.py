"""`re` with Perl's byte-string semantics: every str pattern gets re.ASCII.

SpamAssassin's Perl code matches most strings as bytes, where \\w, \\s, \\d
and \\b are ASCII-only (\\xa0 is not a space, \\xe9 is not a letter).
postier holds such strings as Latin-1 decoded str, so the modules that port
that code use `from postier.content.spam import bre as re`.  Patterns that
must follow Perl's character-string (Unicode) rules use the real `re`.

Parameters read: none.
"""

from __future__ import annotations

import re as _re
from re import (  # noqa: F401 - re-exported
    ASCII,
    DOTALL,
    IGNORECASE,
    MULTILINE,
    VERBOSE,
    A,
    I,
    M,
    Match,
    Pattern,
    S,
    X,
    error,
    escape,
)

_cache: dict = {}
_A = int(_re.A)


def compile(pattern, flags: int = 0):
    """re.compile with re.ASCII added for str patterns (cached without the
    enum arithmetic that makes re's own cache slow)."""
    try:
        return _cache[pattern, flags]
    except KeyError:
        pass
    except TypeError:          # a compiled pattern (unhashable flags never happen)
        return pattern
    if isinstance(pattern, _re.Pattern):
        return pattern
    f = int(flags) | _A if isinstance(pattern, str) else int(flags)
    rx = _cache[pattern, flags] = _re.compile(pattern, f)
    if len(_cache) > 20000:
        _cache.clear()
    return rx


def search(pattern, string, flags: int = 0):
    return compile(pattern, flags).search(string)


def match(pattern, string, flags: int = 0):
    return compile(pattern, flags).match(string)


def fullmatch(pattern, string, flags: int = 0):
    return compile(pattern, flags).fullmatch(string)


def sub(pattern, repl, string, count: int = 0, flags: int = 0):
    return compile(pattern, flags).sub(repl, string, count)


def subn(pattern, repl, string, count: int = 0, flags: int = 0):
    return compile(pattern, flags).subn(repl, string, count)


def split(pattern, string, maxsplit: int = 0, flags: int = 0):
    return compile(pattern, flags).split(string, maxsplit)


def findall(pattern, string, flags: int = 0):
    return compile(pattern, flags).findall(string)


def finditer(pattern, string, flags: int = 0):
    return compile(pattern, flags).finditer(string)
