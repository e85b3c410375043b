"""Pure-Python twin of postier._native.policyreq: a policy request's hot path.

What `postier greylistd` does for every request that is not a whitelist
hit, in as few calls as possible (postier.policy.server and
postier.policy.greylist use it; POSTIER_PURE=1 selects this twin, both give
the same results):

- `parse(data)`: one whole policy request as a read delivers it (`NAME=VALUE`
  lines ended by LF, then the empty line) -> the tuple of the attributes
  the greylist decision and its log line use, in the order of FIELDS (str,
  decoded as UTF-8 with surrogateescape, or None when the request lacks
  it; the last of repeated names wins), or None when the data is not one
  such simple request: a CR, an empty line before the end, more data after
  it, a line without `=` or with an empty name, a line longer than 512
  bytes (the general parser of postier.policy.server handles those with
  postgrey's rules: garbage lines, CRLF, the 512-byte cut, pipelining).
- `sender_substitutions(addr)`: postgrey's do_sender_substitutions() (BATV
  `prvs=TAG=user` -> `user`, the `+extension` cut, every all-digit word of
  the local part -> `#`).
- `triplet_key(net, sender, recipient)`: the store key of a triplet, lc
  "NET/SENDER/RECIPIENT" with the sender substitutions applied, as UTF-8
  bytes (surrogateescape) lowercased in ASCII only (Perl's lc on bytes).
- `ipv4_client(address, ipv4cidr, by_host)`: what the keys need from an
  IPv4 client address (surrounding whitespace ignored, inet_pton(3)'s
  syntax): (value as int, address text, NET part of the triplet key: the
  /ipv4cidr network, or `ADDR/32` by host, client key b"awl:ADDR"), or
  None when the address is not an IPv4 address.
- `log_line(fields, action, reason, info)`: postgrey's mylog_action()
  line `[QUEUEID: ]action=ACTION, reason=REASON[, INFO], client_name=...,
  client_address=..., sender=..., recipient=...` (attributes that are
  empty, missing or "0" left out: Perl truthiness).
- `recipient_domain(rcpt)`: postgrey's s/^.*@// (the %r of the greylist
  text).
- `Fast(...)`: a whole request in one call, for postier.policy.greylist
  when no whitelist and no privacy setting applies (see Fast.handle).

Reads no main.cf parameters.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

FIELDS = ("request", "client_address", "client_name", "sender", "recipient", "queue_id",
          "instance", "policy_test_time", "etrn_domain")
F_REQUEST, F_ADDRESS, F_NAME, F_SENDER, F_RECIPIENT, F_QUEUE_ID, F_INSTANCE, F_TEST_TIME, \
    F_ETRN = range(len(FIELDS))
MAX_LINE = 512              # longer lines are cut by postgrey: not the fast path

_INDEX = {name.encode(): i for i, name in enumerate(FIELDS)}
_DIGITS = re.compile(r"\b\d+\b", re.ASCII)
_ANY_DIGIT = re.compile(r"\d", re.ASCII)
_BATV10 = re.compile(r"^[0-9a-z]{10}")

__all__ = ["FIELDS", "F_REQUEST", "F_ADDRESS", "F_NAME", "F_SENDER", "F_RECIPIENT",
           "F_QUEUE_ID", "F_INSTANCE", "F_TEST_TIME", "F_ETRN", "parse",
           "sender_substitutions", "triplet_key", "ipv4_client", "log_line", "Fast",
           "recipient_domain"]
R_GREYLIST, R_PASS = 2, 4       # the store's result codes (postier.policy.store)


def parse(data: bytes) -> tuple[str | None, ...] | None:
    """The FIELDS of one whole simple request, or None (see the module doc)."""
    n = len(data)
    if n < 3 or data[n - 1] != 10 or data[n - 2] != 10 or data[0] == 10 or b"\r" in data:
        return None
    body = data[:-2]
    if b"\n\n" in body:
        return None
    out: list[str | None] = [None] * len(FIELDS)
    for line in body.split(b"\n"):
        if len(line) > MAX_LINE:
            return None
        name, eq, value = line.partition(b"=")
        if not eq or not name:
            return None
        i = _INDEX.get(name)
        if i is not None:
            out[i] = value.decode("utf-8", "surrogateescape")
    return tuple(out)


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


def triplet_key(net: str, sender: str, recipient: str) -> bytes:
    """lc "NET/SENDER/RECIPIENT" with the sender substitutions (ASCII-only
    lowercasing, like Perl's lc on bytes)."""
    return f"{net}/{sender_substitutions(sender)}/{recipient}".encode(
        "utf-8", "surrogateescape").lower()


def ipv4_client(address: str, ipv4cidr: int, by_host: bool
                ) -> tuple[int, str, str, bytes] | None:
    """(value, address text, triplet NET, client key) of an IPv4 address, or None."""
    try:
        v4 = socket.inet_pton(socket.AF_INET, address.strip())
    except (OSError, ValueError):      # not IPv4; ValueError: a NUL or non-ASCII character
        return None
    value = int.from_bytes(v4, "big")
    text = socket.inet_ntop(socket.AF_INET, v4)
    if by_host:
        net = f"{text}/32"
    else:
        masked = value & ((0xFFFFFFFF << (32 - ipv4cidr)) & 0xFFFFFFFF) if ipv4cidr > 0 else 0
        net = socket.inet_ntop(socket.AF_INET, masked.to_bytes(4, "big"))
    return value, text, net, b"awl:" + text.encode()


def log_line(fields: tuple[str | None, ...], action: str, reason: str | None = None,
             info: str | None = None) -> str:
    """mylog_action(): postgrey's log line for a decision."""
    line = f"action={action}"
    if reason is not None:
        line += f", reason={reason}"
    if info is not None:
        line += f", {info}"
    v = fields[F_NAME]
    if v and v != "0":          # Perl truthiness
        line += f", client_name={v}"
    v = fields[F_ADDRESS]
    if v and v != "0":
        line += f", client_address={v}"
    v = fields[F_SENDER]
    if v and v != "0":
        line += f", sender={v}"
    v = fields[F_RECIPIENT]
    if v and v != "0":
        line += f", recipient={v}"
    q = fields[F_QUEUE_ID]
    return f"{q}: {line}" if q and q != "0" else line


class Fast:
    """postier.policy.greylist's decision for the common requests, in one call.

    `greylist`: the store's decision (greystore GreyStore.greylist); `texts`:
    the greylist action around the recipient domain, (head, tail) without
    and with an etrn_domain attribute, or None; `emit(line)`: logs an
    action line (None: not logged); `finish(fields, now, address,
    decision)`: the action for the store's other outcomes (Greylist._finish).
    """

    def __init__(self, greylist: Callable, delay: int, retry_window: int, awl_clients: int,
                 ipv4cidr: int, by_host: bool, texts: tuple | None,
                 emit: Callable[[str], None] | None, finish: Callable[..., str]):
        self.greylist = greylist
        self.delay = delay
        self.retry_window = retry_window
        self.awl_clients = awl_clients
        self.ipv4cidr = ipv4cidr
        self.by_host = by_host
        self.texts = texts
        self.emit = emit
        self.finish = finish

    def handle(self, data: bytes) -> str | tuple | None:
        """One read: None when it is not one whole simple request (parse());
        the FIELDS tuple when the greylist procedure must decide it (another
        request type, a missing attribute, not an IPv4 client, a
        policy_test_time that is not plain digits); else the action, the
        decision made in the store and logged."""
        f = parse(data)
        if f is None:
            return None
        if f[F_REQUEST] != "smtpd_access_policy" or f[F_NAME] is None:
            return f
        address, sender, recipient = f[F_ADDRESS], f[F_SENDER], f[F_RECIPIENT]
        if address is None or sender is None or recipient is None:
            return f
        info = ipv4_client(address, self.ipv4cidr, self.by_host)
        if info is None:
            return f
        tt = f[F_TEST_TIME]
        if tt is None:
            now = int(time.time())
        elif tt.isascii() and tt.isdigit() and len(tt) <= 18:
            now = int(tt)
        else:
            return f
        decision = self.greylist(triplet_key(info[2], sender, recipient), info[3], now,
                                 self.delay, self.retry_window, self.awl_clients)
        result, first, awl_count, corrected = decision
        if result == R_PASS and not corrected:
            if self.emit is not None:
                self.emit(log_line(f, "pass", "triplet found"))
            return "DUNNO"
        if result == R_GREYLIST and not corrected and not awl_count and self.texts is not None:
            if self.emit is not None:
                self.emit(log_line(f, "greylist", "new" if now == first else
                                   f"early-retry ({self.delay - (now - first)}s missing)"))
            head, tail = self.texts[f[F_ETRN] is not None]
            return head + recipient_domain(recipient) + tail
        return self.finish(f, now, info[1], decision)


def recipient_domain(rcpt: str) -> str:
    """postgrey's s/^.*@//: everything up to the last "@" of the first line."""
    if "\n" not in rcpt:
        return rcpt.rpartition("@")[2]
    first, _, rest = rcpt.partition("\n")
    return first.rpartition("@")[2] + "\n" + rest
