"""The process's DNS resolver: aiodns (c-ares) underneath, postier's own cache on top.

    from postier import dns
    r = dns.get_resolver(dns.DnsSettings.from_config(cfg))    # one per process
    a = await r.query("example.test", "MX")      # Answer(status="ok", records=((10, "mx.example.test"),))
    a.status, a.records, a.ttl, a.why
    answers = await r.query_all([("h.test", "A"), ("h.test", "AAAA"), ("h.test", "MX")])
    r.prefetch([("2.0.0.127.bl.test", "A")])    # start now, collect later with query()

What it does:

* Answers carry Postfix's lookup statuses (dns_lookup.c): OK, NOTFOUND
  (NXDOMAIN or no data), RETRY (timeout, SERVFAIL, REFUSED, no server
  reachable), FAIL (FORMERR, malformed reply), INVAL (only malformed names in
  MX/PTR/NS/CNAME data), NULLMX (an MX record with the root name, RFC 7505).
  `Answer.herror` is Postfix's h_errno text ("Host not found", "Host not
  found, try again", "Host found but no data record of requested type",
  "Non-recoverable error") and `Answer.why` the full text Postfix logs:
  "Host or domain name not found. Name service error for name=N type=T: ...".
  Names that are numeric addresses or not valid host names (a trailing dot
  included) are NOTFOUND without a query ("Name service error for N:
  invalid host or domain name"), as in Postfix.  Numeric names in MX/PTR/NS data are kept with a warning
  ("numeric domain name in resource data of MX record for N: 1.2.3.4"),
  (PTR names are left to the caller, as getnameinfo() does),
  malformed ones are dropped with a warning ("malformed domain name ...").
* A cache that is the single source of truth for postier: positive answers
  live for the smallest TTL of their records (capped by max_ttl), NOTFOUND
  and INVAL answers for dns_negative_ttl (c-ares hides the SOA of negative
  replies), RETRY/FAIL answers for at most dns_timeout x dns_tries (5 s at
  most), so that one SMTP command never waits twice for the same dead server.  LRU, at most dns_cache_size
  entries.  Identical queries in flight are coalesced (one packet, every
  caller gets the answer), and a query keeps running when a caller is
  cancelled, so its answer still lands in the cache.
* Per-query time limit, as the C library's resolver does it: each try asks
  every nameserver once with dns_timeout (c-ares, tries=1; c-ares may give
  up earlier on a fast network, its timeouts adapt to measured latency),
  a failed try (timeout, SERVFAIL, REFUSED) is repeated up to dns_tries
  times; then the answer is RETRY ("Host not found, try again").  A DNS
  failure is never an accidental OK or NOTFOUND.
* c-ares (>= 1.23) also caches answers by TTL inside the channel, and
  pycares 5 exposes no option to turn that off (ARES_OPT_QUERY_CACHE is not
  wrapped).  Both caches honour the record TTLs, so the only visible effect
  is that a query re-sent after postier's entry expired may be answered by
  c-ares from memory until c-ares' own copy expires too (for negative
  answers: the zone's SOA minimum).  Benchmarks that want a cold cache use a
  fresh Resolver (a fresh channel).

`get_resolver()` returns the process-wide resolver for a settings value
(created on first use); it follows the running event loop (a new loop gets
a new c-ares channel, the cache is kept).

Parameters read (DnsSettings.from_config): dns_nameservers (postier only;
empty = /etc/resolv.conf; members `address` or `address:port`, `[v6]:port`),
dns_timeout, dns_tries, dns_cache_size, dns_negative_ttl (postier only).
"""

from __future__ import annotations

import asyncio
import atexit
import ipaddress
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from postier import log
from postier.dns.cache import TtlCache

# lookup statuses (Postfix dns.h), as strings
OK = "ok"
NOTFOUND = "notfound"
RETRY = "retry"
FAIL = "fail"
INVAL = "inval"
NULLMX = "nullmx"
POLICY = "policy"

#: Postfix's status precedence (dns.h: DNS_OK 0, DNS_POLICY -1, DNS_RETRY -2,
#: DNS_INVAL -3, DNS_FAIL -4, DNS_NULLMX -5, DNS_NOTFOUND -7): when several
#: record types are looked up (dns_lookup_l), the highest one is reported.
STATUS_RANK = {OK: 0, POLICY: -1, RETRY: -2, INVAL: -3, FAIL: -4, NULLMX: -5, NOTFOUND: -7}

# h_errno texts (Postfix dns_strerror.c)
HOST_NOT_FOUND = "Host not found"
TRY_AGAIN = "Host not found, try again"
NO_RECOVERY = "Non-recoverable error"
NO_DATA = "Host found but no data record of requested type"

