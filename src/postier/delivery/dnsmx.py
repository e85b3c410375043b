"""MX / A / AAAA resolution for the smtp and lmtp clients (Postfix's smtp_addr.c).

The lookups go through the process's resolver, postier.dns (one cached,
coalescing aiodns resolver per process, shared with smtpd's DNS checks);
the smtp client only calls `domain_addrs()` and `host_addrs()`.  `_query()`
still accepts a bare aiodns resolver too.

What it does, as Postfix 3.7's smtp(8) does:

* `domain_addrs(name)`: MX lookup; the MX hosts sorted by preference (equal
  preferences in random order when smtp_randomize_addresses = yes), each
  host's A/AAAA records looked up (inet_protocols decides which); no MX
  record -> the name's own address records (RFC 5321 implicit MX); a null
  MX (RFC 7505) -> "Domain X does not accept mail (nullMX)".  When this
  host is one of the MX hosts (loop detection, only when the caller asks:
  Postfix does it for port 25), every MX host with the same or a worse
  preference is dropped; if nothing is left: "mail for X loops back to
  myself" (5.4.6), or "unable to find primary relay for X" (4.4.4) when the
  better MX hosts did not resolve.
* `host_addrs(name)`: a host name or a numerical address (the `[host]`
  nexthop form, relayhost, LMTP): address records only.
* smtp_host_lookup = dns, native (getaddrinfo, i.e. /etc/hosts and NSS) or
  both; smtp_dns_support_level = disabled (or disable_dns_lookups = yes)
  means native lookups and no MX lookup (the caller checks that).
* smtp_address_preference (any, ipv4, ipv6), smtp_balance_inet_protocols and
  smtp_mx_address_limit, as Postfix orders and trims the address list.

Errors raise `LookupFailure(dsn, text)` carrying Postfix's texts, e.g.
`Host or domain name not found. Name service error for name=x.test type=A:
Host not found` (5.4.4) or `... Host not found, try again` (4.4.3).  A soft
(4.x.x) error from one MX host dominates a hard one from another, as in
Postfix.

Parameters read (by the caller, passed in `LookupOptions`): inet_protocols,
smtp_host_lookup, smtp_address_preference, smtp_randomize_addresses,
smtp_balance_inet_protocols, smtp_mx_address_limit, inet_interfaces,
proxy_interfaces (own addresses for loop detection), dns_nameservers
(postier-only: the DNS servers to ask, e.g. `127.0.0.1:5353`; empty = the
system's /etc/resolv.conf).
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from postier import dns as _dns
from postier.dns import parse_nameservers

__all__ = [
    "Address", "LookupFailure", "LookupOptions", "balance_inet_protocols", "domain_addrs",
    "get_resolver", "host_addrs", "order_addresses", "parse_nameservers", "sort_mx",
    "truncate_self",
]

# h_errno texts (Postfix dns_strerror.c)
HOST_NOT_FOUND = "Host not found"
TRY_AGAIN = "Host not found, try again"
NO_RECOVERY = "Non-recoverable error"
NO_DATA = "Host found but no data record of requested type"

# lookup outcomes (Postfix dns.h)
OK, NOTFOUND, RETRY, FAIL, INVAL, NULLMX = "ok", "notfound", "retry", "fail", "inval", "nullmx"


class LookupFailure(Exception):
    """No usable address: `dsn` (e.g. "5.4.4") and Postfix's `text`."""

    def __init__(self, dsn: str, text: str):
        super().__init__(text)
        self.dsn = dsn
        self.text = text

    @property
    def soft(self) -> bool:
        return self.dsn.startswith("4")


@dataclass(frozen=True, slots=True)
class Address:
    """One server address to try: `host[addr]:port`, MX preference `pref`."""

    host: str
    addr: str
    family: int
    pref: int = 0
    port: int = 25

    @property
    def namaddr(self) -> str:
        return f"{self.host}[{self.addr}]"


@dataclass
class LookupOptions:
    """What the lookups may use; built once per configuration by the client."""

    dns: bool = True                       # smtp_host_lookup has dns (and DNS is enabled)
    native: bool = False                   # smtp_host_lookup has native, or DNS is disabled
    families: tuple[int, ...] = (socket.AF_INET, socket.AF_INET6)   # inet_protocols order
    preference: str = "any"                # smtp_address_preference
    randomize: bool = True                 # smtp_randomize_addresses
    balance: bool = True                   # smtp_balance_inet_protocols
    address_limit: int = 5                 # smtp_mx_address_limit (0: none)
    nameservers: tuple[str, ...] = ()      # dns_nameservers
    own_addresses: frozenset[str] = field(default_factory=frozenset)   # for loop detection
    rng: random.Random | None = None       # tests pass a seeded one


