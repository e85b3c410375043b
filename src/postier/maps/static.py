"""static: tables, with Postfix's semantics (dict_static.c).

    static:REJECT                  every lookup returns "REJECT"
    static:{ 550 5.7.1 go away }   braces allow whitespace (stripped at the ends)

The key is ignored, so there is no folding.  `static:{}` returns the empty
string (and postmap warns about it, see postier.maps.result).  A brace
syntax error is fatal (MapError): `bad static:name syntax: missing '}' in "{a"`.

Parameters read: none.
"""

from __future__ import annotations

from collections.abc import Callable

from postier.errors import MapError
from postier.maps.inline import extpar
from postier.maps.result import check_result

Warn = Callable[[str], None]


class StaticTable:
    """An opened static: table."""

    def __init__(self, name: str, warn: Warn):
        self.type = "static"
        self.name = name
        self.warn = warn
        if not name:
            raise MapError('open dictionary: expecting "type:name" form instead of "static:"')
        value = name
        if name.startswith("{"):
            value, err = extpar(name)
            if err is not None:
                raise MapError(f"bad static:name syntax: {err}")
        self.value = value

    def lookup(self, key: str) -> str | None:
        return check_result(self.type, self.name, key, self.value, self.warn)


def open(ttype: str, name: str, *, fold: bool = True, warn: Warn) -> StaticTable:  # noqa: A001
    """Open static:value or static:{value}."""
    del ttype, fold
    return StaticTable(name, warn)