QTYPES = ("A", "AAAA", "MX", "TXT", "PTR", "NS", "CNAME", "SOA")
_NAME_TYPES = ("MX", "NS", "CNAME")      # PTR names: the caller checks them (peer.py)


@dataclass(frozen=True, slots=True)
class Answer:
    """The result of one (name, type) lookup.

    records: A/AAAA -> address strings; MX -> (preference, host) with the
    trailing dot removed; TXT -> the record's text (character strings
    joined, bytes as latin-1); PTR/NS/CNAME -> names."""

    name: str
    qtype: str
    status: str
    records: tuple = ()
    ttl: int = 0
    herror: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def why(self) -> str:
        """Postfix's explanation text for a failed lookup ('' when OK)."""
        if self.detail:
            return self.detail
        if self.status == OK:
            return ""
        if self.status == NULLMX:
            return f"Domain {self.name} does not accept mail (nullMX)"
        return (f"Host or domain name not found. Name service error for "
                f"name={self.name} type={self.qtype}: {self.herror or TRY_AGAIN}")


def failed(name: str, qtype: str, status: str, herror: str, detail: str = "") -> Answer:
    return Answer(name, qtype, status, (), 0, herror, detail)


# --------------------------------------------------------------------------- settings

def parse_nameservers(values: Iterable[str]) -> list[tuple[str, int]]:
    """`dns_nameservers` members -> (address, port): "127.0.0.1", "127.0.0.1:5353",
    "[::1]:5353", "::1".  Raises ValueError naming a bad member."""
    out = []
    for v in values:
        v = v.strip()
        if not v:
            continue
        host, port = v, 53
        if v.startswith("["):
            end = v.find("]")
            if end < 0 or (v[end + 1:] and not v[end + 1:].startswith(":")):
                raise ValueError(f"bad nameserver address: {v}")
            host = v[1:end]
            if v[end + 1:]:
                port = _port(v[end + 2:], v)
        elif v.count(":") == 1:
            host, p = v.split(":")
            port = _port(p, v)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"bad nameserver address: {v}") from None
        out.append((host, port))
    return out


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad nameserver port: {whole}")
    return int(text)


@dataclass(frozen=True)
class DnsSettings:
    """What the resolver is configured with (hashable: the process registry key)."""

    nameservers: tuple[str, ...] = ()
    timeout: float = 5.0
    tries: int = 2
    cache_size: int = 10000
    negative_ttl: float = 60.0
    max_ttl: float = 86400.0
    failure_ttl: float = 5.0

    def __post_init__(self) -> None:
        parse_nameservers(self.nameservers)        # ValueError early

    @property
    def deadline(self) -> float:
        """The longest a lookup may take: every try asks every server."""
        return self.timeout * max(1, self.tries) * max(1, len(self.nameservers))

    @classmethod
    def from_config(cls, cfg: Any) -> DnsSettings:
        """From a postier Config; a bad dns_nameservers member is a ConfigError."""
        from postier.errors import ConfigError

        def get(name: str, kind: str, default: Any) -> Any:
            try:
                if kind == "list":
                    return tuple(cfg.get_list(name))
                if kind == "time":
                    return float(cfg.get_time(name))
                return int(cfg.get(name))
            except (KeyError, AttributeError, TypeError, ValueError):
                return default
        servers = get("dns_nameservers", "list", ())
        if not servers and os.environ.get("POSTIER_DNS_NAMESERVERS"):
            # the test suite's guard: with no dns_nameservers configured, ask
            # these (loopback) servers instead of /etc/resolv.conf's
            servers = tuple(os.environ["POSTIER_DNS_NAMESERVERS"].replace(",", " ").split())
        try:
            parse_nameservers(servers)
        except ValueError as e:
            raise ConfigError(f"parameter dns_nameservers: {e}") from None
        return cls(nameservers=servers,
                   timeout=max(0.1, get("dns_timeout", "time", 5.0)),
                   tries=max(1, get("dns_tries", "int", 2)),
                   cache_size=max(0, get("dns_cache_size", "int", 10000)),
                   negative_ttl=max(0.0, get("dns_negative_ttl", "time", 60.0)))


# --------------------------------------------------------------------------- backends

class Backend(Protocol):
    async def lookup(self, name: str, qtype: str) -> Answer: ...

    def close(self) -> None: ...


