"""Lookup tables with Postfix's semantics (dict_*, postmap, postalias).

    m = open_map("regexp:/etc/postfix/header_checks")
    m.lookup("Subject: hello")        # -> str, or None when not found

Types: hash (memory-mapped table built by `postier map`), texthash, regexp,
pcre, cidr, inline, static, unix (passwd.byname, group.byname); `proxy:`
opens the table it wraps.  Each type
lives in its own module and registers an opener in TYPES.  Opened tables
are cached per process by (spec, fold).

`fold`: fold the query key to lower case for fixed-string tables (hash,
texthash, inline), as Postfix does unless `postmap -f`.  Regexp/pcre/cidr
ignore it (their own flags decide).

Bad lines are skipped with a Postfix-like warning naming file and line
(through the `warn` callback, default postier.log.warning); a table that
cannot be used at all raises postier.errors.MapError.

Parameters read: none directly (callers pass specs taken from main.cf).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol

from postier import log
from postier.errors import MapError

Warn = Callable[[str], None]


class Map(Protocol):
    """What every table type provides."""

    type: str
    name: str

    def lookup(self, key: str) -> str | None: ...


# type -> module that defines open(name, fold, warn) -> Map
TYPES: dict[str, str] = {
    "hash": "postier.maps.hash",
    "texthash": "postier.maps.texthash",
    "regexp": "postier.maps.regexp",
    "pcre": "postier.maps.regexp",
    "cidr": "postier.maps.cidr",
    "inline": "postier.maps.inline",
    "static": "postier.maps.static",
    "unix": "postier.maps.unixpw",
}

_CACHE: dict[tuple[str, bool], Map] = {}


def split_spec(spec: str) -> tuple[str, str]:
    """"type:name" -> (type, name).  A bare path is not accepted (Postfix
    would use default_database_type; callers decide that)."""
    ttype, sep, name = spec.partition(":")
    if not sep or not ttype:
        raise MapError(f'need dictionary type:name, got "{spec}"')
    return ttype, name


def open_map(spec: str, *, fold: bool = True, warn: Warn | None = None,
             cache: bool = True) -> Map:
    """Open (or return the cached) table for "type:name"."""
    key = (spec, fold)
    if cache and key in _CACHE:
        return _CACHE[key]
    ttype, name = split_spec(spec)
    if ttype == "proxy":
        # Postfix's proxymap only shares one open table between processes;
        # postier's tables are already shared (mmap, page cache): open the
        # inner table directly.
        m = open_map(name, fold=fold, warn=warn, cache=cache)
        if cache:
            _CACHE[key] = m
        return m
    modname = TYPES.get(ttype)
    if modname is None:
        raise MapError(f'unsupported dictionary type: {ttype} (in "{spec}"); '
                       f"postier supports {', '.join(sorted(TYPES))}")
    module = importlib.import_module(modname)
    m = module.open(ttype, name, fold=fold, warn=warn or log.warning)
    if cache:
        _CACHE[key] = m
    return m


def clear_cache() -> None:
    _CACHE.clear()
