"""`hash:NAME` tables: the memory-mapped file NAME.db built by `postier map`.

    m = open("hash", "/etc/postfix/access", fold=True, warn=log.warning)
    m.lookup("user@example.com")     # -> str, or None

The file format lives in postier._pure.hashtable (the Cython module
postier._native.hashtable reads and writes the same files; POSTIER_PURE=1
selects the twin).  It is not Berkeley DB: a .db file written by Postfix's
postmap is recognised and refused with a MapError that says to rebuild it
with `postier map hash:NAME`.

Semantics as Postfix's dict_db:
* the query key is folded to lower case unless fold=False (postmap -f);
* `open database NAME.db: No such file or directory` when it is missing;
* `database NAME.db is older than source file NAME` when the source was
  modified after the table was built (and more than 100 seconds ago);
* a table rebuilt by `postier map` is picked up by readers without a
  restart (checked with one stat() at most once a second);
* an empty value triggers the shared "empty string result" warning
  (postier.maps.result.check_result).

`build_from_source()` is what `postier map hash:NAME` runs.

Parameters read: none (callers pass fold/utf8 derived from the command line
and from smtputf8_enable).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any

from postier import log, native
from postier.errors import MapError
from postier.maps.source import fold_key, fold_text, printable, table_entries

Warn = Callable[[str], None]

SUFFIX = ".db"


def _impl() -> ModuleType:
    return native.load("hashtable")


def db_path(name: str) -> str:
    """The table file of `hash:name`."""
    return name + SUFFIX


def _check_result(map_type: str, map_name: str, key: str, value: str, warn: Warn) -> str:
    try:
        from postier.maps.result import check_result
    except ImportError:      # the shared helper is not there yet
        warn(f"table {map_type}:{map_name}: key {key}: empty string result is not allowed")
        warn(f"table {map_type}:{map_name} should return NO RESULT in case of NOT FOUND")
        return value
    return check_result(map_type, map_name, key, value, warn)


class HashMap:
    """An open `hash:` table."""

    type = "hash"
    check_interval = 1.0     # seconds between checks for a rebuilt file

    def __init__(self, name: str, *, fold: bool = True, warn: Warn | None = None,
                 utf8: bool = True, stale_warning: bool = True) -> None:
        self.name = name
        self.path = db_path(name)
        self.fold = fold
        self.utf8 = utf8
        self.warn = warn or log.warning
        self._table = _impl().HashTable(self.path)
        if stale_warning:
            self._warn_if_stale()

    def _warn_if_stale(self) -> None:
        """Postfix dict_db: warn when the source is newer than the table,
        except when the source changed in the last 100 seconds."""
        try:
            src = int(os.stat(self.name).st_mtime)
        except OSError:
            return
        if src > int(self._table.mtime) and src < time.time() - 100:
            self.warn(f"database {printable(self.path)} is older than source file "
                      f"{printable(self.name)}")

    @property
    def table(self) -> Any:
        """The underlying HashTable (native or pure)."""
        return self._table

    def lookup(self, key: str) -> str | None:
        """The value for `key` (folded unless fold=False), or None."""
        table = self._table
        table.reopen_if_changed(self.check_interval)
        if self.fold:
            key = fold_text(key, self.utf8)
        value = table.get_text(key.encode("utf-8", "surrogateescape"))
        if value == "":
            return _check_result(self.type, self.name, key, value, self.warn)
        return value

    def items(self) -> Iterator[tuple[str, str]]:
        """All entries (postmap -s order: the order they were added)."""
        for k, v in self._table.items():
            yield k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape")

    def close(self) -> None:
        self._table.close()


def open(ttype: str, name: str, *, fold: bool = True, warn: Warn | None = None,  # noqa: A001
         utf8: bool = True) -> HashMap:
    """Open `hash:name` (reads name.db).  Raises MapError."""
    if ttype != "hash":
        raise MapError(f"unsupported dictionary type: {ttype}")
    return HashMap(name, fold=fold, warn=warn, utf8=utf8)


# ------------------------------------------------------------------ building

def file_mode_for(source_mode: int | None, path: str, keep_perm: bool = True) -> int:
    """Mode of a new table file: an existing table keeps its mode (as
    Berkeley DB rewrites in place); a new one gets 0644 minus the
    group/other read bits the source lacks (postmap's umask trick, unless
    -p)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    if source_mode is None or not keep_perm:
        return 0o644
    return 0o644 & ~(0o022 | (~source_mode & 0o077))


def build(name: str, entries: Iterable[tuple[bytes, bytes]], *, fold_flag: bool,
          dup: str = "warn", warn: Warn | None = None, mode: int = 0o644,
          owner: tuple[int, int] | None = None) -> tuple[int, int]:
    """Write name.db from (key, value) pairs that are already folded as
    wanted.  Duplicates are reported as Postfix does (`NAME.db: duplicate
    entry: "key"`).  Returns (entries, duplicates)."""
    warn = warn or log.warning
    path = db_path(name)
    label = printable(path)

    def on_dup(key: bytes) -> None:
        warn(f'{label}: duplicate entry: "{printable(key)}"')

    return _impl().build(path, entries, fold_flag, dup, on_dup, mode, owner)


def source_pairs(data: bytes, label: str, *, fold: bool, utf8: bool = True,
                 warn: Warn | None = None,
                 transform: Callable[[int, bytes], bytes | None] | None = None
                 ) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) byte pairs from postmap source text, keys folded when
    `fold`.  `transform(lineno, value)` may rewrite a value or drop the
    entry by returning None (postmap -F)."""
    warn = warn or log.warning
    for lineno, key, value in table_entries(data, label, warn, utf8=utf8):
        if transform is not None:
            value = transform(lineno, value)
            if value is None:
                continue
        if fold:
            key = key.lower() if key.isascii() else fold_key(key, utf8)
        yield key, value


def build_from_source(name: str, data: bytes, *, fold: bool = True, utf8: bool = True,
                      dup: str = "warn", warn: Warn | None = None, label: str | None = None,
                      mode: int = 0o644, owner: tuple[int, int] | None = None,
                      transform: Callable[[int, bytes], bytes | None] | None = None
                      ) -> tuple[int, int]:
    """`postmap hash:name`: parse `data` (the source text) and write name.db."""
    pairs = source_pairs(data, name if label is None else label, fold=fold, utf8=utf8,
                         warn=warn, transform=transform)
    return build(name, pairs, fold_flag=fold, dup=dup, warn=warn, mode=mode, owner=owner)
