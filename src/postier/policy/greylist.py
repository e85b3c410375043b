"""Greylisting with postgrey's exact behaviour (postgrey 1.37 is the spec).

`Greylist(settings, store)` decides one policy request, given as the
attributes of Postfix's policy delegation protocol (client_address,
client_name, sender, recipient, instance, queue_id, ...), and returns the
access(5) action postgrey would return:

1. client_name matches whitelist_clients (names, domains, /regexps/) or
   client_address is in one of its networks -> DUNNO (`reason=client
   whitelist`); the recipient matches whitelist_recipients -> DUNNO
   (`reason=recipient whitelist`).  See postier.policy.whitelist.
2. The client address has been counted `auto_whitelist_clients` times ->
   DUNNO (`reason=client AWL`); its last-seen time is refreshed at most once
   an hour.
3. The triplet key is `NET/SENDER/RECIPIENT`, ASCII-lowercased, where NET is
   the client's network address (IPv4 /24, IPv6 /64 as NetAddr::IP prints
   it: `2001:db8:0:0:0:0:0:0`) or with lookup-by-host the address with its
   prefix (`192.0.2.7/32`), and SENDER is normalised: BATV `prvs=TAG=user`
   (either order) becomes `user`, a `+extension` is cut, and every
   all-digit word of the local part becomes `#` (VERP).
4. Unknown triplet: first-seen = now.  Known: if it already passed once
   (last - first >= delay) it is a known good triplet; else a first retry
   later than retry_window after first-seen starts over (first = now); a
   first-seen in the future is reset to now ("correcting date for first
   seen in the future!").  The entry becomes (first, now).
5. If delay - (now - first) > 0: greylist: `DEFER_IF_PERMIT Greylisted,
   see http://postgrey.schweikert.ch/help/DOMAIN.html` (greylist_action and
   greylist_text: %s = seconds left, %r = recipient domain; `4.2.0 ` is put
   in front of a text that does not start with a digit when the request has
   an etrn_domain attribute, which Postfix always sends).  Logged as
   `action=greylist, reason=new` or `reason=early-retry (Ns missing)`.
6. Else, on the first pass after being delayed: the client's
   auto-whitelist count goes up (once an hour at most; "whitelisted:
   NAME[ADDR]" when it reaches the limit) and, for the first recipient of
   a message (postgrey remembers the last 10 `instance` values), the
   action is `PREPEND X-Greylist: delayed N seconds by
   postier-greylist-VERSION at HOST; DATE` (`reason=triplet found,
   delay=N`); otherwise DUNNO (`reason=triplet found`).

Log lines have postgrey's shape: `[QUEUEID: ]action=ACTION, reason=REASON[,
INFO], client_name=..., client_address=..., sender=..., recipient=...`
(empty attributes left out); expiry passes log `cleaning up old
entries...` and `cleaning main database finished. before: N, after: M`
(and `cleaning clients database ...`).

The decision itself (steps 2, 4, 5 and the counting of 6) is one atomic
operation of the store (postier.policy.store), so several processes, or
several hosts sharing Redis, can decide concurrently.

A request is given as a dict of attributes (`decide`, `adecide`) or as
the tuple of the attributes used (postier.native "policyreq" FIELDS:
`decide_fields`).  With the memory-mapped store and no whitelist or
privacy setting, `Greylist.fast` (policyreq.Fast) decides a whole request
as the server reads it in one call: parse, keys, store, log line, action
(postgrey's other outcomes call back into `_finish`); it leaves the
expiry passes to the server's maintenance task.

Parameters read (`settings_from_config`; postier-only, named after
postgrey's options): greylist_store, greylist_delay, greylist_max_age,
greylist_retry_window, greylist_auto_whitelist_clients,
greylist_lookup_by_subnet, greylist_ipv4_network, greylist_ipv6_network,
greylist_whitelist_clients, greylist_whitelist_recipients, greylist_action,
greylist_text, greylist_x_greylist_header; myhostname (%h of the header),
data_directory (the default store).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from postier import __version__, log, native
from postier._pure.policyreq import (
    F_ADDRESS,
    F_ETRN,
    F_INSTANCE,
    F_NAME,
    F_RECIPIENT,
    F_SENDER,
    F_TEST_TIME,
    FIELDS,
    recipient_domain,
    sender_substitutions,  # noqa: F401 - re-exported (postgrey key rules live there)
)
from postier.errors import ConfigError
from postier.policy import whitelist as wl
from postier.policy.store import (
    R_AWL,
    R_DELAYED,
    R_GREYLIST,
    R_PASS,
    MmapStore,
    StoreError,
    open_store,
)

_REQ_PURE = native.load("policyreq", pure=True)
DEFAULT_TEXT = "Greylisted, see http://postgrey.schweikert.ch/help/%r.html"
DEFAULT_HEADER = "X-Greylist: delayed %t seconds by postier-greylist-%v at %h; %d"
POSTGREY_HEADER = "X-Greylist: delayed %t seconds by postgrey-%v at %h; %d"
MAINT_IDLE = 1.0            # seconds between maintenance calls when nothing is pending
MAINT_BUSY = 0.05           # ... while an expiry pass or a rebuild goes on
WHITELIST_CHECK = 10.0      # seconds between checks of the whitelist files' mtimes

_LEADING_DIGIT = re.compile(r"^\d", re.ASCII)


@dataclass(frozen=True)
class GreylistSettings:
    """postgrey's options (defaults are postgrey's, except the header text)."""
    delay: int = 300
    max_age: int = 35 * 86400
    retry_window: int = 2 * 86400
    awl_clients: int = 5
    lookup_by_host: bool = False
    ipv4cidr: int = 24
    ipv6cidr: int = 64
    action: str = "DEFER_IF_PERMIT"
    text: str = DEFAULT_TEXT
    header: str = DEFAULT_HEADER
    hostname: str = field(default_factory=lambda: socket.gethostname())
    version: str = __version__
    whitelist_clients: tuple[str, ...] = ()
    whitelist_recipients: tuple[str, ...] = ()
    store: str = "/var/lib/postier/greylist"
    privacy: bool = False
    log_actions: bool = True


_PARAMS = ("greylist_store", "greylist_delay", "greylist_max_age", "greylist_retry_window",
           "greylist_auto_whitelist_clients", "greylist_lookup_by_subnet",
           "greylist_ipv4_network", "greylist_ipv6_network", "greylist_whitelist_clients",
           "greylist_whitelist_recipients", "greylist_action", "greylist_text",
           "greylist_x_greylist_header")


def settings_from_config(get: Callable[[str], str | None], **overrides: object
                         ) -> GreylistSettings:
    """Settings from main.cf: `get(name)` returns a parameter's expanded text
    (None: not known, the registry default applies).  Raises ConfigError."""
    from postier.config.params import PARAMS as REGISTRY
    from postier.config.registry import BadValue, convert

    values: dict[str, object] = {}
    for name in _PARAMS:
        p = REGISTRY[name]
        text = get(name)
        if text is None:
            text = p.default
            if "$data_directory" in text:
                text = text.replace("$data_directory", get("data_directory") or
                                    REGISTRY["data_directory"].default)
        try:
            values[name] = convert(p, text)
        except BadValue as e:
            raise ConfigError(str(e)) from None
    hostname = get("myhostname") or socket.gethostname()
    s = GreylistSettings(
        delay=int(values["greylist_delay"]),
        max_age=int(values["greylist_max_age"]),
        retry_window=int(values["greylist_retry_window"]),
        awl_clients=int(values["greylist_auto_whitelist_clients"]),
        lookup_by_host=not values["greylist_lookup_by_subnet"],
        ipv4cidr=int(values["greylist_ipv4_network"]),
        ipv6cidr=int(values["greylist_ipv6_network"]),
        action=str(values["greylist_action"]),
        text=str(values["greylist_text"]),
        header=str(values["greylist_x_greylist_header"]),
        hostname=hostname,
        whitelist_clients=tuple(values["greylist_whitelist_clients"]),      # type: ignore[arg-type]
        whitelist_recipients=tuple(values["greylist_whitelist_recipients"]),  # type: ignore[arg-type]
        store=str(values["greylist_store"]),
    )
    return replace(s, **overrides) if overrides else s


# -- postgrey's key normalisation ------------------------------------------------------

def netaddr_text(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """NetAddr::IP's addr(): dotted IPv4, or all eight IPv6 groups in
    upper-case hex without zero compression."""
    if ip.version == 4:
        return str(ip)
    v = int(ip)
    return ":".join(f"{(v >> (112 - 16 * i)) & 0xFFFF:X}" for i in range(8))


def parse_client_address(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(addr.strip())
    except ValueError:
        return None


def client_info(address: str, settings: GreylistSettings, req=None
                ) -> tuple[int, str, str, bytes] | None:
    """What the keys need from a client address: (value as int, for the
    whitelists; NetAddr::IP addr() text: the AWL key and log text; the NET
    part of the triplet key; the client's (AWL) store key), or None when it
    is not an IP address.  `req`: the policyreq module (IPv4 parsing)."""
    info = (req or _REQ_PURE).ipv4_client(address, settings.ipv4cidr, settings.lookup_by_host)
    if info is not None:            # the common case, without ipaddress objects
        return info
    ip = parse_client_address(address)
    if ip is None:
        return None
    text = netaddr_text(ip)
    return int(ip), text, client_network(ip, settings), b"awl:" + text.encode()


def client_network(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, settings: GreylistSettings
                   ) -> str:
    """do_client_substitutions(): the NET part of the triplet key."""
    if settings.lookup_by_host:
        return f"{netaddr_text(ip)}/{32 if ip.version == 4 else 128}"
    plen = settings.ipv4cidr if ip.version == 4 else settings.ipv6cidr
    net = ipaddress.ip_network(f"{ip}/{plen}", strict=False)
    return netaddr_text(net.network_address)


def triplet_key(net: str, sender: str, recipient: str) -> bytes:
    """lc "NET/SENDER/RECIPIENT" (ASCII-only, like Perl's lc on bytes); SENDER
    already substituted (policyreq.triplet_key applies the substitutions)."""
    return f"{net}/{sender}/{recipient}".encode("utf-8", "surrogateescape").lower()


def _true(value: str | None) -> bool:
    """Perl truthiness of an attribute value."""
    return bool(value) and value != "0"


def fields_of(attrs: Mapping[str, str]) -> tuple[str | None, ...]:
    """The request attributes the decision uses (policyreq.FIELDS; None: missing)."""
    return tuple(map(attrs.get, FIELDS))


def action_line(attrs: Mapping[str, str], action: str, reason: str | None = None,
                info: str | None = None) -> str:
    """mylog_action(): postgrey's log line for a decision."""
    return _REQ_PURE.log_line(fields_of(attrs), action, reason, info)


def greylist_text(settings: GreylistSettings, attrs: Mapping[str, str] | tuple, diff: int
                  ) -> str:
    """The greylist action for a request (attributes, or the FIELDS tuple)."""
    f = attrs if isinstance(attrs, tuple) else fields_of(attrs)
    msg = settings.text
    if f[F_ETRN] is not None and not _LEADING_DIGIT.match(msg):
        msg = "4.2.0 " + msg
    msg = msg.replace("%s", str(diff), 1)
    if "%r" in msg:
        msg = msg.replace("%r", _rcpt_domain(f[F_RECIPIENT] or ""), 1)
    return f"{settings.action} {msg}"


def _text_parts(settings: GreylistSettings) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """greylist_text() precomputed for a text with one "%r" and no "%s"
    (postgrey's default): (head, tail) around the recipient domain, without
    and with an etrn_domain attribute; None for other texts."""
    text = settings.text
    if "%s" in text or "%r" not in text:
        return None
    out = []
    for etrn in (False, True):
        msg = "4.2.0 " + text if etrn and not _LEADING_DIGIT.match(text) else text
        head, _, tail = msg.partition("%r")
        out.append((f"{settings.action} {head}", tail))
    return out[0], out[1]


_rcpt_domain = recipient_domain     # s/^.*@//: up to the last "@" of the first line


def header_text(settings: GreylistSettings, delay: int, when: float | None = None) -> str:
    date = time.strftime("%a, %d %b %Y %H:%M:%S %Z", time.localtime(when))
    msg = settings.header
    msg = msg.replace("%t", str(delay), 1)
    msg = msg.replace("%v", settings.version, 1)
    msg = msg.replace("%d", date, 1)
    msg = msg.replace("%h", settings.hostname, 1)
    return msg


class Greylist:
    """postgrey's decision procedure over a store (see the module docstring).

    `decide(attrs)` for synchronous stores (the mmap file), `adecide(attrs)`
    for any store.  `now` defaults to the clock, or the request's
    `policy_test_time` attribute (as postgrey)."""

    def __init__(self, settings: GreylistSettings, store: object | None = None, *,
                 clients: wl.ClientWhitelist | None = None,
                 recipients: wl.RecipientWhitelist | None = None,
                 emit: Callable[[str], None] | None = None, pure: bool | None = None):
        self.settings = settings
        self.store = store if store is not None else open_store(settings.store, pure=pure)
        self.sync = bool(getattr(self.store, "sync", False))
        self._store_decide = getattr(self.store, "decide", None)
        self.emit = emit or log.info
        self._instances: deque[str] = deque(["0"] * 10, maxlen=10)
        self._wl_sig: tuple = ()
        self._wl_given = clients is not None or recipients is not None
        if self._wl_given:
            self.clients = clients or wl.ClientWhitelist()
            self.recipients = recipients or wl.RecipientWhitelist()
        else:
            self.load_whitelists()
        self._next_maint = 0.0
        self._next_wl_check = time.monotonic() + WHITELIST_CHECK
        self._clients: dict[str, tuple[int, str, str, bytes]] = {}
        self._req = req = native.load("policyreq", pure=pure)
        self._tkey = req.triplet_key
        self._line = req.log_line
        self._text = _text_parts(settings)
        # the mmap store's decision, called without the MmapStore wrapper
        self._greylist = self.store.greylist if type(self.store) is MmapStore else None
        self.fast = None
        self._update_fast()

    def _update_fast(self) -> None:
        """The one-call path of postier.native policyreq (Fast) for this
        greylist, when it applies: the memory-mapped store, no whitelists,
        no privacy hashing (else None: decide_fields() does it all)."""
        s = self.settings
        if self._greylist is None or s.privacy or self.clients.names \
                or self.clients.networks or self.recipients.patterns:
            self.fast = None
            return
        self.fast = self._req.Fast(self._greylist, s.delay, s.retry_window, s.awl_clients,
                                   s.ipv4cidr, s.lookup_by_host, self._text,
                                   self.emit if s.log_actions else None, self._finish)

    # -- whitelists -------------------------------------------------------------------
    def load_whitelists(self) -> None:
        """(Re)read the whitelist files (postgrey does it on SIGHUP)."""
        s = self.settings
        self.clients = wl.load_clients(s.whitelist_clients)
        self.recipients = wl.load_recipients(s.whitelist_recipients)
        self._wl_sig = wl.file_signature(s.whitelist_clients + s.whitelist_recipients)
        if hasattr(self, "fast"):
            self._update_fast()

    def _check_whitelists(self, mono: float) -> None:
        self._next_wl_check = mono + WHITELIST_CHECK
        if self._wl_given:
            return
        s = self.settings
        if wl.file_signature(s.whitelist_clients + s.whitelist_recipients) != self._wl_sig:
            self.emit("whitelist files changed: reloading whitelists...")
            self.load_whitelists()

    # -- one request ---------------------------------------------------------------------
    def _log(self, text: str) -> None:
        if self.settings.log_actions:
            self.emit(text)

    def _prepare(self, f: tuple) -> str | tuple[bytes, bytes, str]:
        """Whitelists and keys: a final action, or (triplet key, client key,
        client address text for the AWL log line)."""
        address = f[F_ADDRESS]
        recipient = f[F_RECIPIENT]
        sender = f[F_SENDER]
        if address is None or recipient is None or sender is None or f[F_NAME] is None:
            for a, i in (("client_address", F_ADDRESS), ("client_name", F_NAME),
                         ("recipient", F_RECIPIENT), ("sender", F_SENDER)):
                if f[i] is None:
                    log.warning(f"attribute missing: {a}")
                    break
            return "DUNNO"
        info = self._clients.get(address)
        if info is None:
            info = client_info(address, self.settings, self._req)
            if info is None:
                log.warning(f"can't parse client_address from postfix: {address}")
                return "DUNNO"
            if len(self._clients) >= 8192:
                self._clients.clear()
            self._clients[address] = info
        if self.clients.names and self.clients.match_name(f[F_NAME]):
            self._log(self._line(f, "pass", "client whitelist"))
            return "DUNNO"
        if self.clients.networks and self.clients.match_address(info[0]):
            self._log(self._line(f, "pass", "client whitelist"))
            return "DUNNO"
        if self.recipients.patterns and self.recipients.match(recipient):
            self._log(self._line(f, "pass", "recipient whitelist"))
            return "DUNNO"
        tkey = self._tkey(info[2], sender, recipient)
        if self.settings.privacy:
            addr = info[1]
            return (hashlib.sha1(tkey).hexdigest().encode(),
                    b"awl:" + hashlib.sha1(addr.encode()).hexdigest().encode(), addr)
        return tkey, info[3], info[1]

    def _is_new_instance(self, inst: str | None) -> bool:
        if inst is None:
            return True
        if inst in self._instances:
            return False
        self._instances.appendleft(inst)
        return True

    def _finish(self, f: tuple, now: int, addr: str, decision: tuple[int, int, int, int]
                ) -> str:
        result, first, awl_count, corrected = decision
        s = self.settings
        if result == R_AWL:
            self._log(self._line(f, "pass", "client AWL"))
            return "DUNNO"
        if corrected:
            self.emit("correcting date for first seen in the future!")
        if awl_count and awl_count == s.awl_clients:
            name = f[F_NAME]
            client = f"{name}[{addr}]" if _true(name) else addr
            self.emit(f"whitelisted: {client}")
        if result == R_GREYLIST:
            diff = s.delay - (now - first)
            self._log(self._line(f, "greylist",
                                 "new" if now == first else f"early-retry ({diff}s missing)"))
            if self._text is None:
                return greylist_text(s, f, diff)
            head, tail = self._text[f[F_ETRN] is not None]
            rcpt = f[F_RECIPIENT]
            return head + (rcpt.rpartition("@")[2] if "\n" not in rcpt else _rcpt_domain(rcpt)) \
                + tail
        if result == R_DELAYED and self._is_new_instance(f[F_INSTANCE]):
            delay = now - first
            self._log(self._line(f, "pass", "triplet found", f"delay={delay}"))
            if not s.header:
                return "DUNNO"
            return "PREPEND " + header_text(s, delay)
        self._log(self._line(f, "pass", "triplet found"))
        return "DUNNO"

    def _now(self, f: tuple, now: int | None) -> int:
        if now is not None:
            return now
        t = f[F_TEST_TIME]
        if t is not None:
            try:
                return int(t)
            except ValueError:
                pass
        return int(time.time())

    def decide(self, attrs: Mapping[str, str], now: int | None = None) -> str:
        """The action for one request (synchronous stores only)."""
        return self.decide_fields(tuple(map(attrs.get, FIELDS)), now)

    def decide_fields(self, f: tuple, now: int | None = None) -> str:
        """decide() for the request's FIELDS tuple (postier.native policyreq)."""
        prep = self._prepare(f)
        if prep.__class__ is str:
            return prep     # type: ignore[return-value]
        tkey, ckey, addr = prep
        t = now
        if t is None:                   # _now() inline
            tt = f[F_TEST_TIME]
            if tt is None:
                t = int(time.time())
            else:
                try:
                    t = int(tt)
                except ValueError:
                    t = int(time.time())
        s = self.settings
        if self._greylist is not None:
            decision = self._greylist(tkey, ckey, t, s.delay, s.retry_window, s.awl_clients)
        else:
            decision = self._store_decide(tkey, ckey, t, s.delay, s.retry_window,
                                          s.awl_clients, s.max_age)
        # the two common outcomes inline (what _finish() does for them)
        result = decision[0]
        if result == R_PASS and not decision[3]:
            if s.log_actions:
                self.emit(self._line(f, "pass", "triplet found"))
            action = "DUNNO"
        elif result == R_GREYLIST and not decision[3] and not decision[2] \
                and self._text is not None:
            first = decision[1]
            if s.log_actions:
                self.emit(self._line(f, "greylist", "new" if t == first else
                                     f"early-retry ({s.delay - (t - first)}s missing)"))
            head, tail = self._text[f[F_ETRN] is not None]
            rcpt = f[F_RECIPIENT]
            action = head + (rcpt.rpartition("@")[2] if "\n" not in rcpt else
                             _rcpt_domain(rcpt)) + tail
        else:
            action = self._finish(f, t, addr, decision)
        mono = time.monotonic()
        if mono >= self._next_maint:
            self.maintain(t, mono)
        return action

    async def adecide(self, attrs: Mapping[str, str], now: int | None = None) -> str:
        """The action for one request (any store)."""
        return await self.adecide_fields(tuple(map(attrs.get, FIELDS)), now)

    async def adecide_fields(self, f: tuple, now: int | None = None) -> str:
        """adecide() for the request's FIELDS tuple."""
        if self.sync:
            return self.decide_fields(f, now)
        prep = self._prepare(f)
        if isinstance(prep, str):
            return prep
        tkey, ckey, addr = prep
        t = self._now(f, now)
        s = self.settings
        decision = await self.store.adecide(tkey, ckey, t, s.delay,  # type: ignore[attr-defined]
                                            s.retry_window, s.awl_clients, s.max_age)
        action = self._finish(f, t, addr, decision)
        mono = time.monotonic()
        if mono >= self._next_wl_check:
            self._check_whitelists(mono)
        return action

    # -- maintenance ------------------------------------------------------------------------
    def maintain(self, now: int | None = None, mono: float | None = None) -> bool:
        """A bounded step of expiry/rebuild work (synchronous stores); logs
        postgrey's cleaning lines.  True when more work is pending."""
        mono = time.monotonic() if mono is None else mono
        if mono >= self._next_wl_check:
            self._check_whitelists(mono)
        if not self.sync:
            self._next_maint = mono + MAINT_IDLE
            return False
        s = self.settings
        now = int(time.time()) if now is None else now
        try:
            ev = self.store.maintain(now, s.max_age, s.delay, s.retry_window)  # type: ignore[attr-defined]
        except (StoreError, OSError) as e:
            log.warning(f"greylist store maintenance: {e}")
            ev = None
        busy = ev is not None and ev[0] != "done"
        self._next_maint = mono + (MAINT_BUSY if busy else MAINT_IDLE)
        if ev is not None:
            self._log_event(ev)
        return busy

    def _log_event(self, ev: Sequence) -> None:
        if ev[0] == "start":
            self.emit("cleaning up old entries...")
        elif ev[0] == "done":
            self.emit(f"cleaning main database finished. before: {ev[1]}, after: {ev[2]}")
            if self.settings.awl_clients:
                self.emit(f"cleaning clients database finished. before: {ev[3]}, "
                          f"after: {ev[4]}")

    def close(self) -> None:
        self.store.close()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        await self.store.aclose()  # type: ignore[attr-defined]
