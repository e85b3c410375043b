"""inline: tables, with Postfix's semantics (dict_inline.c).

    inline:{ user@example.com=OK, { key = value with spaces }, empty= }

Entries are separated by commas or whitespace; an entry in braces may have
whitespace around `=` and in its value (the braces and surrounding blanks
are stripped).  A later duplicate replaces an earlier one.  Keys are folded
(Unicode case folding, as Postfix does with SMTPUTF8 on) unless fold=False
(`postmap -f`).  Syntax errors are fatal (MapError), worded like Postfix:

    missing '=' after attribute name: "inline:{ a=b, c = d }"; need "inline:{name=value...}"

Parameters read: none.
"""

from __future__ import annotations

from collections.abc import Callable

from postier.errors import MapError
from postier.maps.result import check_result

Warn = Callable[[str], None]

_SEP = ", \t\r\n"
_SPACE = " \t\n\v\f\r"


def balpar(s: str, open_c: str = "{", close_c: str = "}") -> int:
    """Length of the balanced group at the start of s (0: none)."""
    if not s.startswith(open_c):
        return 0
    level = 1
    for i in range(1, len(s)):
        ch = s[i]
        if ch == close_c:
            level -= 1
            if level == 0:
                return i + 1
        elif ch == open_c:
            level += 1
    return 0


def extpar(s: str) -> tuple[str, str | None]:
    """Postfix extpar(..., EXTPAR_FLAG_STRIP): strip {} and blanks -> (text, error)."""
    n = balpar(s)
    err = None
    if n == 0:
        err = f"missing '}}' in \"{s}\""
        inner = s[1:]
    else:
        if n != len(s):
            err = f"syntax error after '}}' in \"{s}\""
        inner = s[1:n - 1]
    return inner.strip(_SPACE), err


def _tokens(s: str):
    """mystrtokq(): separators outside braces split tokens."""
    i = 0
    n = len(s)
    while True:
        while i < n and s[i] in _SEP:
            i += 1
        if i >= n:
            return
        start = i
        level = 0
        while i < n:
            ch = s[i]
            if ch == "{":
                level += 1
            elif level > 0 and ch == "}":
                level -= 1
            elif level == 0 and ch in _SEP:
                break
            i += 1
        yield s[start:i]
        i += 1


def split_nameval(s: str) -> tuple[str, str]:
    """Postfix split_nameval(): "name = value" -> (name, value); ValueError(text)."""
    i = 0
    n = len(s)
    while i < n and s[i] in _SPACE:
        i += 1
    j = i
    while j < n and s[j] not in _SPACE and s[j] != "=":
        j += 1
    k = j
    while k < n and s[k] in _SPACE:
        k += 1
    if k >= n or s[k] != "=":
        raise ValueError("missing '=' after attribute name")
    return s[i:j], s[k + 1:].strip(_SPACE)


class InlineTable:
    """An opened inline: table."""

    def __init__(self, name: str, fold: bool, warn: Warn):
        self.type = "inline"
        self.name = name
        self.warn = warn
        self.fold = fold
        need = f'"inline:{name}"; need "inline:{{name=value...}}"'
        if not name:
            raise MapError('open dictionary: expecting "type:name" form instead of "inline:"')
        n = balpar(name)
        if n == 0 or n != len(name) or not name[1:n - 1]:
            raise MapError(f"bad syntax: {need}")
        table: dict[str, str] = {}
        for tok in _tokens(name[1:n - 1]):
            err = None
            if tok.startswith("{"):
                tok, err = extpar(tok)
            if err is None:
                try:
                    key, value = split_nameval(tok)
                except ValueError as e:
                    err = str(e)
            if err is not None:
                raise MapError(f"{err}: {need}")
            table[key.casefold() if fold else key] = value
        if not table:
            raise MapError(f"empty table: {need}")
        self._table = table

    def lookup(self, key: str) -> str | None:
        value = self._table.get(key.casefold() if self.fold else key)
        return check_result(self.type, self.name, key, value, self.warn)


def open(ttype: str, name: str, *, fold: bool = True, warn: Warn) -> InlineTable:  # noqa: A001
    """Open inline:{...} (name is the text after "inline:")."""
    del ttype
    return InlineTable(name, fold, warn)
