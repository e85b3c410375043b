"""Postfix lookup-table source files: the postmap(1) INPUT FILE FORMAT.

    for lineno, key, value in table_entries(data, "path", warn): ...

Used by `postier map` (hash:), texthash: and, through `logical_lines`, by
the aliases(5) reader.  Behaviour copied from Postfix 3.7.11 (readllines(),
postmap.c, dict_thash.c) and checked against the real postmap:

* A logical line starts with non-whitespace text; a line that starts with
  whitespace continues it (joined as is: the newline goes, the leading
  whitespace stays).  Empty lines, whitespace-only lines and lines whose
  first non-whitespace character is `#` are skipped and do NOT end a
  logical line.  Text that starts with whitespace without a preceding line
  gives `FILE: logical line must not start with whitespace: "..."`.
* The key ends at the first whitespace outside double quotes; a backslash
  escapes the next character.  Quotes stay part of the key (postmap keeps
  `"quoted key"` with its quotes).  An odd number of quotes gives
  `FILE, line N: unbalanced '"' in '...' -- ignoring this line`.
* The value is trimmed of surrounding whitespace (\\r included, so CRLF
  files work).  A missing key or value gives `FILE, line N: expected format:
  key whitespace value` (texthash adds ` -- ignoring this line`).  A key
  ending in `:` gives the "is this an alias file?" warning but is kept.
* With UTF-8 enabled (Postfix's smtputf8_enable = yes default), a line that
  is not valid UTF-8 is skipped: `FILE, line N: non-UTF-8 input "..." --
  ignoring this line`.
* Line numbers in warnings are those of the first line of the logical line.
* Keys are folded (`fold_key`) by the consumer, not here: Postfix folds with
  full Unicode case folding (ICU; `str.casefold()`), ASCII-only with -u.

Reads no main.cf parameters (callers pass utf8=False for `postmap -u`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from postier.errors import MapError

Warn = Callable[[str], None]

WS = b" \t\n\r\x0b\x0c"
_WS_INTS = frozenset(WS)
_SKIP_START = frozenset(WS + b"#")


def printable(text: bytes | str) -> str:
    """Text fit for a diagnostic, as Postfix's printable(): non-printable
    ASCII (tabs included) and bytes that do not start a UTF-8 sequence
    become '?'."""
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if 32 <= c < 127:
            out.append(c)
            i += 1
        elif 194 <= c <= 254 and i + 1 < n and 128 <= text[i + 1] < 192:
            j = i + 2
            while j < n and 128 <= text[j] < 192:
                j += 1
            out += text[i:j]
            i = j
        else:
            out.append(63)
            i += 1
    return out.decode("utf-8", "replace")


def fold_key(key: bytes, utf8: bool = True) -> bytes:
    """Fold a table key to lower case as Postfix does (full Unicode case
    folding for UTF-8 text, ASCII-only otherwise or when utf8 is off)."""
    if key.isascii() or not utf8:
        return key.lower()
    try:
        return key.decode("utf-8").casefold().encode("utf-8")
    except UnicodeDecodeError:
        return key.lower()


def fold_text(key: str, utf8: bool = True) -> str:
    """fold_key() for a str key (surrogate escapes are folded ASCII-only)."""
    if key.isascii():
        return key.lower()
    if utf8:
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return key.casefold()
    return key.encode("utf-8", "surrogateescape").lower().decode("utf-8", "surrogateescape")


def read_source(path: str) -> bytes:
    """The bytes of a table source file; MapError `open PATH: reason`."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise MapError(f"open {path}: {e.strerror}") from None


