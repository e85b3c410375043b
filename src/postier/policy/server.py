"""The policy delegation protocol server behind `postier greylistd`.

Postfix's check_policy_service sends one request per check: `name=value`
lines ended by an empty line; the server answers `action=ACTION` and an
empty line, and the connection stays open for the next request.  This
server parses requests the way postgrey 1.37 does (mux_input): lines end
in LF or CRLF; a line `NAME=VALUE` sets an attribute (NAME is the text
before the first `=`; names and values are cut at 512 bytes); any other
non-empty line is logged as `ignoring garbage: <LINE>` (first 100 bytes);
the empty line ends the request.  A request whose `request` attribute is
not `smtpd_access_policy` is logged (`unrecognized request type: 'X'`) and
gets no answer, as in postgrey.  With `exim=True` the connection is closed
after each answer (postgrey --exim).

Many connections are served concurrently by one asyncio loop (uvloop when
installed); with the memory-mapped store each decision is made inside
data_received (microseconds, no task switch), with Redis each connection
has a task that answers its requests in order.  Requests a client sends
without waiting for the answers (pipelining) are answered in order.  A
read holding exactly one whole simple request (what smtpd sends) is
decided in one call of postier.native "policyreq" (Cython, or its pure
twin): Greylist.fast parses only the attributes the decision uses, builds
the keys, asks the store and formats the log line and the action (other
requests, and every request while whitelists or privacy apply, take
Greylist.decide_fields()); any other input goes through the general
buffering, splitting and line rules.

Answers and log lines are written once per event-loop iteration: while
the server listens, postier.log collects the lines (LOG.batch_in_loop) and
the answers decided in an iteration are sent by one callback at the start
of the next, after the log lines are written (so a decision is never
visible before its log line; the answer waits for the other requests of
its iteration, microseconds).  This saves a write(2) per request and lets
each client process take several answers per wakeup.

A background task calls Greylist.maintain() (expiry passes, table
rebuilds) once a second, more often while such work is pending.  When the
store fails (Redis unreachable), the answer is `451 4.3.5 Server
configuration problem` (what Postfix itself applies when a policy server
cannot be reached) and a warning is logged.

Reads no main.cf parameters (postier.cli.greylistd_cmd passes the
settings).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import stat
from collections import deque

from postier import log, native
from postier.policy.greylist import MAINT_BUSY, MAINT_IDLE, Greylist, fields_of
from postier.policy.store import StoreError

MAX_LINE = 1 << 16          # a line longer than this closes the connection
_ATTR = re.compile(rb"([^=]+)=(.*)", re.DOTALL)
_LONG = re.compile(rb"[^\n]{513}")


def parse_block(block: bytes, attrs: dict[str, str]) -> dict[str, str]:
    """The attributes of complete request lines (`block`: lines joined by LF,
    no final LF) added to `attrs`; returns the updated dict (maybe a new
    one when attrs was empty)."""
    text = block.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    # fast path: every line is NAME=VALUE with a non-empty NAME and no line
    # is longer than 512 bytes (nothing to cut); when the text is ASCII its
    # length in characters is its length in bytes
    if len(block) <= 512 or (max(map(len, lines)) <= 512 if len(text) == len(block)
                             else _LONG.search(block) is None):
        try:
            d = dict([line.split("=", 1) for line in lines])
        except ValueError:          # a line without "=": the line-by-line path
            d = None
        if d is not None and "" not in d:
            if attrs:
                attrs.update(d)
                return attrs
            return d
    _parse_lines(block.split(b"\n"), attrs)
    return attrs


def _parse_lines(lines: list[bytes], attrs: dict[str, str]) -> None:
    """postgrey's per-line rules: NAME=VALUE (cut at 512 bytes), else garbage."""
    for line in lines:
        name, eq, value = line.partition(b"=")
        if not eq or not name:
            m = _ATTR.search(line)
            if m is None:
                log.info(f"ignoring garbage: <{line[:100].decode('utf-8', 'surrogateescape')}>")
                continue
            name, value = m.group(1), m.group(2)
        attrs[name[:512].decode("utf-8", "surrogateescape")] = \
            value[:512].decode("utf-8", "surrogateescape")


