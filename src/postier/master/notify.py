"""New-mail notices from the smtpd workers to the queue manager process.

In one process smtpd calls `QueueManager.on_queued(ID)` right after the
fsync'd 250 (no directory scan).  Across processes the master creates one
Unix datagram socket pair before it forks anything: the queue manager
process reads the receiving end, every smtpd worker writes to the sending
end.  A datagram carries queue IDs separated by spaces; a worker batches
the IDs of one event-loop turn into one datagram.  The pair lives as long
as the master, so a restarted queue manager (crash, reload) reads what was
sent while it was away (it first drops what is already waiting: its start-up
scan of incoming/ finds those files anyway).

The receiving queue holds few datagrams (net.unix.max_dgram_qlen, 10 on
many systems): when it is full the worker keeps its IDs and sends them when
the socket is writable again; past MAX_PENDING IDs it drops the oldest (the
queue manager's periodic scan of incoming/ finds them; nothing is lost).

Parameters read: none.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

MAX_DATAGRAM = 16 * 1024
MAX_PENDING = 100_000


def make_pair() -> tuple[socket.socket, socket.socket]:
    """(receiving end, sending end), both non-blocking."""
    rx, tx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.setblocking(False)
    tx.setblocking(False)
    return rx, tx


class Notifier:
    """Worker side: `notifier(qid)` is SmtpdServer.on_queued."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop):
        self.sock = sock
        self.loop = loop
        self.pending: list[str] = []
        self._scheduled = False
        self._waiting = False
        self.dropped = 0

    def __call__(self, qid: str) -> None:
        self.pending.append(qid)
        if len(self.pending) > MAX_PENDING:
            del self.pending[:len(self.pending) - MAX_PENDING]
            self.dropped += 1
        if not self._scheduled and not self._waiting:
            self._scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        while self.pending:
            batch, size = [], 0
            for qid in self.pending:
                if size + len(qid) + 1 > MAX_DATAGRAM and batch:
                    break
                batch.append(qid)
                size += len(qid) + 1
            try:
                self.sock.send(" ".join(batch).encode("ascii", "replace"))
            except BlockingIOError:
                if not self._waiting:
                    self._waiting = True
                    self.loop.add_writer(self.sock.fileno(), self._writable)
                return
            except OSError:
                self.pending.clear()       # the pair is gone: the queue scan finds the files
                return
            del self.pending[:len(batch)]

    def _writable(self) -> None:
        self.loop.remove_writer(self.sock.fileno())
        self._waiting = False
        self.flush()


def drain(sock: socket.socket) -> int:
    """Drop every datagram waiting on the receiving end; how many."""
    n = 0
    while True:
        try:
            sock.recv(MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return n
        except OSError:
            return n
        n += 1


class Receiver:
    """Queue manager side: calls `callback(qid)` for every ID received."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop,
                 callback: Callable[[str], None]):
        self.sock = sock
        self.loop = loop
        self.callback = callback
        loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        for _ in range(256):
            try:
                data = self.sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            for qid in data.decode("ascii", "replace").split():
                if qid and "/" not in qid and not qid.startswith("."):
                    self.callback(qid)

    def close(self) -> None:
        try:
            self.loop.remove_reader(self.sock.fileno())
        except (ValueError, OSError):
            pass


__all__ = ["Notifier", "Receiver", "drain", "make_pair"]