class _Why:
    """Postfix's DSN_BUF use in smtp_addr.c: the last text, a soft status dominates."""

    def __init__(self) -> None:
        self.dsn = ""
        self.text = ""

    def set(self, hard: str, soft: str, text: str) -> None:
        self.dsn = soft if self.dsn.startswith("4") else hard
        self.text = text

    def failure(self) -> LookupFailure:
        return LookupFailure(self.dsn or "4.4.3", self.text or "server unavailable or unable to receive mail")


# --------------------------------------------------------------------------- resolver

def close_resolvers() -> None:
    """Release every resolver of the process registry (postier.dns)."""
    _dns.close_resolvers()


def get_resolver(nameservers: Sequence[str] = ()) -> Any:
    """The process's postier.dns resolver for these nameservers (created on
    first use; c-ares channels follow the running event loop)."""
    return _dns.get_resolver(nameservers=tuple(nameservers))


_QTYPE_CODE = {"A": 1, "MX": 15, "AAAA": 28}


async def _query(resolver: Any, name: str, qtype: str) -> tuple[str, list, str]:
    """(status, records, h_errno text).  MX records are (pref, host); A/AAAA
    records are address strings."""
    if isinstance(resolver, _dns.Resolver):
        ans = await resolver.query(name, qtype)
        if ans.status == OK:
            return OK, list(ans.records), ""
        if ans.status == NULLMX:
            return NULLMX, [], ""
        return ans.status, [], ans.herror
    import aiodns
    import pycares

    try:
        if hasattr(resolver, "query_dns"):
            res = await resolver.query_dns(name, qtype)
            code = _QTYPE_CODE[qtype]
            recs = []
            for rr in res.answer:
                if rr.type != code:
                    continue
                d = rr.data
                if qtype == "MX":
                    recs.append((int(d.priority), str(d.exchange)))
                else:
                    recs.append(str(d.addr))
        else:  # aiodns 3
            res = await resolver.query(name, qtype)
            if qtype == "MX":
                recs = [(int(r.priority), str(r.host)) for r in res]
            else:
                recs = [str(r.host) for r in res]
    except aiodns.error.DNSError as e:
        code = e.args[0] if e.args else None
        E = pycares.errno
        if code == E.ARES_ENOTFOUND:
            return NOTFOUND, [], HOST_NOT_FOUND
        if code == E.ARES_ENODATA:
            return NOTFOUND, [], NO_DATA
        if code in (E.ARES_EFORMERR, E.ARES_ENOTIMP, E.ARES_EBADRESP):
            return FAIL, [], NO_RECOVERY
        if code == E.ARES_EBADNAME:
            return INVAL, [], HOST_NOT_FOUND
        return RETRY, [], TRY_AGAIN
    if not recs:
        return NOTFOUND, [], NO_DATA
    if qtype == "MX" and len(recs) == 1 and recs[0][1].rstrip(".") == "":
        return NULLMX, [], ""
    return OK, recs, ""


async def _getaddrinfo(name: str, family: int) -> list:
    """The native name service (getaddrinfo: /etc/hosts, NSS)."""
    loop = asyncio.get_running_loop()
    return await loop.getaddrinfo(name, None, family=family, type=socket.SOCK_STREAM)


def _not_found_text(name: str, qtype: str, err: str) -> str:
    return (f"Host or domain name not found. Name service error for name={name} "
            f"type={qtype}: {err}")


# --------------------------------------------------------------------------- pure logic

def sort_mx(records: Iterable[tuple[int, str]], rng: random.Random | None = None,
            randomize: bool = True) -> list[tuple[int, str]]:
    """MX records in preference order, equal preferences in random order."""
    recs = list(records)
    if randomize:
        (rng or random).shuffle(recs)
    recs.sort(key=lambda r: r[0])
    return recs


_ADDR_PREF_KEY = {
    "any": lambda a: a.pref,
    "ipv4": lambda a: (a.pref, a.family != socket.AF_INET),
    "ipv6": lambda a: (a.pref, a.family != socket.AF_INET6),
}


