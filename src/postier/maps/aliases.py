"""aliases(5) source files, as postalias(1) reads them.

    for lineno, name, value in alias_entries(data, "/etc/aliases", warn): ...

Behaviour copied from Postfix 3.7.11 postalias.c and tok822_parse.c, and
checked against the real postalias:

* logical lines, comments and continuation lines as postmap sources
  (postier.maps.source.logical_lines); non-UTF-8 lines are skipped with the
  same warning;
* each line is tokenized as RFC 822 text (atoms, "quoted strings",
  (comments), [domain literals], the operators `|%!()<>@,;:\\".[]`);
* the name is everything before the first `:` token; no name, no value or a
  comma before the colon gives `FILE, line N: need name:value pair`; an
  `@` or `%` in the name gives `FILE, line N: name must be local`;
* the name is stored in internal (unquoted) form: `"quoted name": x`
  becomes the key `quoted name`; the value is stored in external (quoted)
  form, re-spaced the way Postfix prints token lists: `a ,  b` becomes
  `a, b`, `d\\ e` becomes `"d e"`;
* after the entries postalias adds `@` -> `@` (sendmail's "database is
  complete" mark) and the NIS entries YP_LAST_MODIFIED (seconds since the
  epoch, 10 digits) and YP_MASTER_NAME ($myhostname), these two not folded.

Parameters read: none (the caller passes myhostname).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from postier.maps.source import logical_lines, printable

Warn = Callable[[str], None]

OPCHARS = '|%!()<>@,;:\\".[]'
_SPACE = " \t\r\n"
_NONOP = ("atom", "qstring", "comment", "domlit")

Token = tuple[str, str]      # (type, text); type is a kind or the operator character


def _collect(s: str, i: int, stop: str, stop_ws: bool) -> tuple[str, int]:
    """Postfix's COLLECT(): text up to a character in `stop` (or unquoted
    whitespace when stop_ws); backslash quotes the next character; quoted
    whitespace becomes a space."""
    out: list[str] = []
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 1
            if i >= n:
                break
            c = s[i]
        elif c in stop or (stop_ws and c in _SPACE):
            break
        out.append(" " if c in _SPACE else c)
        i += 1
    return "".join(out), i


def _comment(s: str, i: int) -> tuple[str, int]:
    """A (possibly nested) comment, kept in external form with its parens."""
    out = ["("]
    level = 1
    n = len(s)
    while i < n:
        c = s[i]
        out.append(c)
        i += 1
        if c == "(":
            level += 1
        elif c == ")":
            level -= 1
            if level == 0:
                break
        elif c == "\\":
            if i >= n:
                break
            out.append(s[i])
            i += 1
    return "".join(out), i


def tok822_scan(s: str) -> list[Token]:
    """Tokenize RFC 822 text into a flat token list (tok822_scan())."""
    toks: list[Token] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        i += 1
        if c in _SPACE:
            continue
        if c == "(":
            text, i = _comment(s, i)
            toks.append(("comment", text))
        elif c == "[":
            text, i = _collect(s, i, "]", False)
            if i < n:
                i += 1
            toks.append(("domlit", text))
        elif c == '"':
            text, i = _collect(s, i, '"', False)
            if i < n:
                i += 1
            toks.append(("qstring", text))
        elif c != "\\" and c in OPCHARS:
            toks.append((c, c))
        else:
            text, i = _collect(s, i - 1, OPCHARS, True)
            kind = "atom"
            for ch in text:
                if ch == " " or ord(ch) < 32 or ord(ch) == 127 or ch in OPCHARS:
                    kind = "qstring"
                    break
            toks.append((kind, text))
    return toks


def _append_space(tok: Token, nxt: Token | None) -> bool:
    if nxt is None:
        return False
    if tok[0] == "," or nxt[0] == "<":
        return True
    return tok[0] in _NONOP and nxt[0] in _NONOP


def _quoted(text: str, specials: str) -> str:
    return "".join("\\" + c if c in specials else c for c in text)


def externalize(toks: list[Token]) -> str:
    """Token list to external (quoted) form (tok822_externalize())."""
    out: list[str] = []
    for i, tok in enumerate(toks):
        kind, text = tok
        if kind == ",":
            out.append(", ")
            continue
        if kind in ("atom", "comment"):
            out.append(text)
        elif kind == "qstring":
            out.append('"' + _quoted(text, '"\\\r\n') + '"')
        elif kind == "domlit":
            out.append("[" + _quoted(text, "\\\r\n") + "]")
        else:
            out.append(kind)
        if _append_space(tok, toks[i + 1] if i + 1 < len(toks) else None):
            out.append(" ")
    return "".join(out)


def internalize(toks: list[Token]) -> str:
    """Token list to internal (unquoted) form (tok822_internalize())."""
    out: list[str] = []
    for i, tok in enumerate(toks):
        kind, text = tok
        if kind in ("atom", "comment", "qstring"):
            out.append(text)
        elif kind == "domlit":
            out.append("[" + text + "]")
        else:
            out.append(kind)
        if _append_space(tok, toks[i + 1] if i + 1 < len(toks) else None):
            out.append(" ")
    return "".join(out)


def parse_alias_line(text: str) -> tuple[str, str] | str | None:
    """(name, value) for one logical line; a warning text ("need name:value
    pair", "name must be local") for a bad line; None for no tokens."""
    toks = tok822_scan(text)
    if not toks:
        return None
    colon = next((i for i, t in enumerate(toks) if t[0] == ":"), None)
    if colon is None or colon == 0 or colon == len(toks) - 1:
        return "need name:value pair"
    head = toks[:colon]
    if any(t[0] == "," for t in head):
        return "need name:value pair"
    if any(t[0] in ("@", "%") for t in head):
        return "name must be local"
    return internalize(head), externalize(toks[colon + 1:])


def alias_entries(data: bytes, label: str, warn: Warn, *, utf8: bool = True
                  ) -> Iterator[tuple[int, str, str]]:
    """(line number, name, value) for every valid entry of an aliases(5)
    file; names are not folded.  Bad lines are skipped with a warning."""
    where = printable(label)
    for lineno, line in logical_lines(data, label, warn):
        if b"\0" in line:
            line = line.split(b"\0", 1)[0]
        if utf8 and not line.isascii():
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                warn(f'{where}, line {lineno}: non-UTF-8 input "{printable(line)}"'
                     " -- ignoring this line")
                continue
        r = parse_alias_line(line.decode("utf-8", "surrogateescape"))
        if r is None:
            continue
        if isinstance(r, str):
            warn(f"{where}, line {lineno}: {r}")
            continue
        yield lineno, r[0], r[1]


def trailer(myhostname: str, now: float | None = None) -> list[tuple[str, str]]:
    """The entries postalias appends: `@`, YP_LAST_MODIFIED, YP_MASTER_NAME."""
    stamp = f"{int(time.time() if now is None else now):010d}"
    return [("@", "@"), ("YP_LAST_MODIFIED", stamp), ("YP_MASTER_NAME", myhostname)]


def merged_entries(data: bytes, label: str, warn: Warn, *, fold: bool = True,
                   utf8: bool = True, dup: str = "warn", myhostname: str = "localhost",
                   existing: Iterable[tuple[bytes, bytes]] = (), update: bool = False,
                   db_label: str = "", now: float | None = None
                   ) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs postalias writes: `existing` entries (for -i),
    the source entries (names folded unless fold=False; duplicates handled
    per `dup` and reported as `DB: duplicate entry: "name"`), then the
    trailer (which replaces older trailer entries when `update`)."""
    from postier.maps.source import fold_key
    table: dict[bytes, bytes] = dict(existing)
    where = printable(db_label or label)

    def put(key: bytes, value: bytes, policy: str) -> None:
        if key in table:
            if policy == "replace":
                table[key] = value
            elif policy == "warn":
                warn(f'{where}: duplicate entry: "{printable(key)}"')
            return
        table[key] = value

    for _lineno, name, value in alias_entries(data, label, warn, utf8=utf8):
        key = name.encode("utf-8", "surrogateescape")
        if fold:
            key = fold_key(key, utf8)
        put(key, value.encode("utf-8", "surrogateescape"), dup)
    tail = trailer(myhostname, now)
    at_key = b"@"
    put(at_key, b"@", "replace" if update else dup)
    for name, value in tail[1:]:        # NIS entries: never folded
        put(name.encode(), value.encode("utf-8", "surrogateescape"),
            "replace" if update else dup)
    return list(table.items())