class _PolicyProtocol(asyncio.Protocol):
    __slots__ = ("server", "transport", "buf", "attrs", "queue", "worker", "paused", "closed",
                 "parse")

    def __init__(self, server: PolicyServer):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.attrs: dict[str, str] = {}
        self.queue: deque[tuple] = deque()
        self.parse = server.parse
        self.worker: asyncio.Task | None = None
        self.paused = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport      # type: ignore[assignment]
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self.worker is not None and not self.worker.done():
            self.worker.cancel()

    def pause_writing(self) -> None:
        if self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self.paused:
            self.paused = False
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if not self.buf and not self.attrs:
            # the common case: exactly one whole request (what Postfix's smtpd
            # sends, waiting for the answer before the next one)
            srv = self.server
            fast = srv.greylist.fast
            if fast is None:
                r = self.parse(data)
            else:
                # the whole request in one call (postier.native policyreq Fast)
                try:
                    r = fast.handle(data)
                except (StoreError, OSError) as e:
                    r = srv.store_failed(e)
                if r.__class__ is str:
                    srv.requests += 1
                    if srv._out_due and not srv.exim and not self.closed:
                        # _answer() and send() inline: an answer of this iteration
                        srv._out.append((self.transport,  # type: ignore[arg-type]
                                         f"action={r}\n\n".encode("utf-8", "surrogateescape"),
                                         False))
                    else:
                        self._answer(r)
                    return
            if r is not None:
                self._request_fields(r)
                return
        buf = self.buf + data if self.buf else data
        end = buf.rfind(b"\n")
        if end < 0:
            self.buf = buf
            if len(buf) > MAX_LINE:
                self._too_long()
            return
        self.buf = buf[end + 1:]
        if len(self.buf) > MAX_LINE:
            self._too_long()
            return
        chunk = buf[:end + 1]            # complete lines, each ending in LF
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        # every part but the last is a complete request; a part that starts
        # with LF starts with an empty line (a request without attributes)
        parts = chunk.split(b"\n\n")
        last = parts.pop()
        attrs = self.attrs
        for part in parts:
            while part.startswith(b"\n"):
                self._request(attrs)
                attrs = {}
                part = part[1:]
            if part:
                attrs = parse_block(part, attrs)
            self._request(attrs)
            attrs = {}
            if self.closed:
                return
        while last.startswith(b"\n"):
            self._request(attrs)
            attrs = {}
            last = last[1:]
        if last:
            attrs = parse_block(last[:-1], attrs)
        self.attrs = attrs

    def _too_long(self) -> None:
        log.warning("policy request line too long: closing the connection")
        self.buf = b""
        if self.transport is not None:
            self.transport.close()

    def _request(self, attrs: dict[str, str]) -> None:
        self._request_fields(fields_of(attrs))

    def _request_fields(self, f: tuple) -> None:
        req = f[0]
        if req != "smtpd_access_policy":
            log.info(f"unrecognized request type: '{req if req is not None else ''}'")
            return
        srv = self.server
        if srv.sync and not self.queue:
            self._answer(srv.decide(f))
            return
        self.queue.append(f)
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        srv = self.server
        while self.queue and not self.closed:
            f = self.queue.popleft()
            self._answer(await srv.adecide(f))

    def _answer(self, action: str) -> None:
        t = self.transport
        if t is None or self.closed:
            return
        srv = self.server
        if srv.exim:
            self.closed = True
        srv.send(t, f"action={action}\n\n".encode("utf-8", "surrogateescape"), srv.exim)