def hostname_gripe(name: str) -> str | None:
    """The warning Postfix's valid_hostname(DO_GRIPE) logs for an invalid
    host name (first problem found), or None when the name is valid."""
    me = "valid_hostname"
    if not name:
        return f"{me}: empty hostname"
    label, non_numeric = 0, False
    for i, ch in enumerate(name):
        if ch.isascii() and (ch.isalnum() or ch == "_"):
            label += 1
            if label > 63:
                return f"{me}: hostname label too long: {name[:100]}"
            if not ch.isdigit():
                non_numeric = True
        elif ch == ".":
            if label == 0 or i == len(name) - 1:
                return f"{me}: misplaced delimiter: {name[:100]}"
            label = 0
        elif ch == "-":
            non_numeric = True
            label += 1
            if label == 1 or i == len(name) - 1 or name[i + 1] == ".":
                return f"{me}: misplaced hyphen: {name[:100]}"
        else:
            return f"{me}: invalid character {ord(ch)}(decimal): {name[:100]}"
    if not non_numeric:
        return f"{me}: numeric hostname: {name[:100]}"
    if len(name) > 255:
        return f"{me}: bad length {len(name)} for {name[:100]}..."
    return None


def _valid_name(name: str) -> bool:
    from postier.smtpd.address import valid_hostname
    return valid_hostname(name)


def _numeric(name: str) -> bool:
    from postier.maps.access import valid_hostaddr
    return valid_hostaddr(name)


class AiodnsBackend:
    """One aiodns.DNSResolver (a c-ares channel) on one event loop."""

    def __init__(self, settings: DnsSettings, loop: asyncio.AbstractEventLoop):
        import aiodns
        import pycares

        self._aiodns = aiodns
        self._codes = {"A": pycares.QUERY_TYPE_A, "AAAA": pycares.QUERY_TYPE_AAAA,
                       "MX": pycares.QUERY_TYPE_MX, "TXT": pycares.QUERY_TYPE_TXT,
                       "PTR": pycares.QUERY_TYPE_PTR, "NS": pycares.QUERY_TYPE_NS,
                       "CNAME": pycares.QUERY_TYPE_CNAME, "SOA": pycares.QUERY_TYPE_SOA}
        self._cname = pycares.QUERY_TYPE_CNAME
        E = pycares.errno
        self._errors = {
            E.ARES_ENOTFOUND: (NOTFOUND, HOST_NOT_FOUND),
            E.ARES_ENODATA: (NOTFOUND, NO_DATA),
            E.ARES_EBADNAME: (NOTFOUND, HOST_NOT_FOUND),
            E.ARES_EFORMERR: (FAIL, NO_RECOVERY),
            E.ARES_EBADRESP: (FAIL, NO_RECOVERY),
            E.ARES_EBADQUERY: (FAIL, NO_RECOVERY),
        }
        servers = parse_nameservers(settings.nameservers)
        kw: dict[str, Any] = {"loop": loop, "timeout": settings.timeout, "tries": 1}
        if servers:
            ports = {p for _h, p in servers}
            try:   # aiodns 4 / pycares 5: "address:port" per server
                kw["nameservers"] = [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in servers]
                self.r = aiodns.DNSResolver(**kw)
            except (ValueError, pycares.AresError):
                if len(ports) != 1:
                    raise
                kw.update(nameservers=[h for h, _p in servers], udp_port=servers[0][1],
                          tcp_port=servers[0][1])
                self.r = aiodns.DNSResolver(**kw)
        else:
            self.r = aiodns.DNSResolver(**kw)

    async def lookup(self, name: str, qtype: str) -> Answer:
        try:
            res = await self.r.query_dns(name, qtype)
        except self._aiodns.error.DNSError as e:
            code = e.args[0] if e.args else None
            status, herror = self._errors.get(code, (RETRY, TRY_AGAIN))
            return failed(name, qtype, status, herror)
        want = self._codes[qtype]
        recs: list[Any] = []
        ttl: int | None = None
        for rr in res.answer:
            if rr.type == want:
                recs.append(_convert(qtype, rr.data))
            elif rr.type != self._cname:
                continue
            ttl = rr.ttl if ttl is None else min(ttl, rr.ttl)
        if not recs:
            return failed(name, qtype, NOTFOUND, NO_DATA)
        return Answer(name, qtype, OK, tuple(recs), int(ttl or 0))

    def close(self) -> None:
        for attr in ("_cleanup", "cancel"):
            fn = getattr(self.r, attr, None)
            if fn is not None:
                try:
                    fn()
                except Exception:  # noqa: BLE001 - the loop may be gone already
                    pass
                return


