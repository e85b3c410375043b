"""`texthash:FILE` tables: the postmap(1) source file read into a dict at open.

Postfix dict_thash semantics (checked against postmap 3.7.11):
* same source format and warnings as postmap (postier.maps.source), except
  that a line without a value says `... expected format: key whitespace
  value -- ignoring this line`;
* keys are folded at load time and at lookup unless fold=False (postmap -f);
* duplicates: `FILE, line N: duplicate entry: "KEY"` naming the key as
  written; the first entry wins (dup="replace": the last wins,
  dup="ignore": silently the first);
* a missing file: `open database FILE: No such file or directory`.

Unlike Postfix (which re-reads a file modified in the last 2 seconds and
otherwise never), an open table reloads itself when the file changes
(checked with one stat() at most once a second).

Parameters read: none (callers pass fold/utf8).
"""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Callable, Iterator

from postier import log
from postier.errors import MapError
from postier.maps.source import fold_key, fold_text, printable, table_entries

Warn = Callable[[str], None]


class TextHash:
    """An open `texthash:` table."""

    type = "texthash"
    check_interval = 1.0     # seconds between checks for a changed file

    def __init__(self, name: str, *, fold: bool = True, warn: Warn | None = None,
                 utf8: bool = True, dup: str = "warn") -> None:
        self.name = name
        self.fold = fold
        self.utf8 = utf8
        self.dup = dup
        self.warn = warn or log.warning
        self._checked = time.monotonic()
        self._load()

    def _load(self) -> None:
        name = self.name
        try:
            with builtins.open(name, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except OSError as e:
            raise MapError(f"open database {name}: {e.strerror}") from None
        table: dict[str, str] = {}
        warn, fold, utf8, dup = self.warn, self.fold, self.utf8, self.dup
        where = printable(name)
        for lineno, key, value in table_entries(data, name, warn, utf8=utf8, texthash=True):
            k = fold_key(key, utf8) if fold else key
            ks = k.decode("utf-8", "surrogateescape")
            vs = value.decode("utf-8", "surrogateescape")
            if ks in table:
                if dup == "replace":
                    table[ks] = vs
                elif dup == "warn":
                    warn(f'{where}, line {lineno}: duplicate entry: "{printable(key)}"')
                continue
            table[ks] = vs
        self._table = table
        self._ident = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def reopen_if_changed(self, interval: float = 1.0) -> bool:
        """Reload when the file changed (checked at most once per interval)."""
        now = time.monotonic()
        if now - self._checked < interval:
            return False
        self._checked = now
        try:
            st = os.stat(self.name)
        except OSError:
            return False
        if (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size) == self._ident:
            return False
        self._load()
        return True

    def lookup(self, key: str) -> str | None:
        """The value for `key` (folded unless fold=False), or None."""
        self.reopen_if_changed(self.check_interval)
        if self.fold:
            key = fold_text(key, self.utf8)
        return self._table.get(key)

    def items(self) -> Iterator[tuple[str, str]]:
        """All entries, in file order."""
        return iter(list(self._table.items()))

    def __len__(self) -> int:
        return len(self._table)

    def close(self) -> None:
        self._table = {}


def open(ttype: str, name: str, *, fold: bool = True, warn: Warn | None = None,  # noqa: A001
         utf8: bool = True, dup: str = "warn") -> TextHash:
    """Open `texthash:name`.  Raises MapError when the file cannot be read."""
    if ttype != "texthash":
        raise MapError(f"unsupported dictionary type: {ttype}")
    return TextHash(name, fold=fold, warn=warn, utf8=utf8, dup=dup)