class PolicyServer:
    """A greylisting policy server on inet and/or unix sockets."""

    def __init__(self, greylist: Greylist, *, exim: bool = False,
                 error_action: str = "451 4.3.5 Server configuration problem",
                 pure: bool | None = None):
        self.greylist = greylist
        self.exim = exim
        self.error_action = error_action
        self.connections: set[_PolicyProtocol] = set()
        self.servers: list[asyncio.AbstractServer] = []
        self._maint: asyncio.Task | None = None
        self.requests = 0
        self._out: list[tuple[asyncio.Transport, bytes, bool]] = []
        self._out_due = False
        self.sync = greylist.sync
        self.parse = native.load("policyreq", pure=pure).parse
        self._decide = greylist.decide_fields

    def decide(self, f: tuple) -> str:
        """The action for a request's FIELDS tuple (postier.native policyreq)."""
        self.requests += 1
        try:
            return self._decide(f)
        except (StoreError, OSError) as e:
            return self.store_failed(e)

    async def adecide(self, f: tuple) -> str:
        self.requests += 1
        try:
            return await self.greylist.adecide_fields(f)
        except (StoreError, OSError) as e:
            return self.store_failed(e)

    def send(self, t: asyncio.Transport, data: bytes, close: bool = False) -> None:
        """Write an answer (then close the connection when `close`): at the
        next event-loop iteration, after the log lines of this one are
        written (one write for all of them), so a decision's log line is
        never later than its answer."""
        if self._out_due:
            self._out.append((t, data, close))
            return
        loop = asyncio._get_running_loop()
        if loop is None:            # no event loop (in-process use): now
            log.LOG.flush()
            t.write(data)
            if close:
                t.close()
            return
        self._out.append((t, data, close))
        self._out_due = True
        loop.call_soon(self._send_out)

    def _send_out(self) -> None:
        self._out_due = False
        self._write_out()

    def _write_out(self) -> None:
        try:
            log.LOG.flush()
        except OSError:             # a log that cannot be written holds no answer back
            pass
        out, self._out = self._out, []
        for t, data, close in out:
            if not t.is_closing():
                t.write(data)
                if close:
                    t.close()

    def store_failed(self, e: Exception) -> str:
        """The action when the store fails (logged)."""
        log.warning(f"greylist store: {e}")
        return self.error_action

    async def listen_socket(self, sock: socket.socket) -> None:
        """Serve an already bound and listening socket."""
        loop = asyncio.get_running_loop()
        if sock.family == socket.AF_UNIX:
            srv = await loop.create_unix_server(lambda: _PolicyProtocol(self), sock=sock)
        else:
            srv = await loop.create_server(lambda: _PolicyProtocol(self), sock=sock)
        self.servers.append(srv)
        log.LOG.batch_in_loop(True)
        self._start_maintenance()

    def _start_maintenance(self) -> None:
        if self._maint is None:
            self._maint = asyncio.get_running_loop().create_task(self._maintenance())

    async def _maintenance(self) -> None:
        g = self.greylist
        while True:
            busy = False
            try:
                busy = g.maintain()
            except Exception as e:  # noqa: BLE001 - keep serving whatever happens here
                log.warning(f"greylist maintenance: {e}")
            await asyncio.sleep(MAINT_BUSY if busy else MAINT_IDLE)

    async def close(self) -> None:
        if self._out:               # answers decided but not sent yet
            self._write_out()
        self._out_due = False
        for srv in self.servers:
            srv.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        for srv in self.servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), 2)
            except TimeoutError:
                pass
        if self._maint is not None:
            self._maint.cancel()
            try:
                await self._maint
            except asyncio.CancelledError:
                pass
        log.LOG.batch_in_loop(False)


def parse_inet(value: str) -> tuple[str, int]:
    """postgrey --inet=[HOST:]PORT (a bare port binds localhost); [V6]:PORT."""
    v = value.strip()
    if v.isdigit():
        return "localhost", int(v)
    host, sep, port = v.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"bad --inet value {value!r}: expected [HOST:]PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def bind_inet(host: str, port: int, backlog: int = 128, reuse_port: bool = False
              ) -> list[socket.socket]:
    """Listening TCP sockets for host:port (every address the name has)."""
    socks = []
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    seen = set()
    for family, stype, proto, _canon, addr in infos:
        if (family, addr) in seen:
            continue
        seen.add((family, addr))
        s = socket.socket(family, stype, proto)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            s.bind(addr)
        except OSError:
            s.close()
            for o in socks:
                o.close()
            raise
        s.listen(backlog)
        s.setblocking(False)
        socks.append(s)
    return socks


def bind_unix(path: str, mode: int = 0o666, backlog: int = 128) -> socket.socket:
    """A listening unix socket at path (a stale socket file is replaced)."""
    try:
        st = os.lstat(path)
        if stat.S_ISSOCK(st.st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(path)
        os.chmod(path, mode)
        s.listen(backlog)
    except OSError:
        s.close()
        raise
    s.setblocking(False)
    return s