def order_addresses(addrs: list[Address], preference: str = "any", randomize: bool = True,
                    rng: random.Random | None = None) -> list[Address]:
    """Postfix's shuffle-then-sort: by MX preference, then (smtp_address_preference)
    by address family; equal keys in random order when `randomize`."""
    out = list(addrs)
    if len(out) > 1:
        if randomize:
            (rng or random).shuffle(out)
        out.sort(key=_ADDR_PREF_KEY.get(preference, _ADDR_PREF_KEY["any"]))
    return out


def truncate_self(addrs: list[Address], own: Iterable[str]) -> tuple[list[Address], Address | None]:
    """Drop this host's own address and everything at or after its MX
    preference (addrs in MX order).  Returns (kept, self_address_or_None)."""
    own_set = {_canon(a) for a in own}
    for a in addrs:
        if _canon(a.addr) in own_set:
            return [x for x in addrs if x.pref < a.pref], a
    return addrs, None


def _canon(addr: str) -> str:
    try:
        return str(ipaddress.ip_address(addr.split("%")[0]))
    except ValueError:
        return addr


def balance_inet_protocols(addrs: list[Address], limit: int) -> list[Address]:
    """smtp_balance_inet_protocols: keep both address families represented
    when the list is longer than `limit` (Postfix's three regions)."""
    v4 = sum(1 for a in addrs if a.family == socket.AF_INET)
    v6 = len(addrs) - v4
    if not (v4 and v6 and v4 + v6 > limit):
        return addrs
    if v6 <= limit // 2:
        t6 = v6
        t4 = limit - t6
    elif v4 <= limit // 2:
        t4 = v4
        t6 = limit - t4
    else:
        t4 = (limit + (addrs[0].family == socket.AF_INET)) // 2
        t6 = limit - t4
    out = []
    for a in addrs:
        if a.family == socket.AF_INET:
            if t4 > 0:
                out.append(a)
                t4 -= 1
        elif t6 > 0:
            out.append(a)
            t6 -= 1
    return out


