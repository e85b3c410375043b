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

from postier import __version__, log
from postier.errors import ConfigError
from postier.policy import whitelist as wl
from postier.policy.store import R_AWL, R_DELAYED, R_GREYLIST, StoreError, open_store

DEFAULT_TEXT = "Greylisted, see http://postgrey.schweikert.ch/help/%r.html"
DEFAULT_HEADER = "X-Greylist: delayed %t seconds by postier-greylist-%v at %h; %d"
POSTGREY_HEADER = "X-Greylist: delayed %t seconds by postgrey-%v at %h; %d"
MAINT_IDLE = 1.0            # seconds between maintenance calls when nothing is pending
MAINT_BUSY = 0.05           # ... while an expiry pass or a rebuild goes on
WHITELIST_CHECK = 10.0      # seconds between checks of the whitelist files' mtimes

_DIGITS = re.compile(r"\b\d+\b", re.ASCII)
_ANY_DIGIT = re.compile(r"\d", re.ASCII)
_BATV10 = re.compile(r"^[0-9a-z]{10}")
_RCPT_DOMAIN = re.compile(r"^.*@")
_LEADING_DIGIT = re.compile(r"^\d", re.ASCII)
_LOG_ATTRS = ("client_name", "client_address", "sender", "recipient")


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

def sender_substitutions(addr: str) -> str:
    """do_sender_substitutions(): BATV, +extension and VERP numbers."""
    user, at, domain = addr.partition("@")
    if not at:
        return addr
    if not user.startswith("prvs=") and "+" not in user and not _ANY_DIGIT.search(user):
        return addr
    if user.startswith("prvs="):
        parts = user.split("=")
        while parts and parts[-1] == "":       # Perl's split drops trailing empty fields
            parts.pop()
        if len(parts) == 3:
            a1, a2 = parts[1], parts[2]
            if _BATV10.match(a1) and not _BATV10.match(a2):
                user = a2
            elif _BATV10.match(a2) and not _BATV10.match(a1):
                user = a1
            else:
                user = a2
    plus = user.find("+")
    if plus >= 0:
        nl = user.find("\n", plus)
        user = user[:plus] + (user[nl:] if nl >= 0 else "")
    user = _DIGITS.sub("#", user)
    return f"{user}@{domain}"


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


class _ClientInfo:
    """What the keys need from one client address (cached per address)."""
    __slots__ = ("value", "addr", "net", "ckey")

    def __init__(self, value: int, addr: str, net: str):
        self.value = value      # 128-bit int (IPv4 as ::a.b.c.d), for whitelists
        self.addr = addr        # NetAddr::IP addr() text: the AWL key and log text
        self.net = net          # the NET part of the triplet key
        self.ckey = b"awl:" + addr.encode()     # the client's (AWL) store key


