"""Antivirus: a clamd INSTREAM client and amavisd-new's scanner list with failover.

    scanners = parse_scanners(["clamd:unix:/run/clamav/clamd.ctl",
                               "clamd:inet:127.0.0.1:3310"])
    av = Antivirus(scanners, timeout=60.0)
    result = await av.scan(source)          # source: bytes or a MessageSource
    result.status                           # "clean" | "infected" | "failed"
    result.viruses                          # ["Eicar-Signature"]

Scanner specs (`av_scanners`, tried in order, like amavisd's @av_scanners
followed by @av_scanners_backup):

* `clamd:unix:/path/to/clamd.ctl` -- clamd's LocalSocket;
* `clamd:inet:HOST:PORT`, `clamd:inet:[IPv6]:PORT` -- clamd's TCPSocket;
* shorthands: `clamd:/path` (unix), `clamd:HOST:PORT` (inet).

Protocol (one connection per scan, as clamd closes it after INSTREAM):
`zINSTREAM\\0`, then the message in chunks, each preceded by its length as
4 bytes big-endian, then a zero-length chunk.  clamd answers
`stream: OK\\0`, `stream: NAME FOUND\\0` (several with AllMatchScan) or
`... ERROR\\0`.  A small message goes out in one write; a large one in
`CHUNK`-sized pieces with flow control.  When the stream passes clamd's
`StreamMaxLength`, clamd answers `INSTREAM size limit exceeded. ERROR` and
closes the connection (often while we are still writing): that is a scanner
failure, never a clean result.

Failover: a scanner that cannot be connected to, times out, closes the
connection without an answer, or answers ERROR (size limit, internal
errors) is a failure; the next scanner in the list is tried with the same
message.  When every scanner failed the result is "failed", and the caller
(postier.content.scan) defers the message with 451 unless
`av_failure_action = pass`.  A scanner that failed is tried again on the
next message (no blacklisting): clamd restarts in seconds.

Parameters read (through postier.content.scan): av_scanners,
av_scanner_timeout, av_failure_action.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from postier.errors import ConfigError

CHUNK = 256 * 1024          # INSTREAM chunk size (clamd's default StreamMaxLength is 25M)
ONE_WRITE = 1024 * 1024     # messages up to this size go out in a single write
_LEN = struct.Struct(">I")
_END = _LEN.pack(0)


class MessageSource(Protocol):
    """Where the message bytes come from: `read(offset, n)` within the content."""

    size: int

    def read(self, offset: int, n: int) -> bytes: ...


@dataclass(frozen=True)
class ScannerSpec:
    """One entry of av_scanners."""

    kind: str                   # "clamd"
    family: str                 # "unix" or "inet"
    path: str = ""              # unix socket path
    host: str = ""              # inet host (no brackets)
    port: int = 0
    text: str = ""              # the spec as configured (for logs)

    @property
    def label(self) -> str:
        return self.text or (f"{self.kind}:unix:{self.path}" if self.family == "unix"
                             else f"{self.kind}:inet:{self.host}:{self.port}")


def parse_scanner(text: str) -> ScannerSpec:
    """One scanner spec; ConfigError (naming av_scanners) when it does not parse."""
    spec = text.strip()
    kind, sep, rest = spec.partition(":")
    if not sep or kind.lower() != "clamd":
        raise ConfigError(f'av_scanners: unsupported scanner "{spec}" '
                          f"(expected clamd:unix:/path or clamd:inet:host:port)")
    fam, sep2, addr = rest.partition(":")
    if rest.startswith("/"):
        fam, addr = "unix", rest
    elif fam.lower() not in ("unix", "inet"):
        fam, addr = "inet", rest
    fam = fam.lower()
    if fam == "unix":
        if not addr.startswith("/"):
            raise ConfigError(f'av_scanners: bad unix socket path in "{spec}" '
                              f"(expected an absolute path)")
        return ScannerSpec("clamd", "unix", path=addr, text=spec)
    host, port = _split_hostport(addr)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f'av_scanners: bad address in "{spec}" (expected clamd:inet:host:port)')
    return ScannerSpec("clamd", "inet", host=host, port=int(port), text=spec)


def _split_hostport(addr: str) -> tuple[str, str]:
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0 or addr[end + 1:end + 2] != ":":
            return "", ""
        return addr[1:end], addr[end + 2:]
    host, _, port = addr.rpartition(":")
    return host, port


def parse_scanners(items: list[str]) -> list[ScannerSpec]:
    return [parse_scanner(i) for i in items if i.strip()]


class ScannerError(Exception):
    """One scanner failed; str() is the reason for the log."""


@dataclass
class AvResult:
    status: str                              # clean | infected | failed
    viruses: list[str] = field(default_factory=list)
    scanner: str = ""                        # the scanner that answered
    failures: list[str] = field(default_factory=list)   # "spec: reason" per failed scanner
    elapsed: float = 0.0

    @property
    def infected(self) -> bool:
        return self.status == "infected"


class BytesSource:
    """A MessageSource over bytes in memory."""

    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)

    def read(self, offset: int, n: int) -> bytes:
        return self.data[offset:offset + n]


class FileSource:
    """A MessageSource over `size` bytes of a file starting at `offset`
    (a queue file's content).  Reads are pread()s: no shared file position."""

    def __init__(self, path: str, offset: int = 0, size: int | None = None):
        self.path = path
        self.offset = offset
        if size is None:
            size = os.path.getsize(path) - offset
        self.size = size
        self._fd: int | None = os.open(path, os.O_RDONLY)

    def read(self, offset: int, n: int) -> bytes:
        if self._fd is None:
            raise OSError(f"{self.path}: closed")
        n = max(0, min(n, self.size - offset))
        out = bytearray()
        while n:
            data = os.pread(self._fd, n, self.offset + offset)
            if not data:
                raise OSError(f"short read from {self.path}")
            out += data
            offset += len(data)
            n -= len(data)
        return bytes(out)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            self.close()


def as_source(message: Any) -> Any:
    if isinstance(message, (bytes, bytearray, memoryview)):
        return BytesSource(bytes(message))
    if isinstance(message, str):
        return FileSource(message)
    return message


class ClamdClient:
    """One clamd (unix or TCP).  Each call opens its own connection
    (non-blocking sockets on the running loop: after a failed send the
    reply clamd wrote before closing can still be read)."""

    def __init__(self, spec: ScannerSpec, timeout: float = 60.0):
        self.spec = spec
        self.timeout = timeout

    async def _open(self) -> socket.socket:
        sp = self.spec
        loop = asyncio.get_running_loop()
        if sp.family == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, sp.path)
            except BaseException:
                sock.close()
                raise
            return sock
        infos = await loop.getaddrinfo(sp.host, sp.port, type=socket.SOCK_STREAM)
        last: OSError = OSError(f"cannot resolve {sp.host}")
        for family, type_, proto, _, addr in infos:
            sock = socket.socket(family, type_, proto)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, addr)
            except OSError as e:
                sock.close()
                last = e
                continue
            except BaseException:
                sock.close()
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise last

    async def command(self, cmd: str) -> str:
        """A z-command without payload (`PING`, `VERSION`); the reply text."""
        try:
            async with asyncio.timeout(self.timeout):
                data = await self._exchange([b"z" + cmd.encode("ascii") + b"\0"])
        except TimeoutError:
            raise ScannerError(f"timed out after {self.timeout:g}s") from None
        except (OSError, EOFError) as e:
            raise ScannerError(_os_reason(e)) from None
        return data.rstrip(b"\0").decode("utf-8", "replace")

    async def instream(self, source: Any) -> list[str]:
        """Scan the message: [] when clean, the virus names when infected;
        ScannerError on any failure (connect, timeout, ERROR reply)."""
        source = as_source(source)
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self._exchange(_instream_pieces(source))
        except TimeoutError:
            raise ScannerError(f"timed out after {self.timeout:g}s") from None
        except (OSError, EOFError) as e:
            raise ScannerError(_os_reason(e)) from None
        return parse_reply(reply)

    async def _exchange(self, pieces: Any) -> bytes:
        """Send every piece, then read until clamd closes the connection."""
        loop = asyncio.get_running_loop()
        sock = await self._open()
        try:
            write_error: OSError | None = None
            try:
                for piece in pieces:
                    await loop.sock_sendall(sock, piece)
            except (BrokenPipeError, ConnectionResetError) as e:
                # clamd stops reading past StreamMaxLength and closes the
                # connection: its reply may still be waiting to be read
                write_error = e
            out = bytearray()
            while True:
                try:
                    data = await loop.sock_recv(sock, 65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                out += data
            if not out:
                if write_error is not None:
                    raise write_error
                raise EOFError("connection closed without a reply")
            return bytes(out)
        finally:
            sock.close()


def _instream_pieces(source: Any) -> Iterator[bytes]:
    """The INSTREAM request: one piece for a small message, else the
    command and then length-prefixed chunks, read from `source` as sent."""
    size = source.size
    if size <= ONE_WRITE:
        data = source.read(0, size)
        yield b"zINSTREAM\0" + (_LEN.pack(len(data)) + data if data else b"") + _END
        return
    yield b"zINSTREAM\0"
    pos = 0
    while pos < size:
        data = source.read(pos, CHUNK)
        if not data:
            raise OSError("short read from the message")
        pos += len(data)
        yield _LEN.pack(len(data)) + data
    yield _END


def parse_reply(data: bytes) -> list[str]:
    """clamd's INSTREAM reply(ies) -> virus names ([] for OK)."""
    text = data.decode("utf-8", "replace")
    names: list[str] = []
    ok = False
    for line in text.replace("\n", "\0").split("\0"):
        line = line.strip()
        if not line:
            continue
        if line.endswith(" FOUND"):
            body = line[:-len(" FOUND")]
            names.append(body.split(": ", 1)[1] if ": " in body else body)
        elif line.endswith(" OK") or line == "OK":
            ok = True
        elif line.endswith("ERROR"):
            raise ScannerError(f"clamd: {line}")
        else:
            raise ScannerError(f"clamd: unexpected reply: {line[:200]}")
    if not names and not ok:
        raise ScannerError("clamd: empty reply")
    return names


def _os_reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.errno:
        return os.strerror(e.errno)
    return str(e) or type(e).__name__


class Antivirus:
    """The scanner list: try each in order until one answers."""

    def __init__(self, scanners: list[ScannerSpec], timeout: float = 60.0):
        self.scanners = list(scanners)
        self.clients = [ClamdClient(s, timeout) for s in scanners]

    async def scan(self, source: Any) -> AvResult:
        source = as_source(source)
        t0 = time.monotonic()
        failures: list[str] = []
        for client in self.clients:
            try:
                names = await client.instream(source)
            except ScannerError as e:
                failures.append(f"{client.spec.label}: {e}")
                continue
            return AvResult("infected" if names else "clean", names, client.spec.label,
                            failures, time.monotonic() - t0)
        if not self.clients:
            failures.append("no scanner configured")
        return AvResult("failed", [], "", failures, time.monotonic() - t0)