def logical_lines(data: bytes, label: str, warn: Warn) -> Iterator[tuple[int, bytes]]:
    """(first line number, logical line) pairs, as Postfix's readllines()."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    buf: bytes | None = None
    first = 0
    skip = _SKIP_START
    for lineno, line in enumerate(lines, 1):
        if not line or line[0] in skip:
            rest = line.lstrip(WS)
            if not rest or rest[0] == 35:      # blank, or a comment
                continue
            if buf is None:                    # text starting with whitespace
                buf, first = line, lineno
            else:
                buf += line
            continue
        if buf is not None:
            if buf[0] in _WS_INTS:
                _warn_leading(buf, label, warn)
            else:
                yield first, buf
        buf, first = line, lineno
    if buf is not None:
        if buf[0] in _WS_INTS:
            _warn_leading(buf, label, warn)
        else:
            yield first, buf


def _warn_leading(buf: bytes, label: str, warn: Warn) -> None:
    text = buf.split(b"\0", 1)[0]
    more = "..." if len(buf) > 30 else ""
    warn(f'{printable(label)}: logical line must not start with whitespace: '
         f'"{printable(text[:30])}{more}"')


def split_entry(line: bytes) -> tuple[bytes, bytes] | None:
    """Split a logical line into (key, value) as postmap does; None when a
    double quote is left open.  Either part may come back empty."""
    if b'"' not in line and b"\\" not in line:
        parts = line.split(None, 1)
        if not parts:
            return b"", b""
        if len(parts) == 1:
            return parts[0], b""
        return parts[0], parts[1].rstrip(WS)
    i, n = 0, len(line)
    in_quotes = False
    ws = _WS_INTS
    while i < n:
        c = line[i]
        if c == 92:                 # backslash: skip the next character
            i += 1
            if i >= n:
                break
        elif c in ws:
            if not in_quotes:
                break
        elif c == 34:
            in_quotes = not in_quotes
        i += 1
    if in_quotes:
        return None
    return line[:i], line[i + 1:].strip(WS)


def table_entries(data: bytes, label: str, warn: Warn, *, utf8: bool = True,
                  texthash: bool = False) -> Iterator[tuple[int, bytes, bytes]]:
    """(line number, key, value) for every valid entry of a postmap(1)
    source, warning about bad lines (worded as postmap, or as dict_thash
    with texthash=True).  Keys are not folded."""
    # logical_lines() and the entry parser fused into one loop: this is the
    # bulk of `postier map` build time for big tables.
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    skip = _SKIP_START
    buf: bytes | None = None
    first = 0
    lineno = 0
    for line in lines:
        lineno += 1
        if not line or line[0] in skip:
            rest = line.lstrip(WS)
            if not rest or rest[0] == 35:      # blank, or a comment
                continue
            if buf is None:
                buf, first = line, lineno
            else:
                buf += line
            continue
        if buf is not None:
            if (b'"' not in buf and b"\\" not in buf and b"\0" not in buf
                    and (not utf8 or buf.isascii())):
                parts = buf.split(None, 1)
                if len(parts) == 2 and parts[0][-1] != 58:
                    yield first, parts[0], parts[1].rstrip(WS)
                    buf, first = line, lineno
                    continue
            entry = _entry(buf, first, label, warn, utf8, texthash)
            if entry is not None:
                yield entry
        buf, first = line, lineno
    if buf is not None:
        entry = _entry(buf, first, label, warn, utf8, texthash)
        if entry is not None:
            yield entry


def _entry(line: bytes, lineno: int, label: str, warn: Warn, utf8: bool,
           texthash: bool) -> tuple[int, bytes, bytes] | None:
    """One logical line (the general case, with every warning)."""
    if line[0] in _WS_INTS:
        _warn_leading(line, label, warn)
        return None
    where = printable(label)
    if b"\0" in line:
        line = line.split(b"\0", 1)[0]
    if utf8 and not line.isascii():
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            warn(f'{where}, line {lineno}: non-UTF-8 input "{printable(line)}"'
                 " -- ignoring this line")
            return None
    kv = split_entry(line)
    if kv is None:
        warn(f"{where}, line {lineno}: unbalanced '\"' in '{printable(line)}'"
             " -- ignoring this line")
        return None
    key, value = kv
    if not key or not value:
        warn(f"{where}, line {lineno}: expected format: key whitespace value"
             + (" -- ignoring this line" if texthash else ""))
        return None
    if key[-1] == 58:   # ':'
        warn(f'{where}, line {lineno}: record is in "key: value" format;'
             " is this an alias file?")
    return lineno, key, value
