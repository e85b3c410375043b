"""`unix:` tables: the UNIX passwd and group databases (Postfix's dict_unix).

    open_map("unix:passwd.byname").lookup("root")   # "root:x:0:0:root:/root:/bin/bash"
    open_map("unix:group.byname").lookup("mail")    # "mail:x:8:"

Semantics as Postfix 3.7's dict_unix.c (checked with `postmap -q`):

* `passwd.byname` answers `name:passwd:uid:gid:gecos:dir:shell` (getpwnam);
  `group.byname` answers `name:passwd:gid:member,member` (getgrnam);
* the key is folded to lower case unless fold=False (`postmap -f`), so
  `ROOT` finds root;
* any other map name is an error: `unknown table: unix:NAME`.

This is what the default `local_recipient_maps = proxy:unix:passwd.byname
$alias_maps` needs (the proxy: prefix is the caller's business).

Parameters read: none.
"""

from __future__ import annotations

import grp
import pwd
from collections.abc import Callable

from postier.errors import MapError

Warn = Callable[[str], None]

NAMES = ("passwd.byname", "group.byname")


class UnixTable:
    """An opened unix:passwd.byname or unix:group.byname table."""

    def __init__(self, name: str, fold: bool, warn: Warn):
        if name not in NAMES:
            raise MapError(f"unknown table: unix:{name}")
        self.type = "unix"
        self.name = name
        self.fold = fold
        self.warn = warn

    def lookup(self, key: str) -> str | None:
        if self.fold:
            key = key.lower()
        if not key or "\0" in key:
            return None
        try:
            if self.name == "passwd.byname":
                p = pwd.getpwnam(key)
                return (f"{p.pw_name}:{p.pw_passwd}:{p.pw_uid}:{p.pw_gid}:"
                        f"{p.pw_gecos}:{p.pw_dir}:{p.pw_shell}")
            g = grp.getgrnam(key)
            return f"{g.gr_name}:{g.gr_passwd}:{g.gr_gid}:{','.join(g.gr_mem)}"
        except (KeyError, UnicodeEncodeError):
            return None


def open(ttype: str, name: str, *, fold: bool = True, warn: Warn) -> UnixTable:  # noqa: A001
    """Open unix:passwd.byname or unix:group.byname."""
    del ttype
    return UnixTable(name, fold, warn)