def _literal(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = name[5:] if name[:5].lower() == "ipv6:" else name
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


# --------------------------------------------------------------------------- lookups

async def _addr_one(name: str, pref: int, port: int, opts: LookupOptions, why: _Why,
                    resolver: Any) -> list[Address]:
    """smtp_addr_one(): the addresses of one host; failures update `why`."""
    lit = _literal(name)
    if lit is not None:
        fam = socket.AF_INET if lit.version == 4 else socket.AF_INET6
        if fam in opts.families:
            return [Address(str(lit), str(lit), fam, pref, port)]
        why.set("5.4.4", "4.4.4", f"{name}: host not found")
        return []
    if opts.dns:
        out: list[Address] = []
        statuses = []
        last_text = ""
        for fam in opts.families:
            qtype = "A" if fam == socket.AF_INET else "AAAA"
            status, recs, err = await _query(resolver, name, qtype)
            statuses.append(status)
            if status == OK:
                out += [Address(name, a, fam, pref, port) for a in recs]
            else:
                last_text = _not_found_text(name, qtype, err)
        if out:
            return out
        # dns_lookup_v(): the "worst" status wins (retry > fail > inval > notfound)
        status = next((s for s in (RETRY, FAIL, INVAL) if s in statuses), NOTFOUND)
        if status == RETRY:
            why.set("4.4.3", "4.4.3", last_text)
            return []
        if status == FAIL:
            why.set("5.4.3", "4.4.3", last_text)
            return []
        why.set("5.4.4", "4.4.4", last_text)
        if status == INVAL or not opts.native:
            return []
    if opts.native:
        family = opts.families[0] if len(opts.families) == 1 else socket.AF_UNSPEC
        try:
            infos = await _getaddrinfo(name, family)
        except socket.gaierror as e:
            retry = e.errno in (socket.EAI_AGAIN, socket.EAI_MEMORY, socket.EAI_SYSTEM)
            nohost = e.errno in (socket.EAI_AGAIN, socket.EAI_NONAME,
                                 getattr(socket, "EAI_NODATA", socket.EAI_NONAME))
            soft = why.dsn.startswith("4") or retry
            dsn = ("4.4.4" if nohost else "4.3.0") if soft else ("5.4.4" if nohost else "5.3.0")
            why.dsn = dsn
            why.text = f"unable to look up host {name}: {e.strerror}"
            return []
        out = []
        seen = set()
        for fam, _t, _p, _c, sa in infos:
            if fam not in opts.families or sa[0] in seen:
                continue
            seen.add(sa[0])
            out.append(Address(name, sa[0], fam, pref, port))
        if not out:
            why.set("5.4.4", "4.4.4", f"{name}: host not found")
        return out
    return []


async def host_addrs(name: str, port: int, opts: LookupOptions, *, loop_detect: bool = False,
                     resolver: Any = None) -> list[Address]:
    """smtp_host_addr(): the addresses of host `name` (no MX lookup)."""
    if opts.dns and resolver is None and _literal(name) is None:
        resolver = get_resolver(opts.nameservers)
    why = _Why()
    addrs = await _addr_one(name, 0, port, opts, why, resolver)
    if not addrs:
        raise why.failure()
    if loop_detect and opts.own_addresses:
        _kept, me = truncate_self(addrs, opts.own_addresses)
        if me is not None:
            raise LookupFailure("5.4.6", f"mail for {name} loops back to myself")
    if len(addrs) > 1:
        addrs = order_addresses(addrs, opts.preference, opts.randomize, opts.rng)
        if opts.address_limit > 0 and opts.balance:
            addrs = balance_inet_protocols(addrs, opts.address_limit)
    return addrs


async def domain_addrs(name: str, port: int, opts: LookupOptions, *, loop_detect: bool = False,
                       ignore_mx_lookup_error: bool = False, defer_if_no_mx_address: bool = False,
                       resolver: Any = None) -> tuple[list[Address], bool]:
    """smtp_domain_addr(): MX lookup with implicit-MX fallback.  Returns
    (addresses, i_am_mx): i_am_mx is True when this host is one of the MX
    hosts (the caller then tries no fallback relay)."""
    if resolver is None:
        resolver = get_resolver(opts.nameservers)
    why = _Why()
    status, recs, err = await _query(resolver, name, "MX")
    mx_text = _not_found_text(name, "MX", err)
    if status == NOTFOUND:
        return await host_addrs(name, port, opts, loop_detect=loop_detect, resolver=resolver), False
    if status == NULLMX:
        raise LookupFailure("5.1.0", f"Domain {name} does not accept mail (nullMX)")
    if status != OK:
        hard = {RETRY: "4.4.3", FAIL: "5.4.3", INVAL: "5.4.4"}[status]
        if ignore_mx_lookup_error:
            return await host_addrs(name, port, opts, loop_detect=loop_detect,
                                    resolver=resolver), False
        raise LookupFailure(hard, mx_text)
    mxs = sort_mx(recs, opts.rng, opts.randomize)
    best_pref = mxs[0][0]
    addrs: list[Address] = []
    for pref, host in mxs:
        addrs += await _addr_one(host.rstrip("."), pref, port, opts, why, resolver)
    if not addrs:
        if defer_if_no_mx_address and why.dsn.startswith("5"):
            why.dsn = "4" + why.dsn[1:]
        raise why.failure()
    best_found = addrs[0].pref
    me = None
    if loop_detect and opts.own_addresses:
        addrs, me = truncate_self(addrs, opts.own_addresses)
        if not addrs:
            if best_pref != best_found:
                raise LookupFailure("4.4.4", f"unable to find primary relay for {name}")
            raise LookupFailure("5.4.6", f"mail for {name} loops back to myself")
    if len(addrs) > 1:
        addrs = order_addresses(addrs, opts.preference, opts.randomize, opts.rng)
        if opts.address_limit > 0 and opts.balance:
            addrs = balance_inet_protocols(addrs, opts.address_limit)
    return addrs, me is not None


def own_addresses(inet_interfaces: Sequence[str], proxy_interfaces: Sequence[str]) -> frozenset[str]:
    """This host's addresses for MX loop detection (Postfix own_inet_addr_list
    plus proxy_inet_addr_list); host names in the lists are not resolved."""
    from postier.config.maincf import local_interfaces

    out: set[str] = set()
    lowered = [x.lower() for x in inet_interfaces]
    ifaces = local_interfaces()
    if not lowered or "all" in lowered:
        out.update(socket.inet_ntop(i.family, i.addr) for i in ifaces)
    else:
        for item in inet_interfaces:
            if item.lower() == "loopback-only":
                out.update(socket.inet_ntop(i.family, i.addr) for i in ifaces if i.loopback)
            elif _literal(item.strip("[]")) is not None:
                out.add(str(_literal(item.strip("[]"))))
    for item in proxy_interfaces:
        lit = _literal(item.strip("[]"))
        if lit is not None:
            out.add(str(lit))
    return frozenset(_canon(a) for a in out)
