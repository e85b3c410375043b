"""The hosts file (/etc/hosts), as the system's "files" name service reads it.

Postfix looks up the SMTP client's name with getnameinfo() and confirms it
with getaddrinfo(), i.e. through NSS, where /etc/hosts comes before DNS
("hosts: files dns").  postier's peer name lookup (postier.dns.peer) does
the same: this file first, then the DNS resolver.  So 127.0.0.1 is
`localhost` without any DNS traffic, exactly as with Postfix.

    hosts = HostsFile("/etc/hosts")
    hosts.name_for("127.0.0.1")        # "localhost" (the first name on the line)
    hosts.addrs_for("localhost")       # ["127.0.0.1", "::1"] in file order

The file is re-read when its mtime changes (checked at most once a second).
A missing or unreadable file is an empty table.

Parameters read: none.
"""

from __future__ import annotations

import ipaddress
import os
import time


def _canon(addr: str) -> str | None:
    try:
        return str(ipaddress.ip_address(addr.split("%")[0]))
    except ValueError:
        return None


class HostsFile:
    def __init__(self, path: str = "/etc/hosts"):
        self.path = path
        self._mtime: float | None = None
        self._checked = 0.0
        self._by_addr: dict[str, str] = {}
        self._by_name: dict[str, list[str]] = {}

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._mtime is not None and now - self._checked < 1.0:
            return
        self._checked = now
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError:
            self._by_addr, self._by_name, self._mtime = {}, {}, -1.0
            return
        if mtime == self._mtime:
            return
        self._mtime = mtime
        by_addr: dict[str, str] = {}
        by_name: dict[str, list[str]] = {}
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    fields = line.split("#", 1)[0].split()
                    if len(fields) < 2:
                        continue
                    addr = _canon(fields[0])
                    if addr is None:
                        continue
                    by_addr.setdefault(addr, fields[1])
                    for name in fields[1:]:
                        addrs = by_name.setdefault(name.lower().rstrip("."), [])
                        if addr not in addrs:
                            addrs.append(addr)
        except OSError:
            pass
        self._by_addr, self._by_name = by_addr, by_name

    def name_for(self, addr: str) -> str | None:
        """The canonical (first) name listed for `addr`, or None."""
        self._refresh()
        key = _canon(addr)
        return self._by_addr.get(key) if key else None

    def addrs_for(self, name: str) -> list[str]:
        """The addresses listed for `name` (case-insensitive), file order."""
        self._refresh()
        return list(self._by_name.get(name.lower().rstrip("."), ()))


#: The system's hosts file, shared by the process.
SYSTEM_HOSTS = HostsFile()
