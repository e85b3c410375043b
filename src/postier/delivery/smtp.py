"""The smtp and lmtp delivery agents: Postfix's smtp(8)/lmtp(8) client on asyncio.

`AGENTS["smtp"]` and `AGENTS["lmtp"]` take a `DeliveryRequest` and return one
`RecipientStatus` per recipient; the queue manager does the rest (logging the
`to=<...>` line, defer/bounce).  Status texts are Postfix 3.7's, word for
word: `host mx[192.0.2.1] said: 550 5.1.1 <u@x>: User unknown (in reply to
RCPT TO command)`, `connect to mx[192.0.2.1]:25: Connection refused`, `lost
connection with mx[192.0.2.1] while sending RCPT TO`, `conversation with
mx[192.0.2.1] timed out while receiving the initial server greeting`, `host
mx[192.0.2.1] refused to talk to me: 554 ...`, `message size N exceeds size
limit M of server mx[192.0.2.1]`, `mail for x loops back to myself`, ...
A server reply without an enhanced status code gets X.0.0 from its reply
code, as in Postfix.

Destinations (the request's nexthop; the qmgr passes relayhost or a
transport's nexthop here):

* smtp: `domain` or `host:port` -> MX lookup (RFC 5321 implicit MX when
  there is none); `[host]:port` / `[ip]:port` -> no MX lookup.  A comma or
  space separated list is tried in order, then smtp_fallback_relay.
* lmtp: `unix:/path` (relative paths are under queue_directory),
  `inet:host:port`, `host:port`, `[ip]:port`; no MX lookup.

Per address: connect (smtp_connect_timeout), greeting, EHLO (HELO when
EHLO fails with anything but 421; LHLO for lmtp), opportunistic STARTTLS
(smtp_tls_security_level none/may/encrypt; `may` does no certificate check
and retries the same address in plaintext after a handshake failure;
verify/secure check the certificate against smtp_tls_CAfile/CApath or the
system store), then one mail transaction: XFORWARD (when offered and
smtp_send_xforward_command = yes), MAIL FROM with SIZE, BODY=8BITMIME/7BIT,
SMTPUTF8, ENVID/RET (when DSN is offered), RCPT TO with NOTIFY/ORCPT, DATA --
all in one write when the server offers PIPELINING, as Postfix does -- then
the content streamed from the queue file, dot-stuffed by the native
`dataframe.stuff` in chunks that end at a line end.  Soft errors at a
server that is not the last one keep the recipients for the next MX host
(`smtp_mx_address_limit`, `smtp_mx_session_limit`); the last server's
errors defer (4xx) or bounce (5xx).

Connections are kept idle after a delivery (smtp_connection_cache_on_demand,
smtp_connection_cache_destinations) for smtp_connection_cache_time_limit
seconds and reused for the same transport and nexthop with an RSET probe
(pipelined with the next transaction when the server offers PIPELINING),
within smtp_connection_reuse_time_limit / smtp_connection_reuse_count_limit.
`close_idle_sessions()` closes them (the qmgr calls it on shutdown).

Parameters read (lmtp reads the lmtp_ variants; lmtp_lhlo_name and
lmtp_lhlo_timeout stand for the helo ones): smtp_connect_timeout,
smtp_helo_timeout, smtp_xforward_timeout, smtp_mail_timeout,
smtp_rcpt_timeout, smtp_data_init_timeout, smtp_data_xfer_timeout,
smtp_data_done_timeout, smtp_rset_timeout, smtp_quit_timeout,
smtp_starttls_timeout, smtp_helo_name, smtp_tcp_port, smtp_host_lookup,
smtp_dns_support_level, disable_dns_lookups, inet_protocols,
smtp_address_preference, smtp_randomize_addresses,
smtp_balance_inet_protocols, smtp_mx_address_limit, smtp_mx_session_limit,
smtp_defer_if_no_mx_address_found, ignore_mx_lookup_error,
smtp_fallback_relay, smtp_tls_security_level (smtp_use_tls,
smtp_enforce_tls), smtp_tls_cert_file, smtp_tls_key_file, smtp_tls_CAfile,
smtp_tls_CApath, smtp_tls_note_starttls_offer, smtp_tls_wrappermode,
smtp_send_xforward_command, smtp_skip_5xx_greeting,
smtp_skip_quit_response, smtp_always_send_ehlo, smtp_never_send_ehlo,
smtp_discard_ehlo_keywords, smtp_line_length_limit,
smtp_connection_cache_on_demand, smtp_connection_cache_destinations,
smtp_connection_cache_time_limit, smtp_connection_reuse_time_limit,
smtp_connection_reuse_count_limit, myhostname, relayhost, soft_bounce,
queue_directory, inet_interfaces, proxy_interfaces, dns_nameservers
(postier-only, see postier.delivery.dnsmx).

XFORWARD values come from `DeliveryRequest.attrs`: client_name,
client_address, client_port, protocol_name (or client_protocol), helo_name,
log_ident (default: the queue ID), rewrite_context (local/remote, sent as
SOURCE=LOCAL/REMOTE).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from postier import log
from postier.delivery import DeliveryRequest, RecipientStatus, dnsmx, register
from postier.native import load as _load_native

__all__ = [
    "Resp", "Settings", "close_idle_sessions", "deliver", "dsn_valid", "fold_long_lines",
    "lmtp_agent", "parse_destination", "parse_reply", "quote_821_address", "smtp_agent",
    "stuffed_chunks", "xtext",
]

_df = _load_native("dataframe")
CRLF = b"\r\n"

# Postfix's protocol stage texts (smtp_proto.c xfer_states / smtp_helo)
ST_GREETING = "receiving the initial server greeting"
ST_EHLO = "performing the EHLO handshake"
ST_HELO = "performing the HELO handshake"
ST_LHLO = "performing the LHLO handshake"
ST_STARTTLS = "receiving the STARTTLS response"
ST_XFWD1 = "sending XFORWARD name/address"
ST_XFWD2 = "sending XFORWARD protocol/helo_name"
ST_MAIL = "sending MAIL FROM"
ST_RCPT = "sending RCPT TO"
ST_DATA = "sending DATA command"
ST_BODY = "sending message body"
ST_DOT = "sending end of data -- message may be sent more than once"
ST_RSET = "sending final RSET"
ST_PROBE = "sending RSET probe"
ST_QUIT = "sending QUIT"

REQ_XFWD1 = "XFORWARD name/address command"
REQ_XFWD2 = "XFORWARD helo/protocol command"
REQ_MAIL = "MAIL FROM command"
REQ_RCPT = "RCPT TO command"
REQ_DATA = "DATA command"
REQ_DOT = "end of DATA command"

# server features (smtp.h SMTP_FEATURE_*)
F_ESMTP = 1 << 0
F_8BITMIME = 1 << 1
F_PIPELINING = 1 << 2
F_SIZE = 1 << 3
F_STARTTLS = 1 << 4
F_DSN = 1 << 5
F_SMTPUTF8 = 1 << 6
F_XFORWARD = 1 << 7
F_BEST_MX = 1 << 8

_KEYWORDS = {"8BITMIME": F_8BITMIME, "PIPELINING": F_PIPELINING, "SIZE": F_SIZE,
             "STARTTLS": F_STARTTLS, "DSN": F_DSN, "SMTPUTF8": F_SMTPUTF8,
             "XFORWARD": F_XFORWARD}

TLS_ORDER = {"none": 0, "may": 1, "encrypt": 2, "fingerprint": 3, "dane": 3, "dane-only": 3,
             "verify": 3, "secure": 3}

CHUNK = 1 << 18          # content read and stuffed in pieces of this size (ending at a LF)
HIGH_WATER = 1 << 16     # drain the socket buffer above this


# --------------------------------------------------------------------------- replies

class Resp:
    """One server reply: `code` (0 when the last line has no 3-digit code),
    `dsn` (enhanced status, derived as Postfix does when absent) and `text`
    (every reply line with its code, \\n-joined, non-printables as '?')."""

    __slots__ = ("code", "dsn", "text")

    def __init__(self, code: int, dsn: str, text: str):
        self.code = code
        self.dsn = dsn
        self.text = text

    @property
    def line(self) -> str:
        """The reply on one line, as Postfix logs it (translit \\n -> space)."""
        return self.text.replace("\n", " ")

    def __repr__(self) -> str:
        return f"Resp({self.code}, {self.dsn!r}, {self.text!r})"


_DSN_RE = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?=[ \t]|$)")
_NONPRINT = re.compile(r"[\x00-\x1f\x7f\ufffd]")


def dsn_valid(text: str) -> int:
    """Length of the RFC 3463 status code `text` starts with, else 0."""
    m = _DSN_RE.match(text)
    return m.end() if m else 0


def printable(raw: bytes) -> str:
    """A reply line as text: CR/LF stripped, non-printable characters as '?'."""
    raw = raw.rstrip(b"\r\n")
    try:
        s = raw.decode("ascii")
    except UnicodeDecodeError:
        s = raw.decode("utf-8", "replace")
    return _NONPRINT.sub("?", s) if _NONPRINT.search(s) else s


def _three_digits(line: str) -> bool:
    return len(line) >= 3 and line[:3].isdigit() and (len(line) == 3 or not line[3].isdigit())


def line_ends_reply(line: str) -> bool:
    """smtp_chat_resp(): a line of 3 digits then space or end finishes a reply;
    "NNN-" continues it, and so does anything unrecognised."""
    return _three_digits(line) and (len(line) == 3 or line[3] == " ")


def parse_reply(lines: list[str], last: str | None = None) -> Resp:
    """A reply from its lines (as `printable()` returns them): code and
    enhanced status from the last line read (`last`, default the last of
    `lines`); X.0.0 when the server sent none or one whose class does not
    match the code; 5.5.0 for anything not 2/4/5xx."""
    if last is None:
        last = lines[-1] if lines else ""
    text = "\n".join(lines)
    if not _three_digits(last):
        return Resp(0, "5.5.0", text)
    code = int(last[:3])
    dsn = "5.5.0"
    if last[0] in "245":
        rest = last[4:].lstrip(" ")
        n = dsn_valid(rest)
        dsn = rest[:n] if n and rest[0] == last[0] else last[0] + ".0.0"
    return Resp(code, dsn, text)


# --------------------------------------------------------------------------- encodings

def xtext(value: str, special: str = "") -> str:
    """RFC 3461 xtext (Postfix xtext_quote): '+', chars outside 33..126 and
    the `special` ones as +XX (UTF-8 bytes for non-ASCII)."""
    out = []
    for b in value.encode("utf-8", "surrogateescape"):
        c = chr(b)
        if b < 33 or b > 126 or c == "+" or c in special:
            out.append(f"+{b:02X}")
        else:
            out.append(c)
    return "".join(out)


_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]+)*")


def _quote_local(local: str) -> str:
    if local == "" or _ATEXT.fullmatch(local):
        return local
    return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_821_address(addr: str) -> str:
    """Quote the local part of an envelope address when RFC 5321 requires it
    (smtp_quote_rfc821_envelope = yes): `a b@x` -> `"a b"@x`."""
    if not addr:
        return addr
    local, at, domain = addr.rpartition("@")
    if not at:
        return _quote_local(addr)
    if local.startswith('"') and local.endswith('"') and len(local) > 1:
        return addr
    return _quote_local(local) + "@" + domain


def fold_long_lines(data: bytes, limit: int) -> bytes:
    """smtp_line_length_limit: break lines longer than `limit` (without the
    line end) with <CR><LF><SPACE>; LF-terminated input, LF-terminated output."""
    if limit <= 0 or len(data) <= limit:
        return data
    lines = data.split(b"\n")
    longest = max(map(len, lines))
    if longest <= limit:
        return data
    if longest == limit + 1 and all(len(x) <= limit or x.endswith(b"\r") for x in lines):
        return data                         # only CRs of CRLF line ends are over
    out = []
    for line in lines:
        cr = line.endswith(b"\r")
        core = line[:-1] if cr else line
        if len(core) <= limit:
            out.append(line)
            continue
        pieces = [core[:limit]]
        rest = core[limit:]
        while rest:
            pieces.append(b" " + rest[: limit - 1])
            rest = rest[limit - 1:]
        out.append(b"\n".join(pieces) + (b"\r" if cr else b""))
    return b"\n".join(out)


def stuffed_chunks(f: BinaryIO, offset: int, size: int, *, chunk: int = CHUNK,
                   line_limit: int = 0, stuff: Callable[[bytes], bytes] | None = None,
                   ) -> Iterator[bytes]:
    """The message content of queue file `f` as it goes on the wire after DATA:
    CRLF line ends, dot-stuffed, ".<CR><LF>" at the end; read and stuffed in
    pieces that end at a line end (the native stuff() sees whole lines only).
    `stuff` defaults to the native (or, with POSTIER_PURE=1, pure) dataframe.stuff."""
    if stuff is None:
        stuff = _df.stuff
    f.seek(offset)
    remaining = size
    carry = b""
    while True:
        buf = f.read(min(chunk, remaining)) if remaining else b""
        if remaining and not buf:
            raise OSError("short read from queue file")
        remaining -= len(buf)
        data = carry + buf if carry else buf
        if remaining:
            k = data.rfind(b"\n")
            if k < 0:
                carry = data
                continue
            carry = data[k + 1:]
            data = data[: k + 1]
            if line_limit:
                data = fold_long_lines(data, line_limit)
            yield stuff(data)[:-3]
        else:
            if line_limit:
                data = fold_long_lines(data, line_limit)
            yield stuff(data)
            return


# --------------------------------------------------------------------------- settings

class Settings:
    """The client's parameters for one configuration (smtp_ or lmtp_ names)."""

    def __init__(self, cfg: Any, lmtp: bool):
        p = "lmtp" if lmtp else "smtp"
        self.lmtp = lmtp
        self.prefix = p
        t = cfg.get_time
        b = cfg.get_bool
        self.connect_timeout = t(f"{p}_connect_timeout")
        self.helo_timeout = t("lmtp_lhlo_timeout" if lmtp else "smtp_helo_timeout")
        self.xforward_timeout = t(f"{p}_xforward_timeout")
        self.mail_timeout = t(f"{p}_mail_timeout")
        self.rcpt_timeout = t(f"{p}_rcpt_timeout")
        self.data_init_timeout = t(f"{p}_data_init_timeout")
        self.data_xfer_timeout = t(f"{p}_data_xfer_timeout")
        self.data_done_timeout = t(f"{p}_data_done_timeout")
        self.rset_timeout = t(f"{p}_rset_timeout")
        self.quit_timeout = t(f"{p}_quit_timeout")
        self.starttls_timeout = t(f"{p}_starttls_timeout")
        self.helo_name = cfg.get_str("lmtp_lhlo_name" if lmtp else "smtp_helo_name")
        self.tcp_port_text = cfg.get_str(f"{p}_tcp_port")
        self._port: int | None = None
        self.myhostname = cfg.get_str("myhostname")
        self.relayhost = cfg.get_str("relayhost").strip()
        self.soft_bounce = b("soft_bounce")
        self.queue_directory = cfg.get_str("queue_directory")
        level = cfg.get_str(f"{p}_dns_support_level")
        self.dns_disabled = level == "disabled" or (level == "" and b("disable_dns_lookups"))
        lookup = [x.lower() for x in cfg.get_list(f"{p}_host_lookup")]
        protocols = [x.lower() for x in cfg.get_list("inet_protocols")]
        fams: list[int] = []
        if "all" in protocols or "ipv4" in protocols:
            fams.append(socket.AF_INET)
        if "all" in protocols or "ipv6" in protocols:
            fams.append(socket.AF_INET6)
        self.lookup = dnsmx.LookupOptions(
            dns=not self.dns_disabled and "dns" in lookup,
            native=self.dns_disabled or "native" in lookup,
            families=tuple(fams),
            preference=cfg.get_str(f"{p}_address_preference").lower(),
            randomize=b(f"{p}_randomize_addresses"),
            balance=b(f"{p}_balance_inet_protocols"),
            address_limit=cfg.get_int(f"{p}_mx_address_limit"),
            nameservers=tuple(cfg.get_list("dns_nameservers")),
        )
        self._own_args = (cfg.get_list("inet_interfaces"), cfg.get_list("proxy_interfaces"))
        self._own: frozenset[str] | None = None
        self.mx_address_limit = cfg.get_int(f"{p}_mx_address_limit")
        self.mx_session_limit = cfg.get_int(f"{p}_mx_session_limit")
        self.defer_if_no_mx_address = b(f"{p}_defer_if_no_mx_address_found")
        self.ignore_mx_lookup_error = b("ignore_mx_lookup_error")
        self.fallback_relay = cfg.get_list(f"{p}_fallback_relay")
        level = cfg.get_str(f"{p}_tls_security_level").lower()
        if not level:
            level = ("encrypt" if b(f"{p}_enforce_tls") else
                     "may" if b(f"{p}_use_tls") else "none")
        self.tls_level = level
        self.tls_cert_file = cfg.get_str(f"{p}_tls_cert_file")
        self.tls_key_file = cfg.get_str(f"{p}_tls_key_file")
        self.tls_cafile = cfg.get_str(f"{p}_tls_CAfile")
        self.tls_capath = cfg.get_str(f"{p}_tls_CApath")
        self.tls_note_starttls_offer = b(f"{p}_tls_note_starttls_offer")
        self.tls_wrappermode = b(f"{p}_tls_wrappermode")
        self._ssl: dict[bool, ssl.SSLContext] = {}
        self.send_xforward = b(f"{p}_send_xforward_command")
        self.skip_5xx_greeting = b(f"{p}_skip_5xx_greeting")
        self.skip_quit_response = b(f"{p}_skip_quit_response")
        self.always_ehlo = True if lmtp else b("smtp_always_send_ehlo")
        self.never_ehlo = False if lmtp else b("smtp_never_send_ehlo")
        self.discard_keywords = {x.upper() for x in cfg.get_list(
            "lmtp_discard_lhlo_keywords" if lmtp else "smtp_discard_ehlo_keywords")}
        self.line_limit = cfg.get_int(f"{p}_line_length_limit")
        self.cache_on_demand = b(f"{p}_connection_cache_on_demand")
        self.cache_destinations = {x.lower() for x in cfg.get_list(f"{p}_connection_cache_destinations")}
        self.cache_time_limit = t(f"{p}_connection_cache_time_limit")
        self.reuse_time_limit = t(f"{p}_connection_reuse_time_limit")
        self.reuse_count_limit = cfg.get_int(f"{p}_connection_reuse_count_limit")

    def own_addresses(self) -> frozenset[str]:
        """This host's addresses (computed on first use, for MX loop detection)."""
        if self._own is None:
            self._own = dnsmx.own_addresses(*self._own_args)
            self.lookup.own_addresses = self._own
        return self._own

    def default_port(self) -> int:
        if self._port is None:
            self._port = service_port(self.tcp_port_text)
        return self._port

    def ssl_context(self, verify: bool) -> ssl.SSLContext:
        ctx = self._ssl.get(verify)
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if verify:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.check_hostname = True
                if self.tls_cafile or self.tls_capath:
                    ctx.load_verify_locations(self.tls_cafile or None, self.tls_capath or None)
                else:
                    ctx.load_default_certs()
            else:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if self.tls_cert_file:
                ctx.load_cert_chain(self.tls_cert_file, self.tls_key_file or None)
            self._ssl[verify] = ctx
        return ctx

    def caches(self, domain: str) -> bool:
        return self.cache_on_demand or domain.lower() in self.cache_destinations


_SETTINGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_DEFAULT_CFG: Any = None


def settings_for(cfg: Any, lmtp: bool) -> Settings:
    """Settings for `cfg` (None: Postfix defaults), computed once per Config."""
    global _DEFAULT_CFG
    if cfg is None:
        if _DEFAULT_CFG is None:
            from postier.config import Config
            _DEFAULT_CFG = Config.from_text("")
        cfg = _DEFAULT_CFG
    per = _SETTINGS.get(cfg)
    if per is None:
        per = _SETTINGS[cfg] = {}
    st = per.get(lmtp)
    if st is None:
        st = per[lmtp] = Settings(cfg, lmtp)
    return st


class DestinationError(ValueError):
    """A nexthop that does not parse (Postfix: fatal "... in server description")."""


def service_port(service: str) -> int:
    if service.isdigit():
        port = int(service)
        if not 0 < port < 65536:
            raise DestinationError(f"bad network port: {service}")
        return port
    try:
        return socket.getservbyname(service, "tcp")
    except OSError:
        raise DestinationError(f"unknown service: {service}/tcp") from None


def parse_destination(dest: str, default_port: int) -> tuple[str, int, bool]:
    """Postfix host_port(): `[host]:port`, `[host]`, `host:port`, `host` ->
    (host, port, bracketed).  `[ipv6:addr]` loses its `ipv6:` prefix."""
    bracketed = dest.startswith("[")
    if bracketed:
        end = dest.find("]")
        if end < 0:
            raise DestinationError(f"missing \"]\" in server description: {dest}")
        host, rest = dest[1:end], dest[end + 1:]
        if rest and not rest.startswith(":"):
            raise DestinationError(f"garbage after \"]\" in server description: {dest}")
        port_text = rest[1:]
        if host[:5].lower() == "ipv6:":
            host = host[5:]
    else:
        host, sep, port_text = dest.rpartition(":")
        if not sep:
            host, port_text = dest, ""
    if not host:
        raise DestinationError(f"missing host information in server description: {dest}")
    port = service_port(port_text) if port_text else default_port
    return host, port, bracketed