def client_info(address: str, settings: GreylistSettings) -> _ClientInfo | None:
    a = address.strip()
    try:
        v4 = socket.inet_pton(socket.AF_INET, a)
    except OSError:
        v4 = None
    if v4 is not None:              # the common case, without ipaddress objects
        value = int.from_bytes(v4, "big")
        text = socket.inet_ntop(socket.AF_INET, v4)
        if settings.lookup_by_host:
            net = f"{text}/32"
        else:
            plen = settings.ipv4cidr
            masked = value & ((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF) if plen else 0
            net = socket.inet_ntop(socket.AF_INET, masked.to_bytes(4, "big"))
        return _ClientInfo(value, text, net)
    ip = parse_client_address(a)
    if ip is None:
        return None
    return _ClientInfo(int(ip), netaddr_text(ip), client_network(ip, settings))


def client_network(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, settings: GreylistSettings
                   ) -> str:
    """do_client_substitutions(): the NET part of the triplet key."""
    if settings.lookup_by_host:
        return f"{netaddr_text(ip)}/{32 if ip.version == 4 else 128}"
    plen = settings.ipv4cidr if ip.version == 4 else settings.ipv6cidr
    net = ipaddress.ip_network(f"{ip}/{plen}", strict=False)
    return netaddr_text(net.network_address)


def triplet_key(net: str, sender: str, recipient: str) -> bytes:
    """lc "NET/SENDER/RECIPIENT" (ASCII-only, like Perl's lc on bytes)."""
    return f"{net}/{sender}/{recipient}".encode("utf-8", "surrogateescape").lower()


def _true(value: str | None) -> bool:
    """Perl truthiness of an attribute value."""
    return bool(value) and value != "0"


def action_line(attrs: Mapping[str, str], action: str, reason: str | None = None,
                info: str | None = None) -> str:
    """mylog_action(): postgrey's log line for a decision."""
    get = attrs.get
    line = f"action={action}"
    if reason is not None:
        line += f", reason={reason}"
    if info is not None:
        line += f", {info}"
    for a in _LOG_ATTRS:
        v = get(a)
        if v and v != "0":          # Perl truthiness
            line += f", {a}={v}"
    q = get("queue_id")
    return f"{q}: {line}" if q and q != "0" else line


def greylist_text(settings: GreylistSettings, attrs: Mapping[str, str], diff: int) -> str:
    msg = settings.text
    if "etrn_domain" in attrs and not _LEADING_DIGIT.match(msg):
        msg = "4.2.0 " + msg
    msg = msg.replace("%s", str(diff), 1)
    if "%r" in msg:
        rcpt = attrs.get("recipient", "")
        # s/^.*@//: everything up to the last "@" of the first line
        domain = rcpt.rpartition("@")[2] if "\n" not in rcpt else \
            _RCPT_DOMAIN.sub("", rcpt, count=1)
        msg = msg.replace("%r", domain, 1)
    return f"{settings.action} {msg}"


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
        self._clients: dict[str, _ClientInfo | None] = {}

    # -- whitelists -------------------------------------------------------------------
    def load_whitelists(self) -> None:
        """(Re)read the whitelist files (postgrey does it on SIGHUP)."""
        s = self.settings
        self.clients = wl.load_clients(s.whitelist_clients)
        self.recipients = wl.load_recipients(s.whitelist_recipients)
        self._wl_sig = wl.file_signature(s.whitelist_clients + s.whitelist_recipients)

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

    def _prepare(self, attrs: Mapping[str, str]) -> str | tuple[bytes, bytes, str]:
        """Whitelists and keys: a final action, or (triplet key, client key,
        client address text for the AWL log line)."""
        try:
            address = attrs["client_address"]
            recipient = attrs["recipient"]
            sender = attrs["sender"]
            attrs["client_name"]
        except KeyError:
            for a in ("client_address", "client_name", "recipient", "sender"):
                if a not in attrs:
                    log.warning(f"attribute missing: {a}")
                    break
            return "DUNNO"
        info = self._clients.get(address)
        if info is None:
            if len(self._clients) >= 8192:
                self._clients.clear()
            info = self._clients[address] = client_info(address, self.settings)
            if info is None:
                del self._clients[address]
                log.warning(f"can't parse client_address from postfix: {address}")
                return "DUNNO"
        if self.clients.names and self.clients.match_name(attrs["client_name"]):
            self._log(action_line(attrs, "pass", "client whitelist"))
            return "DUNNO"
        if self.clients.networks and self.clients.match_address(info.value):
            self._log(action_line(attrs, "pass", "client whitelist"))
            return "DUNNO"
        if self.recipients.patterns and self.recipients.match(recipient):
            self._log(action_line(attrs, "pass", "recipient whitelist"))
            return "DUNNO"
        addr = info.addr
        tkey = triplet_key(info.net, sender_substitutions(sender), recipient)
        ckey = info.ckey
        if self.settings.privacy:
            tkey = hashlib.sha1(tkey).hexdigest().encode()
            ckey = b"awl:" + hashlib.sha1(addr.encode()).hexdigest().encode()
        return tkey, ckey, addr

    def _is_new_instance(self, inst: str | None) -> bool:
        if inst is None:
            return True
        if inst in self._instances:
            return False
        self._instances.appendleft(inst)
        return True

    def _finish(self, attrs: Mapping[str, str], now: int, addr: str,
                decision: tuple[int, int, int, int]) -> str:
        result, first, awl_count, corrected = decision
        s = self.settings
        if result == R_AWL:
            self._log(action_line(attrs, "pass", "client AWL"))
            return "DUNNO"
        if corrected:
            self.emit("correcting date for first seen in the future!")
        if awl_count and awl_count == s.awl_clients:
            name = attrs.get("client_name")
            client = f"{name}[{addr}]" if _true(name) else addr
            self.emit(f"whitelisted: {client}")
        if result == R_GREYLIST:
            diff = s.delay - (now - first)
            self._log(action_line(attrs, "greylist",
                                  "new" if now == first else f"early-retry ({diff}s missing)"))
            return greylist_text(s, attrs, diff)
        if result == R_DELAYED and self._is_new_instance(attrs.get("instance")):
            delay = now - first
            self._log(action_line(attrs, "pass", "triplet found", f"delay={delay}"))
            if not s.header:
                return "DUNNO"
            return "PREPEND " + header_text(s, delay)
        self._log(action_line(attrs, "pass", "triplet found"))
        return "DUNNO"

    def _now(self, attrs: Mapping[str, str], now: int | None) -> int:
        if now is not None:
            return now
        t = attrs.get("policy_test_time")
        if t is not None:
            try:
                return int(t)
            except ValueError:
                pass
        return int(time.time())

    def decide(self, attrs: Mapping[str, str], now: int | None = None) -> str:
        """The action for one request (synchronous stores only)."""
        prep = self._prepare(attrs)
        if isinstance(prep, str):
            return prep
        tkey, ckey, addr = prep
        t = self._now(attrs, now)
        s = self.settings
        decision = self._store_decide(tkey, ckey, t, s.delay, s.retry_window, s.awl_clients,
                                      s.max_age)
        action = self._finish(attrs, t, addr, decision)
        mono = time.monotonic()
        if mono >= self._next_maint:
            self.maintain(t, mono)
        return action

    async def adecide(self, attrs: Mapping[str, str], now: int | None = None) -> str:
        """The action for one request (any store)."""
        if self.sync:
            return self.decide(attrs, now)
        prep = self._prepare(attrs)
        if isinstance(prep, str):
            return prep
        tkey, ckey, addr = prep
        t = self._now(attrs, now)
        s = self.settings
        decision = await self.store.adecide(tkey, ckey, t, s.delay,  # type: ignore[attr-defined]
                                            s.retry_window, s.awl_clients, s.max_age)
        action = self._finish(attrs, t, addr, decision)
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