def _convert(qtype: str, d: Any) -> Any:
    if qtype in ("A", "AAAA"):
        return str(d.addr)
    if qtype == "MX":
        return (int(d.priority), str(d.exchange).rstrip("."))
    if qtype == "TXT":
        data = d.data
        return data.decode("latin-1") if isinstance(data, bytes) else str(data)
    if qtype == "PTR":
        return str(d.dname).rstrip(".")
    if qtype == "NS":
        return str(d.nsdname).rstrip(".")
    if qtype == "CNAME":
        return str(d.cname).rstrip(".")
    return d


def _check_names(ans: Answer) -> Answer:
    """valid_rr_name(): numeric names pass (warning), malformed ones are
    dropped (warning); nothing valid left -> INVAL; a root-name MX -> NULLMX."""
    if ans.status != OK or ans.qtype not in _NAME_TYPES:
        return ans
    keep = []
    for rec in ans.records:
        host = rec[1] if ans.qtype == "MX" else rec
        if ans.qtype == "MX" and host in ("", "."):
            return Answer(ans.name, ans.qtype, NULLMX, (), ans.ttl, NO_DATA)
        if _numeric(host):
            log.warning(f"numeric domain name in resource data of {ans.qtype} record "
                        f"for {ans.name}: {host}")
        elif not _valid_name(host):
            log.warning(hostname_gripe(host) or f"valid_hostname: invalid hostname: {host[:100]}")
            log.warning(f"malformed domain name in resource data of {ans.qtype} record "
                        f"for {ans.name}: {host[:100]}")
            continue
        keep.append(rec)
    if not keep:
        return Answer(ans.name, ans.qtype, INVAL, (), ans.ttl, NO_RECOVERY,
                      f"Name service error for name={ans.name} type={ans.qtype}: "
                      f"Malformed or unexpected name server reply")
    if len(keep) == len(ans.records):
        return ans
    return Answer(ans.name, ans.qtype, OK, tuple(keep), ans.ttl)


# --------------------------------------------------------------------------- resolver

Key = tuple[str, str]