# --------------------------------------------------------------------------- session

class _StreamError(Exception):
    """I/O trouble: kind "eof" (lost connection) or "time" (timeout) at `stage`."""

    def __init__(self, kind: str, stage: str):
        super().__init__(kind, stage)
        self.kind = kind
        self.stage = stage


class _StaleSession(Exception):
    """A cached connection failed its RSET probe: connect afresh."""


class _TlsFailure(Exception):
    def __init__(self, text: str, dsn: str = "4.7.5"):
        super().__init__(text)
        self.text = text
        self.dsn = dsn


class Session:
    """One connection to one server."""

    __slots__ = ("reader", "writer", "host", "addr", "port", "namaddr", "namaddrport", "lmtp",
                 "features", "size_limit", "xforward", "tls", "created", "reuse_count",
                 "dont_cache", "cache_key", "idle_handle", "retry_plain", "transport",
                 "quit_sent")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str,
                 addr: str, port: int, lmtp: bool):
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.host = host
        self.addr = addr
        self.port = port
        self.namaddr = f"{host}[{addr}]"
        self.namaddrport = f"{host}[{addr}]:{port}" if port else self.namaddr
        self.lmtp = lmtp
        self.features = 0
        self.size_limit = 0
        self.xforward: set[str] = set()
        self.tls = False
        self.created = time.monotonic()
        self.reuse_count = 0
        self.dont_cache = False
        self.cache_key: tuple | None = None
        self.idle_handle: asyncio.TimerHandle | None = None
        self.retry_plain = False
        self.quit_sent = False

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def read_reply(self, timeout: float, stage: str) -> Resp:
        """The next reply; _StreamError on timeout, EOF or a reset."""
        lines: list[str] = []
        size = 0
        readuntil = self.reader.readuntil
        try:
            async with asyncio.timeout(timeout or None):
                while True:
                    line = printable(await readuntil(b"\n"))[:2048]
                    if size < 2048:        # Postfix keeps at most line_length_limit of text
                        lines.append(line)
                        size += len(line) + 1
                    if line_ends_reply(line):
                        break
        except TimeoutError:
            raise _StreamError("time", stage) from None
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError):
            raise _StreamError("eof", stage) from None
        return parse_reply(lines, line)

    async def drain(self, timeout: float, stage: str) -> None:
        try:
            async with asyncio.timeout(timeout or None):
                await self.writer.drain()
        except TimeoutError:
            raise _StreamError("time", stage) from None
        except (ConnectionError, OSError):
            raise _StreamError("eof", stage) from None

    def usable(self) -> bool:
        return not self.transport.is_closing() and not self.reader.at_eof()

    def abort(self) -> None:
        """Close without ceremony (dead or confused connection)."""
        if self.idle_handle is not None:
            self.idle_handle.cancel()
            self.idle_handle = None
        try:
            self.transport.abort()
        except Exception:  # noqa: BLE001 - best effort on a dead transport
            pass

    def retire(self) -> None:
        """Send QUIT (unless sent already) without waiting for the reply, then close."""
        if self.idle_handle is not None:
            self.idle_handle.cancel()
            self.idle_handle = None
        try:
            if not self.transport.is_closing():
                if not self.quit_sent:
                    self.quit_sent = True
                    self.writer.write(b"QUIT\r\n")
                self.writer.close()
        except Exception:  # noqa: BLE001 - best effort on a dying transport
            self.abort()


