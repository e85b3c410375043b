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

from postier import tok822
from postier.maps.source import logical_lines, printable

Warn = Callable[[str], None]

_NONOP = ("atom", "qstring", "comment", "domlit")

Token = tuple[str, str]      # (type, text); type is a kind or the operator character


_KINDS = {tok822.ATOM: "atom", tok822.QSTRING: "qstring", tok822.COMMENT: "comment",
          tok822.DOMLIT: "domlit"}


def tok822_scan(s: str) -> list[Token]:
    """Tokenize RFC 822 text into a flat token list (tok822_scan(), see
    postier.tok822.scan): operators as (c, c)."""
    head, _ = tok822.scan(s)
    toks: list[Token] = []
    tp = head
    while tp is not None:
        kind = _KINDS.get(tp.type)
        toks.append((kind, tp.text) if kind is not None else (chr(tp.type),) * 2)
        tp = tp.next
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
