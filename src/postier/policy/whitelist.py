"""postgrey's whitelist files: whitelist_clients and whitelist_recipients.

The formats and matching rules are postgrey 1.37's (read_clients_whitelists,
read_recipients_whitelists).  In both files `#` starts a comment, blank
lines are skipped and leading/trailing blanks are removed.

whitelist_clients, one entry per line:
    /regexp/         matched against the client name, case-insensitive (no
                     blanks inside; Perl syntax, run with Python's `re`)
    a.b.c.d[/n]      an IPv4 address or network
    a.b.c            the /24 network a.b.c.0/24
    a.b              also a /24 (a.b.0.0/24): postgrey passes 24, not 16
    IPv6[/n]         anything with two colons is an IPv6 address or network
    name             the client name is `name` or ends in `.name`
Matching order: names (regexps and domains) against client_name, then
addresses against client_address.  An IPv4 client address is compared with
IPv6 networks as ::a.b.c.d (as NetAddr::IP does).  An entry that does not
parse as an address is skipped silently (as postgrey), a line with inner
blanks gets "FILE line N: doesn't look like a hostname".

whitelist_recipients, one entry per line:
    /regexp/         matched against the whole recipient, case-insensitive
    user@domain      that address, also with a +extension
    user@            that local part at any domain, also with a +extension
    domain           the domain and its subdomains
A line with inner blanks gets "FILE line N: doesn't look like an address".

A file that cannot be opened gets "can't open FILE: REASON" unless its name
ends in `.local` (postgrey's convention for optional local additions).
Warnings go to the `warn` callback (postier.log.warning by default).

Reads no main.cf parameters (postier.policy.greylist passes the file names:
greylist_whitelist_clients, greylist_whitelist_recipients).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from postier import log

_IPV4_NET = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?:/\d{1,2})?$", re.ASCII)
_IPV4_3 = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}$", re.ASCII)
_IPV4_2 = re.compile(r"^\d{1,3}\.\d{1,3}$", re.ASCII)
_IPV6 = re.compile(r"^.*:.*:.*(?:/\d{1,3})?$", re.ASCII)
_REGEXP = re.compile(r"^/(\S+)/$", re.ASCII)
_NOBLANK = re.compile(r"^\S+$", re.ASCII)
_COMMENT = re.compile(r"#.*$")

Network = tuple[int, int]      # (address as a 128-bit int, prefix length in 128-bit space)


def _strip(line: str) -> str:
    return _COMMENT.sub("", line.rstrip("\n")).strip()


def _perl_regexp(text: str) -> re.Pattern[str] | None:
    """qr{TEXT}i with Python's re (the common Perl syntax is the same)."""
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error:
        return None


def _v4_net(text: str, prefix: int | None = None) -> Network | None:
    """NetAddr::IP->new(TEXT[, PREFIX]) for a dotted IPv4 text; partial
    addresses (a.b.c, a.b) are padded with zeros."""
    addr, slash, bits = text.partition("/")
    parts = addr.split(".")
    if any(int(p) > 255 for p in parts):
        return None
    parts += ["0"] * (4 - len(parts))
    if slash:
        plen = int(bits)
        if plen > 32:
            return None
    else:
        plen = 32 if prefix is None else prefix
    value = int(ipaddress.IPv4Address(".".join(str(int(p)) for p in parts)))
    return _net(value, plen + 96)


def _v6_net(text: str) -> Network | None:
    addr, slash, bits = text.partition("/")
    try:
        value = int(ipaddress.IPv6Address(addr))
    except ValueError:
        return None
    if slash:
        if not bits.isdigit() or int(bits) > 128:
            return None
        plen = int(bits)
    else:
        plen = 128
    return _net(value, plen)


def _net(value: int, plen: int) -> Network:
    mask = ((1 << 128) - 1) ^ ((1 << (128 - plen)) - 1)
    return value & mask, plen