# --------------------------------------------------------------------------- connection cache

_IDLE: dict[tuple, list[Session]] = {}


def _cache_put(key: tuple, s: Session, idle_limit: float) -> None:
    loop = asyncio.get_running_loop()
    key = (id(loop),) + key          # a connection belongs to its event loop
    s.cache_key = key
    s.idle_handle = loop.call_later(max(idle_limit, 0.001), _cache_expire, key, s)
    _IDLE.setdefault(key, []).append(s)


def _cache_expire(key: tuple, s: Session) -> None:
    s.idle_handle = None
    lst = _IDLE.get(key)
    if lst and s in lst:
        lst.remove(s)
        if not lst:
            del _IDLE[key]
    s.retire()


def _cache_take(key: tuple) -> Session | None:
    key = (id(asyncio.get_running_loop()),) + key
    lst = _IDLE.get(key)
    while lst:
        s = lst.pop()
        if not lst:
            _IDLE.pop(key, None)
        if s.idle_handle is not None:
            s.idle_handle.cancel()
            s.idle_handle = None
        if s.usable():
            return s
        s.abort()
        lst = _IDLE.get(key)
    return None


def close_idle_sessions() -> int:
    """QUIT and close every cached idle connection; returns how many."""
    n = 0
    for lst in list(_IDLE.values()):
        for s in lst:
            s.retire()
            n += 1
    _IDLE.clear()
    return n


def idle_session_count() -> int:
    return sum(len(v) for v in _IDLE.values())


# --------------------------------------------------------------------------- delivery

