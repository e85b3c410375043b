"""postier's SMTP server: an aiosmtpd `SMTP` subclass that answers as Postfix's smtpd.

aiosmtpd provides the connection plumbing (StreamReaderProtocol, timeouts);
this subclass replaces its command loop because aiosmtpd buffers all of DATA
in a list of lines and lacks PIPELINING, ENHANCEDSTATUSCODES and CHUNKING:

* Commands are read from our own buffer; replies are queued and flushed only
  when no further complete command is waiting (PIPELINING, as Postfix does).
* DATA is read in large chunks, dot-unstuffed and scanned for the end marker
  by the native `dataframe` reader (pure twin with POSTIER_PURE=1), and
  streamed to the queue file; it is never held whole in memory.  Only
  <CR><LF>.<CR><LF> ends DATA (SMTP smuggling safe).  BDAT (CHUNKING) is
  streamed the same way.
* Replies, codes and enhanced codes are Postfix's; the restriction engine
  (postier.smtpd.restrictions) decides rejects.
* The queue file is created at the first accepted RCPT: on the event loop
  when the session is the process's only one, else taken from a pool of
  files created ahead of time by an executor thread
  (postier.queue.file.QueueFilePool).  Its small writes are buffered, and
  the end of DATA commits it with QueueWriter.publish(): one write, rename,
  fsync of the file and of incoming/ (overlapped when alone, shared among
  concurrent commits otherwise) before the 250.
* An unexpected exception in a session (a bug, a failing mail log) ends it
  as Postfix's smtpd ends a session it cannot go on with: `421 4.3.0
  <myhostname> Server local error`, then the connection is closed; nothing
  not yet committed is acknowledged.  The error is logged, or written to
  standard error (log.last_resort) when the mail log itself fails: a
  session never hangs silently.

Parameters read (through SmtpdSettings): myhostname, smtpd_banner,
message_size_limit, smtpd_recipient_limit, smtpd_timeout, smtpd_helo_required,
smtpd_delay_reject, smtpd_soft_error_limit, smtpd_hard_error_limit,
smtpd_error_sleep_time, smtpd_junk_command_limit, disable_vrfy_command,
smtputf8_enable, smtpd_authorized_xclient_hosts, smtpd_authorized_xforward_hosts,
smtpd_tls_security_level, smtpd_tls_cert_file, smtpd_tls_key_file,
smtpd_forbid_bare_newline, smtpd_forbid_bare_newline_exclusions,
smtpd_forbid_bare_newline_reject_code, smtpd_client_connection_count_limit,
smtpd_client_connection_rate_limit, anvil_rate_time_unit,
smtpd_peername_lookup, queue_directory, line_length_limit, mail_name,
service_name (the master.cf service name, set by `postier run`); for DNS
(client name lookup, DNS-based restrictions through
postier.smtpd.dnschecks): dns_nameservers, dns_timeout, dns_tries,
dns_cache_size, dns_negative_ttl; for the content scan at end of DATA
(antivirus, banned files, spam): see postier.content.scan.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.thread  # noqa: F401 - loaded before a worker drops privileges
import functools
import ipaddress
import os
import socket
import ssl
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP as AioSMTP

from postier import log, native
from postier.errors import Reply
from postier.queue.file import DirSync, Envelope, QueueFilePool, QueueWriter, Recipient
from postier.smtpd.state import Client, SessionState

CRLF = b"\r\n"
NEUTER = str.maketrans({c: "?" for c in ' <>()\\";@'})
OFF_T_MAX = 2**63 - 1
READ_CHUNK = 256 * 1024
LINE_LIMIT = 2048          # Postfix's line_length_limit default for command lines
IO_THREADS = 2             # SmtpdServer.io
CPU_THREADS = 2            # the worker loop's default executor (content scan CPU work)
THREAD_STACK = 4 << 20     # bytes of stack per worker thread (pthread's default: 8 MB)

XCLIENT_ATTRS = "NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT"
XFORWARD_ATTRS = "NAME ADDR PROTO HELO SOURCE PORT IDENT"

R_OK = Reply(250, "2.0.0", "Ok")
R_BYE = Reply(221, "2.0.0", "Bye")
R_MAIL_OK = Reply(250, "2.1.0", "Ok")
R_RCPT_OK = Reply(250, "2.1.5", "Ok")
R_DATA_GO = Reply(354, "", "End data with <CR><LF>.<CR><LF>")
R_UNKNOWN = Reply(500, "5.5.2", "Error: command not recognized")
R_BAD_SYNTAX = Reply(500, "5.5.2", "Error: bad syntax")
R_NEED_MAIL = Reply(503, "5.5.1", "Error: need MAIL command")
R_NEED_RCPT = Reply(503, "5.5.1", "Error: need RCPT command")
R_NESTED_MAIL = Reply(503, "5.5.1", "Error: nested MAIL command")
R_SEND_HELO = Reply(503, "5.5.1", "Error: send HELO/EHLO first")
R_NO_VALID_RCPT = Reply(554, "5.5.1", "Error: no valid recipients")
R_TOO_MANY_RCPT = Reply(452, "4.5.3", "Error: too many recipients")
R_SIZE_LIMIT = Reply(552, "5.3.4", "Message size exceeds fixed limit")
R_FILE_TOO_BIG = Reply(552, "5.3.4", "Error: message file too big")
R_NOAUTH_X = Reply(550, "5.7.0", "Error: insufficient authorization")
R_IN_TRANSACTION = Reply(503, "5.5.1", "Error: MAIL transaction in progress")
R_NOT_IMPLEMENTED = Reply(502, "5.5.1", "Error: command not implemented")
R_NO_AUTH = Reply(503, "5.5.1", "Error: authentication not enabled")
R_VRFY_DISABLED = Reply(502, "5.5.1", "VRFY command is disabled")
R_NON_SMTP = Reply(221, "2.7.0", "Error: I can break rules, too. Goodbye.")
R_TLS_READY = Reply(220, "2.0.0", "Ready to start TLS")
R_QUEUE_ERROR = Reply(451, "4.3.0", "Error: queue file write error")
R_DATA_AFTER_BDAT = Reply(503, "5.5.1", "Error: DATA after BDAT")
R_MAIL_AFTER_BDAT = Reply(503, "5.5.1", "Error: MAIL after BDAT")
R_RCPT_AFTER_BDAT = Reply(503, "5.5.1", "Error: RCPT after BDAT")
R_NULL_BDAT = Reply(551, "5.7.1", "Null BDAT request")
R_CHUNK_TOO_BIG = Reply(552, "5.3.4", "Chunk exceeds message size limit")


@dataclass
class SmtpdSettings:
    """The parameters smtpd reads, typed and expanded once per start/reload."""

    myhostname: str = "localhost"
    banner: str = "localhost ESMTP"
    mail_name: str = "Postfix"
    message_size_limit: int = 10240000
    recipient_limit: int = 1000
    timeout: float = 300.0
    helo_required: bool = False
    delay_reject: bool = True
    soft_error_limit: int = 10
    hard_error_limit: int = 20
    error_sleep_time: float = 1.0
    junk_command_limit: int = 100
    disable_vrfy: bool = False
    smtputf8: bool = True
    xclient_hosts: list[Any] = field(default_factory=list)
    xforward_hosts: list[Any] = field(default_factory=list)
    tls_context: ssl.SSLContext | None = None
    bare_lf: str = "normalize"
    bare_lf_exclusions: list[Any] = field(default_factory=list)
    bare_lf_code: int = 550
    conn_count_limit: int = 50
    conn_rate_limit: int = 0
    rate_time_unit: float = 60.0
    event_limit_exceptions: list[Any] = field(default_factory=list)
    peername_lookup: bool = True
    queue_directory: str = "/var/spool/postier"
    service_name: str = "smtp"
    content_filter: str = ""      # main.cf/-o content_filter: after-queue filter for all mail
    cleanup: Any = None           # postier.cleanup.CleanupSettings (None: no cleanup stage)
    dns: Any = None               # postier.dns.DnsSettings (None: the defaults, /etc/resolv.conf)
    content: Any = None           # postier.content.scan.ContentScanner (None: no content scan)

    @classmethod
    def from_config(cls, cfg: Any) -> SmtpdSettings:
        def nets(name: str) -> list[Any]:
            return parse_networks(cfg.get_list(name))
        tls = None
        level = cfg.get("smtpd_tls_security_level")
        cert, key = cfg.get("smtpd_tls_cert_file"), cfg.get("smtpd_tls_key_file")
        if level in ("may", "encrypt") and cert:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(cert, key or None)
        bare = str(cfg.get("smtpd_forbid_bare_newline")).lower()
        return cls(
            myhostname=cfg.get("myhostname"),
            banner=cfg.get("smtpd_banner"),
            mail_name=cfg.get("mail_name"),
            message_size_limit=cfg.get("message_size_limit"),
            recipient_limit=cfg.get("smtpd_recipient_limit"),
            timeout=float(cfg.get_time("smtpd_timeout")),
            helo_required=cfg.get_bool("smtpd_helo_required"),
            delay_reject=cfg.get_bool("smtpd_delay_reject"),
            soft_error_limit=cfg.get("smtpd_soft_error_limit"),
            hard_error_limit=cfg.get("smtpd_hard_error_limit"),
            error_sleep_time=float(cfg.get_time("smtpd_error_sleep_time")),
            junk_command_limit=cfg.get("smtpd_junk_command_limit"),
            disable_vrfy=cfg.get_bool("disable_vrfy_command"),
            smtputf8=cfg.get_bool("smtputf8_enable"),
            xclient_hosts=nets("smtpd_authorized_xclient_hosts"),
            xforward_hosts=nets("smtpd_authorized_xforward_hosts"),
            tls_context=tls,
            bare_lf="reject" if bare == "reject" else "normalize",
            bare_lf_exclusions=nets("smtpd_forbid_bare_newline_exclusions"),
            bare_lf_code=_reply_code(cfg.get("smtpd_forbid_bare_newline_reject_code"), 550),
            conn_count_limit=cfg.get("smtpd_client_connection_count_limit"),
            conn_rate_limit=cfg.get("smtpd_client_connection_rate_limit"),
            rate_time_unit=float(cfg.get_time("anvil_rate_time_unit")),
            event_limit_exceptions=nets("smtpd_client_event_limit_exceptions"),
            peername_lookup=cfg.get_bool("smtpd_peername_lookup"),
            queue_directory=cfg.get("queue_directory"),
            service_name=cfg.get("service_name") or "smtp",
            content_filter=cfg.get("content_filter") or "",
            cleanup=_cleanup_settings(cfg),
            dns=_dns_settings(cfg),
            content=_content_scanner(cfg),
        )


def _content_scanner(cfg: Any) -> Any:
    from postier.content.scan import content_scanner
    return content_scanner(cfg)


def _dns_settings(cfg: Any) -> Any:
    from postier.dns import DnsSettings
    return DnsSettings.from_config(cfg)


def _cleanup_settings(cfg: Any) -> Any:
    from postier.cleanup import CleanupSettings
    return CleanupSettings.from_config(cfg)


def _non_smtp(verb: str) -> bool:
    """Postfix's default smtpd_forbidden_commands (CONNECT GET POST and
    regexp:{{/^[^A-Z]/ Bogus}}, case-insensitive) plus its is_header() test
    (a header name and a colon, e.g. `Subject:`); `verb` is upper-case."""
    if verb in ("CONNECT", "GET", "POST") or not ("A" <= verb[:1] <= "Z"):
        return True
    head, colon, _ = verb.partition(":")
    return bool(colon and head) and all(32 < ord(c) < 127 for c in head)


def _reply_code(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


_UTF8_RESOLVER: Any = None


def _utf8_resolver() -> Any:
    """For SMTPUTF8 transactions: parse_path's default resolver refuses
    non-ASCII domains, Postfix accepts them once SMTPUTF8 was declared."""
    global _UTF8_RESOLVER
    if _UTF8_RESOLVER is None:
        from postier.smtpd.address import Resolver
        _UTF8_RESOLVER = Resolver(smtputf8=True)
    return _UTF8_RESOLVER


def parse_networks(items: list[str]) -> list[Any]:
    """CIDR/host entries of a Postfix network list (`[v6]/len` allowed);
    entries that are not literal networks (hostnames, tables) are skipped
    here — the restriction engine handles mynetworks in full."""
    out = []
    for item in items:
        text = item.strip()
        if text.startswith("["):
            text = text.replace("[", "").replace("]", "")
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            continue
    return out


@functools.lru_cache(maxsize=1024)
def _ip(addr: str) -> Any:
    """The address as an ipaddress object (IPv4-mapped IPv6 as IPv4), or
    None; the few client addresses of the moment are remembered."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip


def addr_in(addr: str, nets: list[Any]) -> bool:
    if not nets or not addr:
        return False
    ip = _ip(addr)
    if ip is None:
        return False
    return any(ip.version == n.version and ip in n for n in nets)


def xtext_decode(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "+" and i + 2 < len(value) + 0 and len(value[i + 1:i + 3]) == 2:
            try:
                out.append(chr(int(value[i + 1:i + 3], 16)))
                i += 3
                continue
            except ValueError:
                pass
        out.append(c)
        i += 1
    return "".join(out)


class Anvil:
    """Per-client connection count and rate (Postfix's anvil), in-process.

    Rates are kept only when a rate limit is set: a deque of connection
    times per client, trimmed on each connect, and clients idle for a whole
    time unit are swept out (the table stays as small as the set of recent
    clients)."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.rate: dict[str, deque[float]] = {}
        self._sweep_at = 1024

    def connect(self, addr: str, unit: float, rate: bool = True) -> tuple[int, int]:
        self.count[addr] += 1
        if not rate:
            return self.count[addr], 0
        now = time.monotonic()
        times = self.rate.get(addr)
        if times is None:
            times = self.rate[addr] = deque()
        while times and now - times[0] >= unit:
            times.popleft()
        times.append(now)
        if len(self.rate) >= self._sweep_at:
            self.rate = {a: t for a, t in self.rate.items() if now - t[-1] < unit}
            self._sweep_at = max(1024, 2 * len(self.rate))
        return self.count[addr], len(times)

    def disconnect(self, addr: str) -> None:
        self.count[addr] -= 1
        if self.count[addr] <= 0:
            del self.count[addr]


class CommandCounts:
    """The `ehlo=1 mail=1 rcpt=0/1 ... commands=3/4` disconnect statistics."""

    # Postfix's smtpd command table order
    ORDER = ("helo", "ehlo", "xclient", "xforward", "starttls", "auth", "mail", "rcpt",
             "data", "bdat", "rset", "noop", "vrfy", "etrn", "quit", "unknown")

    def __init__(self) -> None:
        self.ok: Counter[str] = Counter()
        self.total: Counter[str] = Counter()

    def add(self, name: str, ok: bool) -> None:
        self.total[name] += 1
        if ok:
            self.ok[name] += 1

    def summary(self) -> str:
        parts = []
        names = [n for n in self.ORDER if self.total[n]]
        names += sorted(n for n in self.total if n not in self.ORDER)
        for n in names:
            if self.ok[n] == self.total[n]:
                parts.append(f"{n}={self.total[n]}")
            else:
                parts.append(f"{n}={self.ok[n]}/{self.total[n]}")
        tok, tall = sum(self.ok.values()), sum(self.total.values())
        parts.append(f"commands={tall}" if tok == tall else f"commands={tok}/{tall}")
        return " ".join(parts)


class PeerGone(Exception):
    """The client closed the connection or timed out."""


def _describe(e: BaseException) -> str:
    """`Type: message at file:line` (where it was raised), for the log."""
    where = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    at = f" at {where[0].filename}:{where[0].lineno}" if where else ""
    return f"{type(e).__name__}: {e}{at}"


def _log_or_report(emit: Any, text: str) -> bool:
    """emit(text) (log.info, log.warning); when the mail log itself fails,
    the line and that failure go to standard error instead (log.last_resort).
    Never raises; False when the mail log failed."""
    try:
        emit(text)
        return True
    except Exception as e:  # noqa: BLE001 - a broken log must not break the session's end
        log.last_resort(f"{text} (mail log failed: {_describe(e)})")
        return False


class Smtpd(AioSMTP):
    """One SMTP session.  `server` is the shared SmtpdServer."""

    def __init__(self, server: SmtpdServer):
        s = server.settings
        template = server.aio_template
        if template is None:
            super().__init__(None, hostname=s.myhostname, timeout=s.timeout,
                             data_size_limit=None, enable_SMTPUTF8=True,
                             loop=server.loop)
            # aiosmtpd's __init__ introspects the instance (inspect.getmembers,
            # dir) for its own dispatch tables, about a tenth of the event
            # loop's time per connection; postier dispatches through COMMANDS.
            # Later sessions of this server copy what it set, per-connection
            # fields still None, dispatch tables empty.
            # (minus what asyncio.StreamReaderProtocol.__init__ sets afresh)
            fresh = vars(asyncio.StreamReaderProtocol(
                asyncio.StreamReader(loop=server.loop),
                client_connected_cb=self._cb_client_connected, loop=server.loop))
            server.aio_template = {k: v for k, v in self.__dict__.items() if k not in fresh}
            server.aio_template.update(_smtp_methods={}, _auth_methods={})
        else:
            asyncio.StreamReaderProtocol.__init__(
                self, asyncio.StreamReader(loop=server.loop, limit=self.line_length_limit),
                client_connected_cb=self._cb_client_connected, loop=server.loop)
            for k, v in template.items():
                self.__dict__.setdefault(k, v)
        self.server = server
        self.s = s
        self.st = SessionState()
        self.buf = bytearray()
        self.out: list[bytes] = []
        self.counts = CommandCounts()
        self.errors = 0
        self.junk = 0
        self.writer_q: QueueWriter | None = None
        self.bdat: Any = None
        self.bdat_failed: Reply | None = None
        self.bdat_started = False
        self.closing = False
        self.last_cmd = "CONNECT"
        self.anvil_addr: str | None = None

    # ---------------------------------------------------------- plumbing

    def _timeout_cb(self) -> None:
        try:
            if self.transport is not None and not self.closing:
                self.closing = True
                try:
                    self.transport.write(Reply(421, "4.4.2",
                                               f"{self.s.myhostname} Error: timeout exceeded").wire())
                except Exception:  # noqa: BLE001 - the peer may be gone already
                    pass
                _log_or_report(log.info, f"timeout after {self.last_cmd} from "
                                         f"{self.st.client.namaddr}")
        finally:
            super()._timeout_cb()       # closes the connection

    def reply(self, r: Reply) -> None:
        self.out.append(r.wire())

    async def flush(self) -> None:
        if self.out and self.transport is not None:
            self._writer.write(b"".join(self.out))
            self.out.clear()
            await self._writer.drain()

    async def _fill(self) -> bool:
        data = await self._reader.read(READ_CHUNK)
        if not data:
            return False
        self.buf += data
        return True

    async def readline(self) -> bytes:
        """One command line without its line end (LF or CRLF).  Replies are
        flushed before waiting for more input (PIPELINING)."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 1]
                if line.endswith(b"\r"):
                    line = line[:-1]
                if len(line) > LINE_LIMIT:
                    # Postfix keeps the first line_length_limit bytes of a command
                    self._warn_long(line)
                    line = line[:LINE_LIMIT]
                return line
            if len(self.buf) > LINE_LIMIT * 4:
                # keep the start of an overlong line; discard the rest as Postfix does
                line = bytes(self.buf[:LINE_LIMIT])
                while True:
                    j = self.buf.find(b"\n")
                    if j >= 0:
                        del self.buf[:j + 1]
                        break
                    self.buf.clear()
                    await self.flush()
                    if not await self._fill():
                        raise PeerGone()
                self._warn_long(line)
                return line
            await self.flush()
            if not await self._fill():
                raise PeerGone()

    def _warn_long(self, line: bytes) -> None:
        log.warning(f"{self.st.client.namaddr}: request longer than {LINE_LIMIT}: "
                    f"{line[:30].decode('utf-8', 'replace')}...")

    # ---------------------------------------------------------- session

    async def _handle_client(self) -> None:
        self.server.sessions += 1
        try:
            await self._session()
        except (PeerGone, ConnectionError, asyncio.IncompleteReadError) as e:
            if (isinstance(e, ConnectionError) and self.transport is not None
                    and not self.transport.is_closing()):
                # not the client's connection (a policy server's, ...)
                self._internal_error(e)
            elif not self.closing:
                _log_or_report(log.info, f"lost connection after {self.last_cmd} from "
                                         f"{self.st.client.namaddr}")
        except asyncio.CancelledError:
            if not self.closing:
                _log_or_report(log.info, f"lost connection after {self.last_cmd} from "
                                         f"{self.st.client.namaddr}")
            raise
        except Exception as e:  # noqa: BLE001 - never leave the client without a reply
            self._internal_error(e)
        finally:
            self.server.sessions -= 1
            self._end_session()

    def _internal_error(self, exc: BaseException) -> None:
        """End the session after an unexpected exception, as Postfix's smtpd
        ends a session it cannot go on with (its reply to a server-side
        error since 3.5): `421 4.3.0 <myhostname> Server local error`.  The
        replies already due go first; the connection is closed next
        (_end_session), without waiting for the client to read.  Nothing not
        yet committed is acknowledged: the transaction is aborted, and a
        queue file whose commit failed half-way is taken back.  The error
        goes to the mail log (a warning with its origin, and Postfix's
        `reject:` line), or to standard error when the mail log fails."""
        self.closing = True
        reply = Reply(421, "4.3.0", f"{self.s.myhostname} Server local error")
        try:
            w = self.writer_q
            if w is not None and w.published:
                w.unpublish()
        except Exception:  # noqa: BLE001 - best effort, as after a failed fsync
            pass
        try:
            if not (self.out and self.out[-1].startswith(b"421")):
                self.out.append(reply.wire())
            if self.transport is not None and not self.transport.is_closing():
                self._writer.write(b"".join(self.out))
            self.out.clear()
        except Exception:  # noqa: BLE001 - the peer may be gone already
            pass
        st = self.st
        if _log_or_report(log.warning, f"{st.client.namaddr}: internal error after "
                                       f"{self.last_cmd}: {_describe(exc)}"):
            _log_or_report(log.info, f"{st.log_queue_id}: reject: {self.last_cmd} from "
                                     f"{st.client.namaddr}: {reply.line()}")

    def _end_session(self) -> None:
        """The end of every session: the transaction aborted, anvil told,
        `disconnect from`, the connection closed -- closed even when a step
        before fails."""
        try:
            try:
                self._abort_transaction()
                if self.anvil_addr is not None:
                    addr, self.anvil_addr = self.anvil_addr, None
                    self.server.anvil.disconnect(addr)
            except Exception as e:  # noqa: BLE001
                _log_or_report(log.warning, f"{self.st.client.namaddr}: session cleanup "
                                            f"error: {_describe(e)}")
            _log_or_report(log.info, f"disconnect from {self.st.client.namaddr} "
                                     f"{self.counts.summary()}")
        finally:
            if self.transport is not None:
                self.transport.close()

    async def _session(self) -> None:
        peer = self.transport.get_extra_info("peername") or ("", "")
        sock = self.transport.get_extra_info("sockname") or ("", "")
        addr = str(peer[0])
        if addr.startswith("::ffff:") and "." in addr:
            addr = addr[7:]
        client = Client(addr=addr, port=str(peer[1]))
        if self.s.peername_lookup:
            await self.server.lookup_peer(client)
        self.st.client = client
        self.st.real_client = Client(**client.__dict__)
        self.st.server_addr, self.st.server_port = str(sock[0]), str(sock[1])
        log.info(f"connect from {client.namaddr}")
        if not await self._connect_limits():
            return
        reject = None
        if not self.s.delay_reject:
            reject = await self.server.engine.connect(self.st)
        if reject is not None:
            self.reply(reject)
            self.connect_reject = reject
            if reject.code == 421:
                self.closing = True
                await self.flush()
                return
        else:
            self.connect_reject = None
            self.reply(Reply(220, "", self.s.banner))
        while not self.closing:
            line = await self.readline()
            self._reset_timeout()
            await self.command(line)
            if self.errors >= self.s.hard_error_limit and not self.closing:
                self.reply(Reply(421, "4.7.0", f"{self.s.myhostname} Error: too many errors"))
                log.info(f"too many errors after {self.last_cmd} from {self.st.client.namaddr}")
                self.closing = True
        await self.flush()

    async def _connect_limits(self) -> bool:
        s = self.s
        addr = self.st.client.addr
        # Postfix exempts XCLIENT-authorized hosts from anvil accounting too
        if (addr_in(addr, s.event_limit_exceptions) or addr_in(addr, s.xclient_hosts)
                or not (s.conn_count_limit or s.conn_rate_limit)):
            return True
        count, rate = self.server.anvil.connect(addr, s.rate_time_unit, s.conn_rate_limit > 0)
        self.anvil_addr = addr
        msg = None
        if s.conn_count_limit and count > s.conn_count_limit:
            log.warning(f"Connection concurrency limit exceeded: {count} from "
                        f"{self.st.client.namaddr} for service {s.service_name}")
            msg = f"{s.myhostname} Error: too many connections from {addr}"
        elif s.conn_rate_limit and rate > s.conn_rate_limit:
            log.warning(f"Connection rate limit exceeded: {rate} from "
                        f"{self.st.client.namaddr} for service {s.service_name}")
            msg = f"{s.myhostname} Error: too many connections from {addr}"
        if msg:
            self.reply(Reply(421, "4.7.0", msg))
            self.closing = True
            await self.flush()
            return False
        return True

    async def error_reply(self, r: Reply) -> None:
        """Send an error reply, counting it against the error limits and
        sleeping smtpd_error_sleep_time past the soft limit, as Postfix does."""
        self.errors += 1
        if self.errors > self.s.soft_error_limit and self.s.error_sleep_time > 0:
            await self.flush()
            await asyncio.sleep(self.s.error_sleep_time)
        self.reply(r)
        if r.code == 421:
            self.closing = True

    async def command(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "surrogateescape")
        if not text.strip():
            self.counts.add("unknown", False)
            await self.error_reply(R_BAD_SYNTAX)
            return
        verb, _, arg = text.strip().partition(" ")
        verb = verb.upper()
        arg = arg.strip()
        handler = COMMANDS.get(verb)
        if handler is None:
            if _non_smtp(verb):
                log.warning(f"non-SMTP command from {self.st.client.namaddr}: {text[:100]}")
                self.reply(R_NON_SMTP)
                self.counts.add("unknown", False)
                self.closing = True
                return
            self.counts.add("unknown", False)
            self.last_cmd = "UNKNOWN"
            await self.error_reply(R_UNKNOWN)
            return
        name = verb.lower()
        self.last_cmd = verb
        if self.connect_reject is not None and verb not in ("QUIT", "XCLIENT", "NOOP", "RSET"):
            self.counts.add(name, False)
            await self.error_reply(Reply(503, "5.7.0",
                                         f"Error: access denied for {self.st.real_client.namaddr}"))
            return
        ok = await handler(self, arg)
        # Postfix counts even a successful XCLIENT as failed (xclient=0/1)
        self.counts.add(name, bool(ok) and verb != "XCLIENT")

    # ---------------------------------------------------------- commands

    def _ehlo_lines(self) -> list[str]:
        s = self.s
        lines = [s.myhostname, "PIPELINING"]
        lines.append(f"SIZE {s.message_size_limit}" if s.message_size_limit else "SIZE")
        if not s.disable_vrfy:
            lines.append("VRFY")
        lines.append("ETRN")
        if s.tls_context is not None and not self.st.tls:
            lines.append("STARTTLS")
        # authorization follows the client as XCLIENT last set it (Postfix)
        addr = self.st.client.addr
        if addr_in(addr, s.xclient_hosts):
            lines.append("XCLIENT " + XCLIENT_ATTRS)
        if addr_in(addr, s.xforward_hosts):
            lines.append("XFORWARD " + XFORWARD_ATTRS)
        lines += ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN"]
        if s.smtputf8:
            lines.append("SMTPUTF8")
        lines.append("CHUNKING")
        return lines

    async def smtp_helo(self, arg: str, esmtp: bool = False) -> bool:
        word = "EHLO" if esmtp else "HELO"
        if not arg:
            await self.error_reply(Reply(501, "", f"Syntax: {word} hostname"))
            return False
        self._abort_transaction()
        self.st.reset_transaction()
        # Postfix collapses the arguments and neuters characters that could
        # confuse logs or headers (smtpd.c NEUTER_CHARACTERS)
        name = " ".join(arg.split()).translate(NEUTER)
        if not self.s.delay_reject:
            old = self.st.helo_name
            self.st.helo_name = name
            r = await self.server.engine.helo(self.st, name, command=word)
            if r is not None:
                self.st.helo_name = old      # Postfix keeps the previous name (and protocol)
                await self.error_reply(r)
                return False
        self.st.helo_name = name
        self.st.protocol = "ESMTP" if esmtp else "SMTP"
        self.st.ehlo_seen_pipelining = esmtp
        if esmtp:
            self.reply(Reply(250, "", "\n".join(self._ehlo_lines())))
        else:
            self.reply(Reply(250, "", self.s.myhostname))
        return True

    async def smtp_EHLO(self, arg: str) -> bool:  # noqa: N802 - aiosmtpd naming
        return await self.smtp_helo(arg, esmtp=True)

    async def smtp_HELO(self, arg: str) -> bool:  # noqa: N802
        return await self.smtp_helo(arg, esmtp=False)

    async def smtp_MAIL(self, arg: str) -> bool:  # noqa: N802
        st, s = self.st, self.s
        if self.s.helo_required and st.helo_name is None:
            await self.error_reply(R_SEND_HELO)
            return False
        if st.sender is not None:
            await self.error_reply(R_NESTED_MAIL)
            return False
        if self.bdat_started:
            await self.error_reply(R_MAIL_AFTER_BDAT)
            return False
        from postier.smtpd import address
        path, params = split_path_arg(arg, "FROM")
        if path is None:
            await self.error_reply(Reply(501, "5.5.4", "Syntax: MAIL FROM:<address>"))
            return False
        # a non-ASCII domain needs SMTPUTF8 on this very command (Postfix)
        utf8 = s.smtputf8 and any(p.upper() == "SMTPUTF8" for p in params)
        try:
            sender = address.parse_path(path, sender=True, smtputf8=utf8,
                                        resolver=_utf8_resolver() if utf8 else self.server.resolver)
        except address.AddressError as e:
            if e.warn:
                log.warning(f"Illegal address syntax from {st.client.namaddr} in MAIL command: "
                            f"{path}")
            await self.error_reply(Reply(501, "5.1.7", "Bad sender address syntax"))
            return False
        mail_params: dict[str, str] = {}
        for p in params:
            key, eq, val = p.partition("=")
            ukey = key.upper()
            if ukey == "SIZE" and eq:
                if not val.isdigit():
                    await self.error_reply(Reply(501, "5.5.4", "Bad message size syntax"))
                    return False
                if int(val) > OFF_T_MAX:
                    await self.error_reply(Reply(552, "5.3.4",
                                                 "Message size exceeds file system imposed limit"))
                    return False
                mail_params["SIZE"] = val
                # Postfix keeps a declared size until the transaction is reset,
                # even when this MAIL command fails (state->msg_size)
                st.message_size = int(val)
            elif ukey == "BODY" and val.upper() in ("7BIT", "8BITMIME"):  # no BINARYMIME (Postfix)
                mail_params["BODY"] = val.upper()
            elif ukey == "SMTPUTF8" and not eq and s.smtputf8:
                mail_params["SMTPUTF8"] = ""
            elif ukey == "RET" and eq:
                if val.upper() not in ("FULL", "HDRS"):
                    await self.error_reply(Reply(501, "5.5.4", "Bad RET parameter syntax"))
                    return False
                mail_params["RET"] = val.upper()
            elif ukey == "ENVID" and eq:
                mail_params["ENVID"] = xtext_decode(val)
            elif ukey == "AUTH" and eq:
                mail_params["AUTH"] = val
            else:
                await self.error_reply(Reply(555, "5.5.4", f"Unsupported option: {p}"))
                return False
        size = st.message_size
        if s.message_size_limit and size > s.message_size_limit:
            log.info(f"NOQUEUE: reject: MAIL from {st.client.namaddr}: {R_SIZE_LIMIT.line()}; "
                     f"from=<{address.external(sender)}> proto={st.protocol} helo=<{st.helo_name or ''}>")
            await self.error_reply(R_SIZE_LIMIT)
            return False
        st.sender = sender
        st.mail_params = mail_params
        st.message_size = size
        if not s.delay_reject:
            r = await self.server.engine.mail(self.st)
            if r is not None:
                st.sender = None
                st.mail_params = {}
                await self.error_reply(r)
                return False
        self.reply(R_MAIL_OK)
        return True

    async def smtp_RCPT(self, arg: str) -> bool:  # noqa: N802
        st, s = self.st, self.s
        if st.sender is None:
            await self.error_reply(R_NEED_MAIL)
            return False
        if self.bdat_started:
            await self.error_reply(R_RCPT_AFTER_BDAT)
            return False
        from postier.smtpd import address
        path, params = split_path_arg(arg, "TO")
        if path is None:
            await self.error_reply(Reply(501, "5.5.4", "Syntax: RCPT TO:<address>"))
            return False
        try:
            utf8 = "SMTPUTF8" in st.mail_params
            rcpt = address.parse_path(path, sender=False, smtputf8=utf8,
                                      resolver=_utf8_resolver() if utf8 else self.server.resolver)
        except address.AddressError as e:
            if e.warn:
                log.warning(f"Illegal address syntax from {st.client.namaddr} in RCPT command: "
                            f"{path}")
            await self.error_reply(Reply(501, "5.1.3", "Bad recipient address syntax"))
            return False
        notify, orcpt = "", ""
        for p in params:
            key, eq, val = p.partition("=")
            ukey = key.upper()
            if ukey == "NOTIFY" and eq:
                words = [w.upper() for w in val.split(",")]
                if not all(w in ("NEVER", "SUCCESS", "FAILURE", "DELAY") for w in words) or (
                        "NEVER" in words and len(words) > 1):
                    bad = next((w for w in val.split(",")
                                if w.upper() not in ("NEVER", "SUCCESS", "FAILURE", "DELAY")), val)
                    log.warning(f'unknown DSN NOTIFY command value "{bad}" in "{val}"')
                    await self.error_reply(Reply(501, "5.5.4", "Error: Bad NOTIFY parameter syntax"))
                    return False
                notify = ",".join(words)
            elif ukey == "ORCPT" and eq:
                orcpt = xtext_decode(val)
            else:
                await self.error_reply(Reply(555, "5.5.4", f"Unsupported option: {p}"))
                return False
        if st.rcpt_count >= s.recipient_limit:
            st.rcpt_count += 1
            await self.error_reply(R_TOO_MANY_RCPT)
            return False
        st.rcpt_count += 1
        st.recipient = rcpt
        st.pipelined = bool(self.buf)       # more input waiting: sent ahead of our reply
        r = await self.server.engine.rcpt(st)
        if r is not None:
            if r.code == 421:
                self.closing = True
            await self.error_reply(r)
            return False
        if self.s.cleanup is not None and self.s.cleanup.reject_unlisted_recipient:
            from postier.cleanup import relocated_reply
            r = relocated_reply(self.s.cleanup, rcpt)
            if r is not None:
                from postier.smtpd.address import external
                log.info(f"{st.log_queue_id}: reject: RCPT from {st.client.namaddr}: {r.line()}; "
                         f"from=<{external(st.sender or '')}> to=<{external(rcpt)}> "
                         f"proto={st.protocol} helo=<{st.helo_name or ''}>")
                await self.error_reply(r)
                return False
        if st.queue_id is None:
            await self._prepare_queue_file()
            if not self._open_queue_file():
                await self.error_reply(R_QUEUE_ERROR)
                return False
        st.recipients.append(rcpt)
        self.rcpt_meta.append((rcpt, notify, orcpt or f"rfc822;{rcpt}", path))
        self.reply(R_RCPT_OK)
        return True

    async def _prepare_queue_file(self) -> None:
        """With other sessions in progress, take a queue file from the
        server's pool of files created ahead of time, else create it in the
        executor: a file creation costs hundreds of microseconds of kernel
        time, during which the event loop keeps serving the other sessions.
        Alone, _open_queue_file() creates it on the event loop: nothing else
        waits for the loop, and a background thread would only compete with
        it for the CPU (measured: a pool refilled meanwhile, even during the
        commit's fsyncs, made the 250 slower).  _open_queue_file() adopts
        what this prepared (and creates the file itself if this failed)."""
        if self.server.sessions <= 1:
            self._ready_writer = None
            return
        ready = self.server.take_queue_file()
        if ready is not None:
            self._ready_writer = ready
            return
        fut = self.loop.run_in_executor(
            self.server.io, _new_writer, os.path.join(self.s.queue_directory, "incoming"))
        try:
            self._ready_writer = await asyncio.shield(fut)
        except asyncio.CancelledError:
            # the session is gone: remove the file once the thread made it
            fut.add_done_callback(
                lambda f: f.cancelled() or f.exception() or f.result().abort())
            raise
        except OSError:
            self._ready_writer = None

    def _open_queue_file(self) -> bool:
        try:
            ready, self._ready_writer = self._ready_writer, None
            self.writer_q = ready or _new_writer(os.path.join(self.s.queue_directory,
                                                              "incoming"))
        except OSError as e:
            log.warning(f"queue file create error: {e}")
            return False
        self.st.queue_id = self.writer_q.queue_id
        c = self.st.client
        log.info(f"{self.st.queue_id}: client={c.namaddr}")
        self.arrival = time.time()
        return True

    def _abort_transaction(self) -> None:
        if self.writer_q is not None:
            self.writer_q.abort()
            self.writer_q = None
        self.rcpt_meta = []
        self.cleanup = None
        self.bdat = None
        self.bdat_failed = None
        self.bdat_started = False
        self.bdat_bytes = 0
        self.bdat_last_byte = b""
        self.bdat_complete = 0          # wire bytes up to the last LF of this BDAT sequence
        self.bdat_discard = False       # a chunk failed: discard the rest up to LAST

    def _received_header(self) -> bytes:
        st = self.st
        c = st.client
        helo = st.helo_name
        if helo:
            first = f"Received: from {helo} ({c.name} [{c.addr}])"
        else:
            first = f"Received: from {c.name} ({c.name} [{c.addr}])"
        # RFC 6531 "with" types, as Postfix writes them: UTF8SMTP[S]
        proto = "UTF8SMTP" if "SMTPUTF8" in st.mail_params else st.protocol
        if st.tls:
            proto = proto + "S"
        lines = [first,
                 f"\tby {self.s.myhostname} ({self.s.mail_name}) with {proto} id {st.queue_id}"]
        from postier.cleanup.headers import mail_date
        date = mail_date(time.time())
        if len(st.recipients) == 1:
            lines.append(f"\tfor <{st.recipients[0]}>; {date}")
        else:
            lines[-1] += ";"
            lines.append(f"\t{date}")
        return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")

    def _start_cleanup(self) -> bytes:
        """Start the cleanup stage (postier.cleanup) for this message and
        return the bytes to store for smtpd's Received: header."""
        settings = self.s.cleanup
        # access(5) PREPEND (and check_greylist's X-Greylist) headers go
        # before smtpd's own Received: header, as Postfix stores them
        prepend = "".join(f"{h}\n" for h in self.st.actions.prepend).encode(
            "utf-8", "surrogateescape")
        if settings is None:
            self.cleanup = None
            return prepend + self._received_header()
        from postier.cleanup import Cleanup, Rcpt
        st = self.st
        self.cleanup = Cleanup(
            settings, queue_id=st.queue_id or "", sender=st.sender or "",
            recipients=[Rcpt(addr, notify, orcpt) for addr, notify, orcpt, _ in self.rcpt_meta]
            # access(5) BCC: an ordinary recipient after the others (Postfix)
            + [Rcpt(b, "", f"rfc822;{b}") for b in dict.fromkeys(st.actions.bcc)
               if b not in st.recipients],
            client_addr=st.client.addr, real_addr=st.real_client.addr,
            sasl_username=st.sasl_username, arrival=self.arrival,
            log_origin=st.client.namaddr, proto=st.protocol, helo=st.helo_name or "")
        return prepend + self.cleanup.received(self._received_header())

    def _clean(self, data: bytes) -> bytes:
        """Message content through the cleanup stage, if any."""
        return data if self.cleanup is None else self.cleanup.feed(data)

    async def smtp_DATA(self, arg: str) -> bool:  # noqa: N802
        st = self.st
        # Postfix's order: BDAT state, then the transaction, then the syntax
        if self.bdat_started:
            await self.error_reply(R_DATA_AFTER_BDAT)
            return False
        refused = self._no_recipients()
        if refused is not None:
            await self.error_reply(refused)
            return False
        if arg:
            await self.error_reply(Reply(501, "5.5.4", "Syntax: DATA"))
            return False
        st.pipelined = bool(self.buf)
        r = await self.server.engine.data(st)
        if r is not None:
            await self.error_reply(r)
            return False
        self.reply(R_DATA_GO)
        await self.flush()
        reader = self.server.dataframe.DataReader(self._content_limit(), self.s.bare_lf)
        wq = self.writer_q
        assert wq is not None
        wq.write(self._start_cleanup())
        while True:
            if self.buf:
                content, consumed = reader.feed(bytes(self.buf))
                if consumed < 0:
                    self.buf.clear()
                else:
                    del self.buf[:consumed]
                if content:
                    wq.write(self._clean(content))
                if consumed >= 0:
                    break
            if not await self._fill():
                raise PeerGone()
        return await self._finish_message(reader)

    def _no_recipients(self) -> Reply | None:
        """DATA/BDAT without MAIL: need RCPT; inside a transaction whose
        recipients were all refused: no valid recipients (Postfix)."""
        if self.st.sender is None:
            return R_NEED_RCPT
        if not self.st.recipients:
            return R_NO_VALID_RCPT
        return None

    def _content_limit(self) -> int:
        return self.s.message_size_limit

    async def _finish_message(self, reader: Any) -> bool:
        st = self.st
        wq = self.writer_q
        assert wq is not None
        self.last_cmd = "END-OF-MESSAGE"
        if self.cleanup is not None:
            wq.write(self.cleanup.finish())
        st.message_size = wq.size
        if reader.oversize or (self.s.message_size_limit and wq.size > self.s.message_size_limit):
            log.warning(f"{st.queue_id}: queue file size limit exceeded")
            self._abort_transaction()
            st.reset_transaction()
            await self.error_reply(R_FILE_TOO_BIG)
            return False
        if (self.s.bare_lf == "reject" and reader.bare_lf_seen
                and not addr_in(st.client.addr, self.s.bare_lf_exclusions)):
            from postier.smtpd.address import external
            to = f" to=<{external(st.recipients[0])}>" if st.recipients else ""
            log.info(f"{st.queue_id}: reject: END-OF-MESSAGE from {st.client.namaddr}: "
                     f"bare <LF> received; from=<{external(st.sender or '')}>{to} "
                     f"proto={st.protocol} helo=<{st.helo_name or ''}>")
            self._abort_transaction()
            st.reset_transaction()
            await self.error_reply(Reply(self.s.bare_lf_code, "5.5.2",
                                         f"{self.s.myhostname} Error: bare <LF> received"))
            return False
        r = await self.server.engine.end_of_data(st)
        if r is None and self.cleanup is not None:
            r = self.cleanup.error
        c = self.cleanup
        if r is None and (st.actions.discard is not None or (c is not None and c.discard)):
            # DISCARD (access map or header/body checks): 250, nothing is queued
            qid = st.queue_id
            self._abort_transaction()
            st.reset_transaction()
            self.reply(Reply(250, "2.0.0", f"Ok: queued as {qid}"))
            return True
        if r is None and self.s.content is not None:
            # antivirus, banned files, spam (postier.content.scan): None = commit;
            # the scanner reads the file by its name
            try:
                wq.flush()
            except OSError as e:
                log.warning(f"{st.queue_id}: queue file write error: {e}")
                r = R_QUEUE_ERROR
            else:
                r = await self.s.content.end_of_data(self, wq)
        if r is not None:
            self._abort_transaction()
            st.reset_transaction()
            if r.code < 400:        # content scan: discarded, or passed on by `postier filter`
                self.reply(r)
                return True
            await self.error_reply(r)
            return False
        env = self._envelope()
        qid = st.queue_id
        hold = st.actions.hold is not None or (c is not None and c.hold_reason is not None)
        if hold:
            # HOLD: the file goes straight into the hold queue, out of qmgr's
            # sight; the placement consumes the mark (as qmgr clears it), so a
            # release delivers the message instead of holding it again
            env.hold_reason = ""
            wq.directory = os.path.join(self.s.queue_directory, "hold")
            wq.path = os.path.join(wq.directory, wq.queue_id)
        try:
            if hold:
                os.makedirs(wq.directory, exist_ok=True)
            await self.server.commit(wq, env, None if hold else self.server.incoming_sync)
        except OSError as e:
            log.warning(f"{qid}: queue file write error: {e}")
            self._abort_transaction()
            st.reset_transaction()
            await self.error_reply(R_QUEUE_ERROR)
            return False
        self.writer_q = None
        if not hold:
            try:
                self.server.delivered(qid)
            except Exception as e:  # noqa: BLE001 - committed: the queue manager's scan finds it
                _log_or_report(log.warning, f"{qid}: new mail notification failed: "
                                            f"{_describe(e)}")
        self._abort_transaction()
        st.reset_transaction()
        self.reply(Reply(250, "2.0.0", f"Ok: queued as {qid}"))
        return True

    def _envelope(self) -> Envelope:
        st = self.st
        p = st.mail_params
        a = st.actions
        rcpts = [Recipient(address=addr, orig=addr, dsn_orcpt=orcpt, dsn_notify=notify)
                 for addr, notify, orcpt, _ in self.rcpt_meta]
        sender = st.sender or ""
        c = self.cleanup
        if c is not None:
            sender, rcpts = c.sender, c.recipients
        return Envelope(
            rewrite_context=c.rewrite_context if c is not None else "",
            header_encoding=c.header_encoding if c is not None else "",
            client_port=st.client.port, server_address=st.server_addr,
            server_port=st.server_port,
            queue_id=st.queue_id or "", arrival=self.arrival, sender=sender,
            recipients=rcpts, dsn_envid=p.get("ENVID", ""), dsn_ret=p.get("RET", ""),
            body_type=p.get("BODY", ""), smtputf8="SMTPUTF8" in p,
            client_address=st.client.addr, client_name=st.client.name,
            reverse_client_name=st.client.reverse_name, helo_name=st.helo_name or "",
            protocol_name=st.protocol,
            # a FILTER action wins over main.cf's content_filter (Postfix cleanup)
            content_filter=(c.content_filter if c is not None and c.content_filter
                            else a.filter) or self.s.content_filter,
            redirect=(c.redirect if c is not None and c.redirect else a.redirect) or "",
            hold_reason=(c.hold_reason if c is not None and c.hold_reason is not None
                         else a.hold) or "",
            attrs={"discard": a.discard} if a.discard else {})

    async def smtp_BDAT(self, arg: str) -> bool:  # noqa: N802
        st = self.st
        words = arg.split()
        if not words or not words[0].isdigit() or len(words) > 2 or (
                len(words) == 2 and words[1].upper() != "LAST"):
            log.warning(f"{st.log_queue_id}: malformed BDAT command syntax from "
                        f"{st.client.namaddr}: BDAT {arg}")
            self.reply(Reply(521, "5.5.4", "Syntax: BDAT count [LAST]"))
            self.closing = True
            return False
        size = int(words[0])
        last = len(words) == 2
        if self.bdat_discard:
            # an earlier chunk of this BDAT sequence failed: Postfix discards
            # every further chunk, up to and including the LAST one
            await self._skip_bytes(size)
            if last:
                self._abort_transaction()
                st.reset_transaction()
            await self.error_reply(Reply(551, "5.0.0",
                                         f"Discarded {size} bytes after earlier error"))
            return False
        refused = None
        if self.bdat is None:
            refused = self._no_recipients()
        if refused is None and size == 0 and not last:
            refused = R_NULL_BDAT
        # Postfix compares each chunk with the limit minus the complete lines
        # received so far (a line still open at a chunk end is not counted)
        limit = self.s.message_size_limit
        if refused is None and limit and size > limit - self.bdat_complete:
            refused = R_CHUNK_TOO_BIG
        if refused is None and self.bdat is None:
            st.pipelined = bool(self.buf)
            refused = await self.server.engine.data(st, command="BDAT")
        if refused is not None:
            await self._skip_bytes(size)
            self._abort_transaction()
            if last:
                st.reset_transaction()
            else:
                self.bdat_started = self.bdat_discard = True
            await self.error_reply(refused)
            return False
        if self.bdat is None:
            self.bdat = self.server.dataframe.BdatReader(self._content_limit())
            self.bdat_started = True
            self.writer_q.write(self._start_cleanup())
        pos = self.bdat_bytes
        self.bdat_bytes += size
        self.bdat_last_byte = self.bdat_last_byte if size == 0 else b""
        remaining = size
        while remaining:
            if not self.buf and not await self._fill():
                raise PeerGone()
            take = min(remaining, len(self.buf))
            chunk = bytes(self.buf[:take])
            del self.buf[:take]
            remaining -= take
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                self.bdat_complete = pos + nl + 1
            pos += take
            if remaining == 0 and take:
                self.bdat_last_byte = chunk[-1:]
            out = self.bdat.feed(chunk, last and remaining == 0)
            self.writer_q.write(self._clean(out))
        if last and size == 0:
            self.writer_q.write(self._clean(self.bdat.feed(b"", True)))
        if not last:
            self.reply(Reply(250, "2.0.0", f"Ok: {size} bytes"))   # this chunk (Postfix)
            return True
        reader = self.bdat
        # Postfix counts the bytes received, plus the CRLF it adds when the
        # content does not end with a line end.
        total = self.bdat_bytes + (0 if self.bdat_last_byte == b"\n" else 2)
        ok = await self._finish_message(reader)
        if ok and self.out:
            # Postfix: "250 2.0.0 Ok: N bytes queued as ID"
            last_reply = self.out.pop()
            self.out.append(last_reply.replace(b"Ok: queued as", f"Ok: {total} bytes queued as".encode()))
        return ok

    async def _skip_bytes(self, n: int) -> None:
        while n:
            if not self.buf and not await self._fill():
                raise PeerGone()
            take = min(n, len(self.buf))
            del self.buf[:take]
            n -= take

    async def smtp_RSET(self, arg: str) -> bool:  # noqa: N802
        if arg:
            await self.error_reply(Reply(501, "5.5.4", "Syntax: RSET"))
            return False
        self._abort_transaction()
        self.st.reset_transaction()
        self.reply(R_OK)
        return True

    async def smtp_NOOP(self, arg: str) -> bool:  # noqa: N802
        self.reply(R_OK)
        return True

    async def smtp_QUIT(self, arg: str) -> bool:  # noqa: N802
        self.reply(R_BYE)
        self.closing = True
        return True

    async def smtp_VRFY(self, arg: str) -> bool:  # noqa: N802
        if self.s.disable_vrfy:
            await self.error_reply(R_VRFY_DISABLED)
            return False
        if not arg:
            await self.error_reply(Reply(501, "5.5.4", "Syntax: VRFY address"))
            return False
        addr = arg.strip()
        if addr.startswith("<") and addr.endswith(">"):
            addr = addr[1:-1]
        self.reply(Reply(252, "2.0.0", addr))
        return True

    async def smtp_ETRN(self, arg: str) -> bool:  # noqa: N802
        if self.st.sender is not None:
            await self.error_reply(Reply(503, "", "Error: MAIL transaction in progress"))
            return False
        if not arg:
            await self.error_reply(Reply(500, "", "Syntax: ETRN domain"))
            return False
        log.warning(f"reject: ETRN {arg}... from {self.st.client.namaddr}")
        await self.error_reply(Reply(459, "", f"<{arg}>: service unavailable"))
        return False

    async def smtp_STARTTLS(self, arg: str) -> bool:  # noqa: N802
        ctx = self.s.tls_context
        if ctx is None or self.st.tls:
            await self.error_reply(R_NOT_IMPLEMENTED)
            return False
        if arg:
            await self.error_reply(Reply(501, "5.5.4", "Syntax: STARTTLS"))
            return False
        self.reply(R_TLS_READY)
        await self.flush()
        self.buf.clear()   # RFC 3207: discard anything pipelined before the handshake
        try:
            await self._writer.start_tls(ctx)
        except (ssl.SSLError, OSError, ConnectionError) as e:
            log.warning(f"TLS handshake failed for {self.st.client.namaddr}: {e}")
            self.closing = True
            raise PeerGone() from None
        self.transport = self._writer.transport
        self.st.tls = True
        self.st.helo_name = None
        self._abort_transaction()
        self.st.reset_transaction()
        sslobj = self.transport.get_extra_info("ssl_object")
        if sslobj is not None:
            log.info(f"{self.st.client.namaddr}: TLS established: {sslobj.version()} "
                     f"with cipher {sslobj.cipher()[0]}")
        return True

    async def smtp_AUTH(self, arg: str) -> bool:  # noqa: N802
        await self.error_reply(R_NO_AUTH)
        return False

    async def smtp_XCLIENT(self, arg: str) -> bool:  # noqa: N802
        st = self.st
        if not addr_in(st.client.addr, self.s.xclient_hosts):
            await self.error_reply(R_NOAUTH_X)
            return False
        if not arg:
            await self.error_reply(Reply(501, "5.5.4", "Syntax: XCLIENT attribute=value..."))
            return False
        if st.sender is not None:
            await self.error_reply(R_IN_TRANSACTION)
            return False
        new = Client(**st.client.__dict__)
        helo = st.helo_name
        proto = st.protocol
        got_name = got_reverse_name = False
        for item in arg.split():
            key, eq, val = item.partition("=")
            key = key.upper()
            if not eq or key not in XCLIENT_ATTRS.split():
                await self.error_reply(Reply(501, "5.5.4", f"Bad XCLIENT attribute name: {key}"))
                return False
            val = xtext_decode(val)
            unavailable = val.upper() in ("[UNAVAILABLE]", "[TEMPUNAVAIL]")
            if key == "ADDR":
                if unavailable:
                    new.addr = "unknown"
                    continue
                if val.upper().startswith("IPV6:"):
                    val = val[5:]
                try:
                    new.addr = str(ipaddress.ip_address(val))
                except ValueError:
                    await self.error_reply(Reply(501, "5.5.4", f"Bad XCLIENT {key} syntax: {val}"))
                    return False
            elif key == "NAME":
                new.name = "unknown" if unavailable else val
                new.name_status = 4 if val.upper() == "[TEMPUNAVAIL]" else (5 if unavailable else 2)
                got_name = True
            elif key == "REVERSE_NAME":
                new.reverse_name = "unknown" if unavailable else val
                new.reverse_name_status = (4 if val.upper() == "[TEMPUNAVAIL]"
                                           else (5 if unavailable else 2))
                got_reverse_name = True
            elif key == "PORT":
                new.port = "unknown" if unavailable else val
            elif key == "HELO":
                helo = None if unavailable else val
            elif key == "PROTO":
                proto = val.upper()
        if got_name and not got_reverse_name:
            # Postfix: NAME alone also sets the reverse name (recorded from 3.7.11,
            # tests/integration/dns/postfix_dns.json, client_mx_ns_a_access)
            new.reverse_name, new.reverse_name_status = new.name, new.name_status
        self.xclient_used = True
        st.client = new
        st.helo_name = helo
        st.protocol = proto if helo else "SMTP"
        self.connect_reject = None
        self.reply(Reply(220, "", self.s.banner))
        return True

    xclient_used = False
    cleanup: Any = None
    connect_reject: Reply | None = None
    rcpt_meta: list = []
    arrival: float = 0.0
    _ready_writer: Any = None
    bdat_bytes = 0
    bdat_last_byte = b""
    bdat_complete = 0
    bdat_discard = False

    async def smtp_XFORWARD(self, arg: str) -> bool:  # noqa: N802
        if not addr_in(self.st.client.addr, self.s.xforward_hosts):
            await self.error_reply(R_NOAUTH_X)
            return False
        if not arg:
            await self.error_reply(Reply(501, "5.5.4", "Syntax: XFORWARD attribute=value..."))
            return False
        for item in arg.split():
            key, eq, val = item.partition("=")
            if not eq or key.upper() not in XFORWARD_ATTRS.split():
                await self.error_reply(Reply(501, "5.5.4", f"Bad XFORWARD attribute name: {key}"))
                return False
            self.st.xforward[key.upper()] = xtext_decode(val)
        self.reply(R_OK)
        return True


def _new_writer(directory: str) -> QueueWriter:
    return QueueWriter(directory, buffered=True)


def split_path_arg(arg: str, keyword: str) -> tuple[str | None, list[str]]:
    """`FROM:<a@b> SIZE=10` -> ("<a@b>", ["SIZE=10"]); (None, []) on bad syntax.
    Postfix accepts a space after the colon and a path without brackets."""
    head, colon, rest = arg.partition(":")
    if not colon or head.strip().upper() != keyword:
        return None, []
    rest = rest.lstrip()
    if not rest:
        return None, []
    if rest.startswith("<"):
        # the path ends at the first ">" outside a quoted string
        i, quoted = 1, False
        while i < len(rest):
            c = rest[i]
            if c == "\\" and quoted:
                i += 2
                continue
            if c == '"':
                quoted = not quoted
            elif c == ">" and not quoted:
                break
            i += 1
        if i >= len(rest):
            return rest, []            # no closing bracket: let the address parser reject it
        return rest[:i + 1], rest[i + 1:].split()
    parts = rest.split()
    return parts[0], parts[1:]


COMMANDS = {
    "EHLO": Smtpd.smtp_EHLO, "HELO": Smtpd.smtp_HELO, "MAIL": Smtpd.smtp_MAIL,
    "RCPT": Smtpd.smtp_RCPT, "DATA": Smtpd.smtp_DATA, "BDAT": Smtpd.smtp_BDAT,
    "RSET": Smtpd.smtp_RSET, "NOOP": Smtpd.smtp_NOOP, "QUIT": Smtpd.smtp_QUIT,
    "VRFY": Smtpd.smtp_VRFY, "ETRN": Smtpd.smtp_ETRN, "STARTTLS": Smtpd.smtp_STARTTLS,
    "AUTH": Smtpd.smtp_AUTH, "XCLIENT": Smtpd.smtp_XCLIENT, "XFORWARD": Smtpd.smtp_XFORWARD,
}


class PermitAll:
    """Restriction engine stand-in: every command may proceed."""

    async def connect(self, st: SessionState) -> Reply | None:
        return None

    helo = mail = rcpt = data = end_of_data = connect


class SmtpdServer:
    """Everything shared by the sessions of one process: settings, the
    restriction engine, anvil, the native DATA reader module."""

    def __init__(self, settings: SmtpdSettings, engine: Any = None,
                 loop: asyncio.AbstractEventLoop | None = None):
        self.settings = settings
        self.engine = engine or PermitAll()
        self.loop = loop or asyncio.get_event_loop()
        self.anvil = Anvil()
        self.dataframe = native.load("dataframe")
        self.resolver = getattr(self.engine, "resolver", None)   # address classes for parse_path
        self.dns_settings = settings.dns
        from postier.dns import DnsSettings, get_resolver
        # created now (no loop needed yet), so that the smtp client of the same
        # process finds and shares it (postier.dns: one resolver per process)
        self._dns = get_resolver(settings.dns or DnsSettings())
        if not getattr(self.engine, "dns_configured", True) and hasattr(self.engine, "use_dns"):
            from postier.smtpd.dnschecks import DnsChecks
            self.engine.use_dns(DnsChecks(self.engine, self.dns_resolver))
        self.servers: list[asyncio.AbstractServer] = []
        self.aio_template: dict[str, Any] | None = None   # see Smtpd.__init__
        self.on_queued: Any = None
        self.session_class: type[Smtpd] = Smtpd     # a subclass for `postier filter --lmtp`
        incoming = os.path.join(settings.queue_directory, "incoming")
        os.makedirs(incoming, exist_ok=True)
        self.sessions = 0                   # sessions in progress in this process
        # queue files made ahead of time (started by listen(): the pool is
        # emptied when the event loop ends, see _keep_pool)
        self.pool: QueueFilePool | None = None
        self._pool_filling = False
        self._pool_task: asyncio.Task | None = None
        self._io: concurrent.futures.ThreadPoolExecutor | None = None
        try:
            self.incoming_sync: DirSync | None = DirSync(incoming)
        except OSError:
            self.incoming_sync = None

    @property
    def io(self) -> concurrent.futures.ThreadPoolExecutor:
        """The threads for queue-file I/O (file creation, commits with their
        fsyncs): a pool of its own, so that a commit never waits behind a
        content scan in the loop's default executor, and a small one (its
        threads sleep in fsync; more of them only contend for the GIL:
        measured with 20 sessions on one CPU, 2 threads cost ~7 % less CPU per
        message than 6).  Made at first use: after the fork, in the worker."""
        if self._io is None:
            self._io = concurrent.futures.ThreadPoolExecutor(
                max_workers=IO_THREADS, thread_name_prefix="queue-io")
        return self._io

    def take_queue_file(self) -> QueueWriter | None:
        """A pre-created queue file of incoming/, or None (create one); the
        pool is topped up in the background."""
        pool = self.pool
        if pool is None:
            return None
        w = pool.take()
        self._fill_pool()
        return w

    def _fill_pool(self, limit: int | None = None) -> None:
        pool = self.pool
        if pool is None or self._pool_filling or not pool.needs_fill():
            return
        self._pool_filling = True
        fut = self.loop.run_in_executor(self.io, pool.fill, limit)

        def done(f: asyncio.Future) -> None:
            self._pool_filling = False
            if not f.cancelled() and f.exception() is not None:
                # incoming/ is not writable now: the sessions create their
                # files themselves (and report the error) until a take succeeds
                log.warning(f"queue file create error: {f.exception()}")
                return
            self._fill_pool()
        fut.add_done_callback(done)

    async def _keep_pool(self) -> None:
        """Lives as long as the event loop: asyncio.run() cancels it at the
        end, and the pool's files are removed then."""
        try:
            await self.loop.create_future()
        finally:
            if self.pool is not None:
                self.pool.close()

    async def commit(self, wq: QueueWriter, env: Envelope, dir_sync: DirSync | None) -> None:
        """Commit a queue file (QueueWriter.publish(): the file and its
        directory entry are on disk when this returns).  While other
        sessions are in progress, all of it runs in the executor (the event
        loop serves them meanwhile; concurrent commits share directory
        fsyncs).  Alone, the event loop writes, renames and fsyncs the file
        itself while an executor thread fsyncs the directory at the same
        time: nothing else waits for the loop, and the two flushes overlap."""
        if self.sessions > 1:
            await self.loop.run_in_executor(self.io, wq.publish, env, dir_sync)
            return
        wq.publish_start(env)
        fut = self.loop.run_in_executor(self.io, wq.sync_directory, dir_sync)
        try:
            wq.sync_file()
        except OSError:
            await asyncio.gather(fut, return_exceptions=True)
            wq.unpublish()
            raise
        try:
            await asyncio.shield(fut)
        except OSError:
            wq.unpublish()
            raise

    def delivered(self, qid: str) -> None:
        if self.on_queued is not None:
            self.on_queued(qid)

    def dns_resolver(self) -> Any:
        """The process's DNS resolver (postier.dns), for these settings."""
        return self._dns

    async def lookup_peer(self, client: Client) -> None:
        """Reverse-resolve the client and confirm forward (Postfix's
        smtpd_peername_lookup): /etc/hosts then DNS, PTR then A/AAAA;
        'unknown' when it does not verify (postier.dns.peer)."""
        from postier.dns import lookup_peer
        info = await lookup_peer(self.dns_resolver(), client.addr)
        for text in info.warnings:
            log.warning(text)
        client.name, client.name_status = info.name, info.name_status
        client.reverse_name, client.reverse_name_status = info.reverse_name, info.reverse_status

    async def listen(self, host: str, port: int, sock: socket.socket | None = None) -> None:
        def factory() -> Smtpd:
            return self.session_class(self)
        if sock is not None:
            srv = await self.loop.create_server(factory, sock=sock, backlog=1024)
        else:
            srv = await self.loop.create_server(factory, host=host or None, port=port,
                                                reuse_address=True, backlog=1024)
        self.servers.append(srv)
        if self.pool is None:
            self.pool = QueueFilePool(os.path.join(self.settings.queue_directory, "incoming"))
            self._pool_task = self.loop.create_task(self._keep_pool())
            self._fill_pool()

    async def close(self) -> None:
        """Stop listening, remove the pool's unused queue files and end the
        io threads.  The jobs already handed to them still run (a commit
        is a session's message, a file creation is aborted by its session
        or by the closed pool) and are awaited in another thread, so the
        event loop keeps serving meanwhile; running jobs are not waited
        for longer than they take."""
        if self._pool_task is not None:
            self._pool_task.cancel()
        if self.pool is not None:
            self.pool.close()
        for srv in self.servers:
            srv.close()
        for srv in self.servers:
            await srv.wait_closed()
        io, self._io = self._io, None
        if io is not None:
            io.shutdown(wait=False)             # the threads end once their queue is empty
            await self.loop.run_in_executor(None, io.shutdown)     # join them