class Resolver:
    """Cached, coalescing, deadline-bounded DNS lookups (see the module docstring).

    `backend`: anything with `async lookup(name, qtype) -> Answer` (tests use
    fakes); default: an AiodnsBackend created on first use in the running loop.
    `clock`: for the cache (tests pass a fake one)."""

    def __init__(self, settings: DnsSettings | None = None, *, backend: Backend | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings or DnsSettings()
        self.cache = TtlCache(self.settings.cache_size, clock=clock)
        self._fixed_backend = backend
        self._backend: Backend | None = backend
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: dict[Key, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self.sent = 0          # lookups handed to the backend
        self.joined = 0        # callers that joined a lookup already in flight
        self.timeouts = 0

    # -- plumbing -----------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._backend is not None and self._fixed_backend is None:
                self._backend.close()
                self._backend = None
            self._inflight.clear()
            self._tasks.clear()
            self._loop = loop
        if self._backend is None:
            self._backend = AiodnsBackend(self.settings, loop)
        return loop

    @staticmethod
    def key(name: str, qtype: str) -> Key:
        return (name.lower(), qtype.upper())

    @staticmethod
    def _refused(name: str, qtype: str) -> Answer | None:
        """dns_lookup_x()'s checks before any query: an unknown record type,
        or a name that is a numeric address or not a valid host name (a
        trailing dot included, as in Postfix)."""
        if qtype.upper() not in QTYPES:
            return failed(name, qtype, FAIL, NO_RECOVERY,
                          f"Name service error for name={name} type={qtype}: "
                          f"unsupported record type")
        if _numeric(name) or not _valid_name(name):
            return failed(name, qtype.upper(), NOTFOUND, HOST_NOT_FOUND,
                          f"Name service error for {name}: invalid host or domain name")
        return None

    def stats(self) -> dict[str, int]:
        return {"sent": self.sent, "joined": self.joined, "timeouts": self.timeouts,
                "cache_hits": self.cache.hits, "cache_misses": self.cache.misses,
                "cache_entries": len(self.cache), "cache_expired": self.cache.expired,
                "cache_evicted": self.cache.evicted}

    # -- lookups ----------------------------------------------------------------

    def cached(self, name: str, qtype: str) -> Answer | None:
        """The cached answer, without any query."""
        return self.cache.get(self.key(name, qtype))

    async def query(self, name: str, qtype: str) -> Answer:
        """The answer for (name, qtype): from the cache, from a lookup already
        in flight, or from a new lookup.  Never raises for DNS problems."""
        refused = self._refused(name, qtype)
        if refused is not None:
            return refused
        key = self.key(name, qtype)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        return await asyncio.shield(self._start(key))

    async def query_all(self, keys: Iterable[tuple[str, str]]) -> list[Answer]:
        """Several lookups issued together; answers in the order of `keys`."""
        return list(await asyncio.gather(*(self.query(n, t) for n, t in keys)))

    def prefetch(self, keys: Iterable[tuple[str, str]]) -> None:
        """Start lookups now (results go to the cache); returns at once."""
        for name, qtype in keys:
            key = self.key(name, qtype)
            if key in self._inflight or key in self.cache or self._refused(name, qtype):
                continue
            self._start(key)

    def spawn(self, coro: Any) -> asyncio.Task:
        """Run a helper coroutine (e.g. a DNSBL A-then-TXT lookup) as a task
        that is kept alive until done."""
        loop = self._ensure_loop()
        t = loop.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    def _start(self, key: Key) -> asyncio.Task:
        loop = self._ensure_loop()
        t = self._inflight.get(key)
        if t is not None:
            self.joined += 1
            return t
        t = loop.create_task(self._fetch(key))
        self._inflight[key] = t

        def done(task: asyncio.Task, k: Key = key) -> None:
            if self._inflight.get(k) is task:
                del self._inflight[k]
        t.add_done_callback(done)
        return t

    async def _fetch(self, key: Key) -> Answer:
        name, qtype = key
        backend = self._backend
        assert backend is not None
        s = self.settings
        # c-ares makes one try per server (tries=1, timeout=dns_timeout); the
        # tries are ours, as with the C library's "attempts".  wait_for() is
        # only a safety net: c-ares gives up first.
        net = s.timeout * max(1, len(s.nameservers)) + 0.5
        for _attempt in range(max(1, s.tries)):
            self.sent += 1
            try:
                ans = await asyncio.wait_for(backend.lookup(name, qtype), net)
            except TimeoutError:
                ans = failed(name, qtype, RETRY, TRY_AGAIN)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a resolver bug must not become a permit
                log.warning(f"DNS lookup {name}/{qtype}: {type(e).__name__}: {e}")
                ans = failed(name, qtype, RETRY, TRY_AGAIN)
                break
            if ans.status != RETRY:
                break
            self.timeouts += 1
        ans = _check_names(ans)
        if ans.status in (OK, NULLMX):
            self.cache.put(key, ans, min(ans.ttl, self.settings.max_ttl))
        elif ans.status in (NOTFOUND, INVAL):
            self.cache.put(key, ans, self.settings.negative_ttl)
        else:
            # a failure is remembered briefly, so that one SMTP command (or a
            # prefetch followed by the real check) does not wait twice
            self.cache.put(key, ans, min(self.settings.failure_ttl, self.settings.deadline))
        return ans

    def clear_cache(self) -> None:
        self.cache.clear()

    def close(self) -> None:
        for t in list(self._inflight.values()) + list(self._tasks):
            t.cancel()
        self._inflight.clear()
        if self._backend is not None and self._fixed_backend is None:
            self._backend.close()
        self._backend = None
        self._loop = None


# --------------------------------------------------------------------------- helpers

def reverse_name(addr: str) -> str:
    """The PTR query name of an address: d.c.b.a.in-addr.arpa, or the 32
    nibbles of an IPv6 address + ip6.arpa.  Raises ValueError."""
    ip = ipaddress.ip_address(addr)
    if ip.version == 4:
        return ".".join(reversed(str(ip).split("."))) + ".in-addr.arpa"
    return ".".join(reversed(ip.exploded.replace(":", ""))) + ".ip6.arpa"


def best_status(statuses: Sequence[str]) -> str:
    """dns_lookup_l(): the highest-ranked status of several lookups."""
    return max(statuses, key=lambda s: STATUS_RANK.get(s, -99))


# --------------------------------------------------------------------------- registry

_RESOLVERS: dict[DnsSettings, Resolver] = {}


def get_resolver(settings: DnsSettings | None = None, *,
                 nameservers: Sequence[str] | None = None) -> Resolver:
    """The process's resolver for `settings` (created on first use).  With
    only `nameservers`, an existing resolver for those servers is reused
    whatever its other settings; otherwise one with default settings is made."""
    if settings is None:
        servers = tuple(nameservers or ())
        for s, r in _RESOLVERS.items():
            if s.nameservers == servers:
                return r
        settings = DnsSettings(nameservers=servers)
    r = _RESOLVERS.get(settings)
    if r is None:
        r = _RESOLVERS[settings] = Resolver(settings)
    return r


def close_resolvers() -> None:
    """Release every resolver of the registry."""
    for r in _RESOLVERS.values():
        r.close()
    _RESOLVERS.clear()


atexit.register(close_resolvers)