class _Delivery:
    """One delivery request: recipient bookkeeping and the protocol engine."""

    def __init__(self, req: DeliveryRequest, st: Settings):
        self.req = req
        self.st = st
        self.lmtp = st.lmtp
        n = len(req.recipients)
        self.results: list[RecipientStatus | None] = [None] * n
        self.marked: set[int] = set()          # KEEP: try again at the next server
        self.final = False                     # this server is the last one
        self.why: tuple[str, str] | None = None
        self.t_start = time.monotonic()
        self.t_setup = 0.0
        self.conn_use = 0
        self.qid = req.queue_id
        self.nexthop = req.nexthop
        self.sessions: set[Session] = set()     # open, not yet cleaned up

    # -- recipient bookkeeping (smtp_trouble.c) ---------------------------
    def left(self) -> list[int]:
        return [i for i, r in enumerate(self.results) if r is None and i not in self.marked]

    def any_left(self) -> bool:
        return any(r is None for r in self.results)

    def _finish(self, i: int, status: str, dsn: str, text: str, relay: str) -> None:
        now = time.monotonic()
        setup = self.t_setup or now
        if not self.t_setup:
            self.t_setup = now
        self.results[i] = RecipientStatus(
            self.req.recipients[i], status, dsn, text, relay,
            conn_delay=max(0.0, setup - self.t_start), xmit_delay=max(0.0, now - setup),
            conn_use=self.conn_use)

    @staticmethod
    def _fill(dsn: str, text: str, remote: bool) -> tuple[str, str]:
        if remote and dsn[:1] not in ("4", "5"):
            return "5.5.0", "Protocol error: " + text
        return dsn, text

    def _soft(self, dsn: str) -> bool:
        return dsn[0] == "4" or (dsn[0] == "5" and self.st.soft_bounce)

    def rcpt_fail(self, i: int, dsn: str, text: str, s: Session | None, remote: bool = True) -> None:
        dsn, text = self._fill(dsn, text, remote)
        if self._soft(dsn) and not self.final:
            log.info(f"{self.qid}: {text}")
            self.marked.add(i)
        else:
            self._finish(i, "deferred" if dsn[0] == "4" else "bounced", dsn, text,
                         s.namaddrport if s else "none")

    def bulk_fail(self, dsn: str, text: str, s: Session | None, remote: bool = True) -> None:
        dsn, text = self._fill(dsn, text, remote)
        self.why = (dsn, text)
        left = self.left()
        if not left:
            return
        if self._soft(dsn) and not self.final:
            log.info(f"{self.qid}: {text}")
            self.marked.update(left)
        else:
            status = "deferred" if dsn[0] == "4" else "bounced"
            relay = s.namaddrport if s else "none"
            for i in left:
                self._finish(i, status, dsn, text, relay)

    def site_fail(self, s: Session | None, dsn: str, text: str, remote: bool = True) -> None:
        if s is not None:
            s.dont_cache = True
        self.bulk_fail(dsn, text, s, remote)

    def stream_except(self, s: Session, e: _StreamError) -> None:
        s.dont_cache = True
        s.abort()               # no QUIT after a timeout or a lost connection, as Postfix
        if e.kind == "time":
            text = f"conversation with {s.namaddr} timed out while {e.stage}"
        else:
            text = f"lost connection with {s.namaddr} while {e.stage}"
        self.bulk_fail("4.4.2", text, s, remote=False)

    def rcpt_done(self, i: int, resp: Resp, s: Session) -> None:
        self._finish(i, "sent", resp.dsn, resp.line, s.namaddrport)

    def statuses(self) -> list[RecipientStatus]:
        out = []
        for i, r in enumerate(self.results):
            if r is None:  # cannot happen; never lose a recipient
                self._finish(i, "deferred", "4.3.0", "server unavailable or unable to receive mail",
                             "none")
                r = self.results[i]
            out.append(r)
        return out

    # -- destinations (smtp_connect.c) --------------------------------------
    async def run(self) -> None:
        st = self.st
        nexthop = self.req.nexthop.strip()
        if self.lmtp and nexthop.startswith("unix:"):
            await self.connect_local(nexthop[5:])
        else:
            if self.lmtp and nexthop.startswith("inet:"):
                nexthop = nexthop[5:]
            if not nexthop and not self.lmtp and self.req.recipients:
                nexthop = self.req.recipients[0].address.rpartition("@")[2]
            sites = [x for x in re.split(r"[\s,]+", nexthop) if x]
            if not sites:
                self.final = True
                log.warning(f"{self.qid}: null destination: \"{self.req.nexthop}\"")
                self.bulk_fail("4.3.5", "null destination", None, remote=False)
                return
            await self.connect_inet(sites, len(sites), sites + list(st.fallback_relay))
        if self.any_left():
            self.marked.clear()
            self.final = True
            dsn, text = self.why or ("4.3.0", "server unavailable or unable to receive mail")
            self.bulk_fail(dsn, text, None, remote=False)

    async def connect_local(self, path: str) -> None:
        st = self.st
        if not path.startswith("/"):
            path = os.path.join(st.queue_directory, path)
        key = ("lmtp", self.req.transport, "unix:" + path)
        self.final = True
        caching = st.caches(path)
        s = _cache_take(key) if caching else None
        if s is not None:
            self.sessions.add(s)
            try:
                await self.xfer(s, probe=True)
                await self.cleanup_session(s, key)
                return
            except _StaleSession:     # nothing was delivered: connect afresh
                self.sessions.discard(s)
                s.abort()
        try:
            async with asyncio.timeout(st.connect_timeout or None):
                reader, writer = await asyncio.open_unix_connection(path)
        except TimeoutError:
            self.why = ("4.4.1", f"connect to {st.myhostname}[{path}]: Connection timed out")
            log.info(self.why[1])
            return
        except OSError as e:
            self.why = ("4.4.1", f"connect to {st.myhostname}[{path}]: {_strerror(e)}")
            log.info(self.why[1])
            return
        s = Session(reader, writer, st.myhostname, path, 0, True)
        self.sessions.add(s)
        if await self.helo(s, loop_detect=False):
            await self.xfer(s)
        await self.cleanup_session(s, key if caching else None)

    async def connect_inet(self, sites: list[str], n_primary: int, all_sites: list[str]) -> None:
        st = self.st
        try:
            default_port = st.default_port()
        except DestinationError as e:
            self.final = True
            log.warning(f"{self.qid}: {e}")
            self.bulk_fail("4.3.5", str(e), None, remote=False)
            return
        for idx, dest in enumerate(all_sites):
            if not self.left():
                break
            final_nexthop = idx == len(all_sites) - 1
            try:
                host, port, literal = parse_destination(dest, default_port)
            except DestinationError as e:
                log.warning(f"{self.qid}: {e}")
                self.why = ("4.3.5", str(e))
                if final_nexthop:
                    break
                continue
            loop_detect = not self.lmtp and port == 25
            lookup_mx = not self.lmtp and not literal and not st.dns_disabled
            if loop_detect:
                st.own_addresses()
            i_am_mx = False
            addrs: list[dnsmx.Address] = []
            try:
                if lookup_mx:
                    addrs, i_am_mx = await dnsmx.domain_addrs(
                        host, port, st.lookup, loop_detect=loop_detect,
                        ignore_mx_lookup_error=st.ignore_mx_lookup_error,
                        defer_if_no_mx_address=st.defer_if_no_mx_address)
                else:
                    addrs = await dnsmx.host_addrs(host, port, st.lookup, loop_detect=loop_detect)
            except dnsmx.LookupFailure as e:
                self.why = (e.dsn, e.text)
                if e.dsn[2:] == "4.6":        # mail loops: don't try fallback relays
                    final_nexthop = True
            except (OSError, ValueError) as e:     # e.g. a bad dns_nameservers value
                log.warning(f"{self.qid}: DNS lookup of {host}: {e}")
                self.why = ("4.4.3", f"Name service error for name={host}: {e}")
            if i_am_mx:
                final_nexthop = True
            best_pref = addrs[0].pref if addrs else 0
            key = (self.st.prefix, self.req.transport, dest.lower())
            caching = idx == 0 and st.caches(host)
            sess_count = addr_count = 0
            if addrs and caching:
                s = _cache_take(key)
                if s is not None:
                    self.sessions.add(s)
                    rest = [a for a in addrs if a.addr != s.addr]
                    if st.mx_session_limit == 1 or st.mx_address_limit == 1:
                        rest = []
                    final = self.final
                    if final_nexthop and not rest:
                        self.final = True
                    try:
                        await self.xfer(s, probe=True)
                        await self.cleanup_session(s, key)
                        sess_count = addr_count = 1
                        addrs = rest
                    except _StaleSession:     # nothing was delivered: connect afresh
                        self.sessions.discard(s)
                        s.abort()
                        self.final = final
            i = 0
            retry_plain = False
            while i < len(addrs) and self.left():
                a = addrs[i]
                has_next = i + 1 < len(addrs)
                addr_count += 1
                if addr_count == st.mx_address_limit:
                    has_next = False
                plain = retry_plain
                retry_plain = False
                s = await self.connect_addr(a, plain)
                if s is not None:
                    if a.pref == best_pref:
                        s.features |= F_BEST_MX
                    if final_nexthop and not has_next:
                        self.final = True
                    if not await self.helo(s, loop_detect=loop_detect, plain=plain):
                        if s.retry_plain:
                            retry_plain = True
                            addr_count -= 1
                            self.final = False
                            await self.cleanup_session(s, None)
                            continue          # the same address again, without TLS
                    else:
                        sess_count += 1
                        if sess_count == st.mx_session_limit:
                            has_next = False
                        if final_nexthop and not has_next:
                            self.final = True
                        await self.xfer(s)
                    store = key if caching and s.features & F_BEST_MX else None
                    await self.cleanup_session(s, store)
                if not has_next:
                    break
                i += 1
            if final_nexthop:
                break
        if self.left() and self.why and self.why[0][0] == "5":
            # a hard lookup/handshake error with a relay host or fallback relay: defer
            if len(all_sites) > n_primary and idx >= n_primary:
                log.warning(f"{st.prefix}_fallback_relay configuration problem")
                self.why = ("4.3.5", self.why[1])
            elif not self.lmtp and st.relayhost and sites[0] == st.relayhost:
                log.warning("relayhost configuration problem")
                self.why = ("4.3.5", self.why[1])

    async def connect_addr(self, a: dnsmx.Address, plain: bool = False) -> Session | None:
        st = self.st
        sslctx = None
        if st.tls_wrappermode and not plain and TLS_ORDER.get(st.tls_level, 0) >= 2:
            sslctx = self._ssl_for(a)
        try:
            async with asyncio.timeout(st.connect_timeout or None):
                if sslctx is not None:
                    reader, writer = await asyncio.open_connection(
                        a.addr, a.port, family=a.family, ssl=sslctx[0], server_hostname=sslctx[1],
                        ssl_handshake_timeout=st.starttls_timeout or None)
                else:
                    reader, writer = await asyncio.open_connection(a.addr, a.port, family=a.family)
        except TimeoutError:
            text = f"connect to {a.host}[{a.addr}]:{a.port}: Connection timed out"
        except ssl.SSLError:
            text = "Cannot start TLS: handshake failure"
        except OSError as e:
            text = f"connect to {a.host}[{a.addr}]:{a.port}: {_strerror(e)}"
        else:
            s = Session(reader, writer, a.host, a.addr, a.port, self.lmtp)
            s.tls = sslctx is not None
            self.sessions.add(s)
            return s
        self.why = ("4.4.1" if text.startswith("connect") else "4.7.5", text)
        log.info(text)
        return None

    def _ssl_for(self, a: dnsmx.Address) -> tuple[ssl.SSLContext, str | None]:
        level = self.st.tls_level
        if level in ("verify", "secure"):
            name = a.host if level == "verify" else parse_destination(
                self.nexthop.split(",")[0].strip() or a.host, 25)[0]
            return self.st.ssl_context(True), name
        return self.st.ssl_context(False), None

    async def cleanup_session(self, s: Session, cache_key: tuple | None) -> None:
        """Cache a good session, else QUIT (when still usable) and close."""
        self.marked.clear()
        self.t_setup = 0.0
        self.sessions.discard(s)
        st = self.st
        if (cache_key is not None and not s.dont_cache and not s.quit_sent and s.usable()
                and not self._expired(s)):
            _cache_put(cache_key, s, st.cache_time_limit)
        elif s.usable():
            s.retire()
        else:
            s.abort()

    def _expired(self, s: Session) -> bool:
        st = self.st
        if st.reuse_time_limit and time.monotonic() - s.created >= st.reuse_time_limit:
            return True
        return bool(st.reuse_count_limit and s.reuse_count >= st.reuse_count_limit)

    # -- handshake (smtp_helo) ------------------------------------------------
    async def helo(self, s: Session, *, loop_detect: bool, plain: bool = False,
                   after_tls: bool = False) -> bool:
        """Greeting, EHLO/HELO/LHLO, STARTTLS; False when the session is unusable
        (the recipients are then marked or finished)."""
        st = self.st
        stage = ST_GREETING
        try:
            features = s.features & F_BEST_MX
            if not after_tls:
                r = await s.read_reply(st.helo_timeout, stage)
                if r.code // 100 != 2:
                    dsn = r.dsn
                    if r.code // 100 == 5 and st.skip_5xx_greeting:
                        dsn = "4" + dsn[1:]
                    self.site_fail(s, dsn, f"host {s.namaddr} refused to talk to me: {r.line}")
                    return False
                words = _after_code(r.text, "- \t\n").split()
                if loop_detect and words and words[0].lower() == st.myhostname.lower():
                    log.warning(f"host {s.namaddrport} greeted me with my own hostname {st.myhostname}")
                if self.lmtp or any(w.upper() == "ESMTP" for w in words):
                    features |= F_ESMTP
                if not self.lmtp:
                    if st.always_ehlo:
                        features |= F_ESMTP
                    if st.never_ehlo:
                        features &= ~F_ESMTP
            else:
                features |= F_ESMTP
            if self.lmtp:
                stage = ST_LHLO
                s.write(b"LHLO " + st.helo_name.encode() + CRLF)
                r = await s.read_reply(st.helo_timeout, stage)
                if r.code // 100 != 2:
                    self.site_fail(s, r.dsn, f"host {s.namaddr} refused to talk to me: {r.line}")
                    return False
            else:
                if features & F_ESMTP:
                    stage = ST_EHLO
                    s.write(b"EHLO " + st.helo_name.encode() + CRLF)
                    r = await s.read_reply(st.helo_timeout, stage)
                    if r.code // 100 != 2:
                        if r.code == 421:
                            self.site_fail(s, r.dsn, f"host {s.namaddr} refused to talk to me: {r.line}")
                            return False
                        features &= ~F_ESMTP
                if not features & F_ESMTP:
                    stage = ST_HELO
                    s.write(b"HELO " + st.helo_name.encode() + CRLF)
                    r = await s.read_reply(st.helo_timeout, stage)
                    if r.code // 100 != 2:
                        self.site_fail(s, r.dsn, f"host {s.namaddr} refused to talk to me: {r.line}")
                        return False
            s.size_limit = 0
            s.xforward = set()
            if features & F_ESMTP:
                n = -1
                for line in r.text.split("\n"):
                    words = _after_code(line, "- ").replace("=", " ").split()
                    if not words:
                        continue
                    n += 1
                    word = words[0].upper()
                    if n == 0:
                        if loop_detect and word == st.myhostname.upper():
                            log.warning(f"host {s.namaddrport} replied to HELO/EHLO with my own "
                                        f"hostname {st.myhostname}")
                            self.site_fail(s, "5.4.6" if features & F_BEST_MX else "4.4.6",
                                           f"mail for {self.nexthop} loops back to myself",
                                           remote=False)
                            return False
                        continue
                    bit = _KEYWORDS.get(word)
                    if bit is None or word in st.discard_keywords:
                        continue
                    features |= bit
                    if bit == F_SIZE and len(words) > 1:
                        if words[1].isdigit():
                            s.size_limit = int(words[1])
                        else:
                            log.warning(f'bad EHLO SIZE limit "{words[1]}" from {s.namaddrport}')
                    elif bit == F_XFORWARD:
                        s.xforward.update(w.upper() for w in words[1:])
            s.features = features
            if not features & F_SMTPUTF8 and self._requires_smtputf8():
                s.dont_cache = True
                self.bulk_fail("5.6.7", f"SMTPUTF8 is required, but was not offered by host "
                                        f"{s.namaddr}", s, remote=False)
                return False
            if features & F_SMTPUTF8 and not features & F_8BITMIME:
                log.info(f"host {s.namaddr} offers SMTPUTF8 support, but not 8BITMIME")
                s.features |= F_8BITMIME
            if not s.tls:
                return await self._maybe_starttls(s, loop_detect, plain)
            return True
        except _StreamError as e:
            self.stream_except(s, e)
            return False

    async def _maybe_starttls(self, s: Session, loop_detect: bool, plain: bool) -> bool:
        st = self.st
        level = "none" if plain else st.tls_level
        if s.lmtp and s.port == 0 and level == "may":
            level = "none"   # Postfix: opportunistic TLS is pointless on unix-domain sockets
        rank = TLS_ORDER.get(level, 0)
        offered = bool(s.features & F_STARTTLS)
        if offered and st.tls_note_starttls_offer and rank == 0:
            log.info(f"Host offered STARTTLS: [{s.host}]")
        if level in ("dane", "dane-only", "fingerprint"):
            log.warning(f"{st.prefix}_tls_security_level = {level} is not supported")
            self.site_fail(s, "4.7.0", "client TLS configuration problem", remote=False)
            return False
        if offered and rank >= 1:
            s.write(b"STARTTLS\r\n")
            r = await s.read_reply(st.starttls_timeout, ST_STARTTLS)
            if r.code // 100 == 2:
                try:
                    await self._start_tls(s)
                except _TlsFailure as e:
                    s.dont_cache = True
                    s.abort()
                    if level == "may":
                        s.retry_plain = True
                        self.final = False
                    self.bulk_fail(e.dsn, e.text, s, remote=False)
                    return False
                return await self.helo(s, loop_detect=loop_detect, after_tls=True)
            s.features &= ~F_STARTTLS
            if rank >= 2:
                self.site_fail(s, r.dsn, f"TLS is required, but host {s.namaddr} refused to "
                                         f"start TLS: {r.line}")
                return False
            return True
        if rank >= 2:
            self.site_fail(s, "4.7.4", f"TLS is required, but was not offered by host {s.namaddr}",
                           remote=False)
            return False
        return True

    async def _start_tls(self, s: Session) -> None:
        st = self.st
        ctx, name = self._ssl_for(dnsmx.Address(s.host, s.addr, 0, 0, s.port))
        try:
            await s.writer.start_tls(ctx, server_hostname=name or None,
                                     ssl_handshake_timeout=st.starttls_timeout or None)
        except ssl.SSLCertVerificationError as e:
            if getattr(e, "verify_code", 0) in (62, 63, 64):   # host name / email / IP mismatch
                raise _TlsFailure("Server certificate not verified") from None
            raise _TlsFailure("Server certificate not trusted") from None
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError, EOFError):
            raise _TlsFailure("Cannot start TLS: handshake failure") from None
        s.transport = s.writer.transport
        s.tls = True

    def _requires_smtputf8(self) -> bool:
        req = self.req
        if not req.smtputf8:
            return False
        if not req.sender.isascii():
            return True
        return any(not r.address.isascii() for r in req.recipients)

    # -- the mail transaction (smtp_xfer / smtp_loop) -----------------------
    def _mail_command(self, s: Session) -> bytes:
        req = self.req
        cmd = "MAIL FROM:<" + quote_821_address(req.sender) + ">"
        f = s.features
        if f & F_SIZE:
            cmd += f" SIZE={req.content_size}"
        if f & F_8BITMIME:
            body = req.body_type.upper()
            if body == "8BITMIME":
                cmd += " BODY=8BITMIME"
            elif body == "7BIT":
                cmd += " BODY=7BIT"
        if f & F_DSN:
            if req.dsn_envid:
                cmd += " ENVID=" + xtext(req.dsn_envid, "+=")
            if req.dsn_ret:
                cmd += " RET=" + req.dsn_ret.upper()
        if f & F_SMTPUTF8 and req.smtputf8:
            cmd += " SMTPUTF8"
        return cmd.encode("utf-8", "surrogateescape")

    def _rcpt_command(self, s: Session, i: int) -> bytes:
        r = self.req.recipients[i]
        cmd = "RCPT TO:<" + quote_821_address(r.address) + ">"
        if s.features & F_DSN:
            orcpt = r.dsn_orcpt
            if not orcpt and r.orig:
                local, at, domain = r.orig.rpartition("@")
                quoted = (_quote_local(local) + at + domain) if at else _quote_local(r.orig)
                utf8 = self.req.smtputf8 and not quoted.isascii()
                orcpt = ("utf-8;" if utf8 else "rfc822;") + quoted
            if orcpt:
                if orcpt[:6].lower() == "utf-8;":
                    cmd += " ORCPT=" + orcpt[:6] + _uxtext(orcpt[6:])
                else:
                    cmd += " ORCPT=" + xtext(orcpt, "=")
            if r.dsn_notify:
                cmd += " NOTIFY=" + r.dsn_notify.upper().replace(" ", "")
        return cmd.encode("utf-8", "surrogateescape")

    def _xforward_commands(self, s: Session) -> list[tuple[bytes, str, str]]:
        if not (self.st.send_xforward and s.features & F_XFORWARD):
            return []
        a = self.req.attrs

        def known(v: str | None) -> bool:
            return bool(v) and v.lower() != "unknown"

        first = []
        for attr, key in (("NAME", "client_name"), ("ADDR", "client_address"),
                          ("PORT", "client_port")):
            v = a.get(key)
            if attr in s.xforward and known(v):
                first.append(f"{attr}={xtext(v)}")
        second = []
        proto = a.get("protocol_name") or a.get("client_protocol")
        if "PROTO" in s.xforward and known(proto):
            second.append(f"PROTO={xtext(proto)}")
        helo = a.get("helo_name")
        if "HELO" in s.xforward and helo:
            second.append(f"HELO={xtext(helo)}")
        ident = a.get("log_ident") or self.req.queue_id
        if "IDENT" in s.xforward and ident:
            second.append(f"IDENT={xtext(ident)}")
        ctx = a.get("rewrite_context")
        if "SOURCE" in s.xforward and ctx:
            second.append("SOURCE=" + ("LOCAL" if ctx.lower() == "local" else "REMOTE"))
        out = []
        if first:
            out.append((("XFORWARD " + " ".join(first)).encode(), ST_XFWD1, REQ_XFWD1))
        if second:
            out.append((("XFORWARD " + " ".join(second)).encode(), ST_XFWD2, REQ_XFWD2))
        return out

    async def xfer(self, s: Session, probe: bool = False) -> None:
        """One mail transaction on session `s` (after a successful handshake).
        With `probe` (a cached session) an RSET goes first; its failure raises
        _StaleSession before any recipient was touched."""
        st = self.st
        left = self.left()
        if not left:
            return
        req = self.req
        if s.size_limit and s.size_limit < req.content_size:
            self.bulk_fail("5.3.4", f"message size {req.content_size} exceeds size limit "
                                    f"{s.size_limit} of server {s.namaddr}", s, remote=False)
            if not self._keep(s):
                s.quit_sent = True      # Postfix just closes such a session (no QUIT)
            return
        if probe:
            s.reuse_count += 1
        # log_adhoc(): conn_use=N (uses of this connection) once it was reused
        self.conn_use = s.reuse_count + 1 if s.reuse_count else 0
        pipelining = bool(s.features & F_PIPELINING)
        # command, stage, request text, kind, recipient index
        steps: list[tuple[bytes, str, str, str, int]] = []
        if probe:
            steps.append((b"RSET", ST_PROBE, "", "probe", -1))
        for cmd, stage, reqtext in self._xforward_commands(s):
            steps.append((cmd, stage, reqtext, "xfwd", -1))
        steps.append((self._mail_command(s), ST_MAIL, REQ_MAIL, "mail", -1))
        for i in left:
            steps.append((self._rcpt_command(s, i), ST_RCPT, REQ_RCPT, "rcpt", i))
        steps.append((b"DATA", ST_DATA, REQ_DATA, "data", -1))
        timeouts = {"probe": st.rset_timeout, "xfwd": st.xforward_timeout,
                    "mail": st.mail_timeout, "rcpt": st.rcpt_timeout, "data": st.data_init_timeout}
        accepted: list[int] = []
        mail_rejected = False
        data_ok = False
        started = False
        try:
            if pipelining:
                s.write(b"".join(c + CRLF for c, *_ in steps))
                if not probe:
                    self.t_setup = time.monotonic()
                    started = True
            for cmd, stage, reqtext, kind, idx in steps:
                if not pipelining:
                    if kind == "rcpt" and mail_rejected:
                        break
                    if kind == "data" and not accepted:
                        break
                    s.write(cmd + CRLF)
                if kind == "probe":
                    try:
                        r = await s.read_reply(timeouts[kind], stage)
                    except _StreamError:
                        raise _StaleSession() from None
                    if r.code // 100 != 2:
                        raise _StaleSession()
                    if not started:
                        self.t_setup = time.monotonic()
                        started = True
                    continue
                if kind == "mail" and not started:
                    self.t_setup = time.monotonic()
                    started = True
                r = await s.read_reply(timeouts[kind], stage)
                if kind == "xfwd":
                    if r.code // 100 != 2:
                        log.warning(f"host {s.namaddrport} said: {r.line} (in reply to {reqtext})")
                elif kind == "mail":
                    if r.code // 100 != 2:
                        self.bulk_fail(r.dsn, f"host {s.namaddr} said: {r.line} (in reply to {reqtext})", s)
                        mail_rejected = True
                elif kind == "rcpt":
                    if not mail_rejected:
                        if r.code // 100 == 2:
                            accepted.append(idx)
                        else:
                            self.rcpt_fail(idx, r.dsn, f"host {s.namaddr} said: {r.line} "
                                                       f"(in reply to {reqtext})", s)
                elif kind == "data":
                    if r.code // 100 != 3:
                        if accepted:
                            self.bulk_fail(r.dsn, f"host {s.namaddr} said: {r.line} "
                                                  f"(in reply to {reqtext})", s)
                    else:
                        data_ok = True
            if data_ok:
                await self._send_content(s, accepted)
            else:
                await self._abort_transaction(s)
        except _StreamError as e:
            if self.left():
                self.stream_except(s, e)
            s.dont_cache = True
            s.abort()

    async def _abort_transaction(self, s: Session) -> None:
        """After MAIL/all RCPT/DATA were refused (Postfix's course correction):
        RSET, and QUIT unless the session will be cached (pipelined with RSET
        when the server offers PIPELINING); errors here affect no recipient."""
        st = self.st
        keep = self._keep(s)
        pipelined_quit = not keep and bool(s.features & F_PIPELINING)
        s.write(b"RSET\r\nQUIT\r\n" if pipelined_quit else b"RSET\r\n")
        s.quit_sent = pipelined_quit
        try:
            r = await s.read_reply(st.rset_timeout, ST_RSET)
        except _StreamError:
            s.dont_cache = True
            s.abort()
            return
        if r.code // 100 != 2:
            s.dont_cache = True

    async def _send_content(self, s: Session, accepted: list[int]) -> None:
        st = self.st
        req = self.req
        keep = self._keep(s)
        quit_after = not keep and bool(s.features & F_PIPELINING)
        if not accepted:
            s.write(b".\r\n" + (b"QUIT\r\n" if quit_after else b""))
            s.quit_sent = quit_after
            try:
                await s.read_reply(st.data_done_timeout, ST_DOT)
            except _StreamError:
                s.dont_cache = True
            return
        lost = False
        try:
            with open(req.queue_path, "rb") as f:
                for piece in stuffed_chunks(f, req.content_offset, req.content_size,
                                            line_limit=st.line_limit):
                    s.write(piece)
                    if s.transport.get_write_buffer_size() > HIGH_WATER:
                        await s.drain(st.data_xfer_timeout, ST_BODY)
        except _StreamError as e:
            if e.kind != "eof":
                raise
            lost = True                 # look for a premature reply before giving up
        except OSError as e:
            log.warning(f"{self.qid}: read queue file {req.queue_path}: {_strerror(e)}")
            s.dont_cache = True
            s.abort()
            self.bulk_fail("4.3.0", f"local data error while talking to {s.namaddr}", s,
                           remote=False)
            return
        if not lost and quit_after:
            s.write(b"QUIT\r\n")
            s.quit_sent = True
        stage = ST_BODY if lost else ST_DOT
        replies = len(accepted) if self.lmtp else 1
        for n in range(replies):
            r = await s.read_reply(st.data_done_timeout, stage)
            if self.lmtp:
                i = accepted[n]
                if r.code // 100 != 2:
                    self.rcpt_fail(i, r.dsn, f"host {s.namaddr} said: {r.line} (in reply to {REQ_DOT})", s)
                else:
                    self.rcpt_done(i, r, s)
            elif r.code // 100 != 2:
                self.bulk_fail(r.dsn, f"host {s.namaddr} said: {r.line} (in reply to {REQ_DOT})", s)
            else:
                for i in accepted:
                    if self.results[i] is None and i not in self.marked:
                        self.rcpt_done(i, r, s)
        if lost:
            s.dont_cache = True
            s.abort()
            return
        if not keep:
            if not s.quit_sent:
                s.write(b"QUIT\r\n")
                s.quit_sent = True
            if not st.skip_quit_response:
                try:
                    await s.read_reply(st.quit_timeout, ST_QUIT)
                except _StreamError:
                    pass

    def _keep(self, s: Session) -> bool:
        """Will this session be cached after the transaction?"""
        return (not s.dont_cache and self.st.caches(self._cache_domain())
                and not self._expired(s))

    def _cache_domain(self) -> str:
        nexthop = self.req.nexthop.strip()
        if self.lmtp and nexthop.startswith("unix:"):
            return nexthop[5:]
        first = re.split(r"[\s,]+", nexthop)[0] if nexthop else ""
        if first.startswith("inet:"):
            first = first[5:]
        try:
            return parse_destination(first, 25)[0] if first else ""
        except DestinationError:
            return first