def address_value(addr: str) -> int | None:
    """A client address as a 128-bit int (IPv4 as ::a.b.c.d), or None."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    return int(ip)


def _within(value: int, net: Network) -> bool:
    base, plen = net
    return (value >> (128 - plen)) == (base >> (128 - plen)) if plen else True


def _read_lines(path: str, warn: Callable[[str], None]) -> Iterable[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.readlines()
    except OSError as e:
        if not path.endswith(".local"):
            warn(f"can't open {path}: {e.strerror}")
        return []
    out = []
    for n, raw in enumerate(lines, 1):
        line = _strip(raw)
        if line:
            out.append((n, line))
    return out


@dataclass
class ClientWhitelist:
    """whitelist_clients entries: name patterns and networks."""
    names: list[re.Pattern[str]] = field(default_factory=list)
    networks: list[Network] = field(default_factory=list)

    def add_line(self, line: str, where: str, warn: Callable[[str], None]) -> None:
        m = _REGEXP.match(line)
        if m:
            rx = _perl_regexp(m.group(1))
            if rx is None:
                warn(f"{where}: bad regular expression: {line}")
            else:
                self.names.append(rx)
        elif _IPV4_NET.match(line):
            net = _v4_net(line)
            if net is not None:
                self.networks.append(net)
        elif _IPV4_3.match(line) or _IPV4_2.match(line):
            net = _v4_net(line, 24)
            if net is not None:
                self.networks.append(net)
        elif _IPV6.match(line):
            net = _v6_net(line)
            if net is not None:
                self.networks.append(net)
        elif _NOBLANK.match(line):
            self.names.append(re.compile(r"(?:^|\.)" + re.escape(line) + r"$", re.IGNORECASE))
        else:
            warn(f"{where}: doesn't look like a hostname")

    def match_name(self, name: str) -> bool:
        return any(rx.search(name) for rx in self.names)

    def match_address(self, value: int | None) -> bool:
        if value is None:
            return False
        return any(_within(value, net) for net in self.networks)

    def __len__(self) -> int:
        return len(self.names) + len(self.networks)


@dataclass
class RecipientWhitelist:
    """whitelist_recipients entries, as regular expressions."""
    patterns: list[re.Pattern[str]] = field(default_factory=list)

    def add_line(self, line: str, where: str, warn: Callable[[str], None]) -> None:
        user, at, domain = line.partition("@")
        m = _REGEXP.match(line)
        if m:
            rx = _perl_regexp(m.group(1))
            if rx is None:
                warn(f"{where}: bad regular expression: {line}")
                return
            self.patterns.append(rx)
        elif not _NOBLANK.match(line):
            warn(f"{where}: doesn't look like an address")
        elif at and domain:
            self.patterns.append(re.compile(
                "^" + re.escape(user) + r"(?:\+[^@]+)?@" + re.escape(domain) + "$", re.IGNORECASE))
        elif at:
            self.patterns.append(re.compile(
                "^" + re.escape(user) + r"(?:\+[^@]+)?@", re.IGNORECASE))
        else:
            self.patterns.append(re.compile(r"(?:@|\.)" + re.escape(user) + "$", re.IGNORECASE))

    def match(self, recipient: str) -> bool:
        return any(rx.search(recipient) for rx in self.patterns)

    def __len__(self) -> int:
        return len(self.patterns)


def load_clients(paths: Iterable[str], warn: Callable[[str], None] | None = None
                 ) -> ClientWhitelist:
    """Read whitelist_clients files (missing ones warned about, see above)."""
    warn = warn or log.warning
    wl = ClientWhitelist()
    for path in paths:
        for n, line in _read_lines(path, warn):
            wl.add_line(line, f"{path} line {n}", warn)
    return wl


def load_recipients(paths: Iterable[str], warn: Callable[[str], None] | None = None
                    ) -> RecipientWhitelist:
    """Read whitelist_recipients files (missing ones warned about, see above)."""
    warn = warn or log.warning
    wl = RecipientWhitelist()
    for path in paths:
        for n, line in _read_lines(path, warn):
            wl.add_line(line, f"{path} line {n}", warn)
    return wl


def clients_from_text(text: str, name: str = "whitelist_clients",
                      warn: Callable[[str], None] | None = None) -> ClientWhitelist:
    """A client whitelist from text (tests, tools)."""
    warn = warn or log.warning
    wl = ClientWhitelist()
    for n, raw in enumerate(text.splitlines(), 1):
        line = _strip(raw)
        if line:
            wl.add_line(line, f"{name} line {n}", warn)
    return wl


def recipients_from_text(text: str, name: str = "whitelist_recipients",
                         warn: Callable[[str], None] | None = None) -> RecipientWhitelist:
    """A recipient whitelist from text (tests, tools)."""
    warn = warn or log.warning
    wl = RecipientWhitelist()
    for n, raw in enumerate(text.splitlines(), 1):
        line = _strip(raw)
        if line:
            wl.add_line(line, f"{name} line {n}", warn)
    return wl


def file_signature(paths: Iterable[str]) -> tuple:
    """(path, mtime_ns, size) of each file, to notice changes."""
    sig = []
    for p in paths:
        try:
            st = os.stat(p)
            sig.append((p, st.st_mtime_ns, st.st_size))
        except OSError:
            sig.append((p, None, None))
    return tuple(sig)