def _after_code(text: str, delims: str) -> str:
    """Postfix mystrtok(&cp, delims) once: the text after the first token
    (the reply code) and one delimiter."""
    i = 0
    n = len(text)
    while i < n and text[i] in delims:
        i += 1
    while i < n and text[i] not in delims:
        i += 1
    return text[i + 1:]


def _uxtext(value: str) -> str:
    """RFC 6533 unitext for utf-8 ORCPT: ASCII as xtext with \\x{HEX} for
    '+', '=', controls and non-ASCII."""
    out = []
    for ch in value:
        o = ord(ch)
        if o < 33 or o > 126 or ch in "+=\\":
            out.append(f"\\x{{{o:X}}}")
        else:
            out.append(ch)
    return "".join(out)


def _strerror(e: OSError) -> str:
    if e.errno:
        return os.strerror(e.errno)
    return e.strerror or str(e)


async def deliver(req: DeliveryRequest, lmtp: bool = False) -> list[RecipientStatus]:
    """Deliver `req` over SMTP (or LMTP); one status per recipient."""
    if not req.recipients:
        return []
    try:
        st = settings_for(req.config, lmtp)
    except Exception as e:  # noqa: BLE001 - a bad main.cf value must defer, not crash the qmgr
        log.warning(f"{req.queue_id}: {e}")
        return [RecipientStatus(r, "deferred", "4.3.5", "mail system configuration error")
                for r in req.recipients]
    d = _Delivery(req, st)
    try:
        await d.run()
    except Exception as e:  # noqa: BLE001 - never lose recipients to a bug
        log.warning(f"{req.queue_id}: {'lmtp' if lmtp else 'smtp'} delivery failed: "
                    f"{type(e).__name__}: {e}")
        for i, r in enumerate(d.results):
            if r is None:
                d._finish(i, "deferred", "4.3.0", "mail system software error", "none")
    finally:
        for s in list(d.sessions):
            s.abort()
    return d.statuses()


@register("smtp")
async def smtp_agent(req: DeliveryRequest) -> list[RecipientStatus]:
    """master.cf command `smtp`."""
    return await deliver(req, lmtp=False)


@register("lmtp")
async def lmtp_agent(req: DeliveryRequest) -> list[RecipientStatus]:
    """master.cf command `lmtp`."""
    return await deliver(req, lmtp=True)
